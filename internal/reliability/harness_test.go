//go:build reliability

package reliability_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
)

// binDir holds the four binaries, built once.
var binDir string

// Exit statuses (README, "Exit status").
const (
	exitUsage = 64
	exitData  = 65
	exitTemp  = 75
)

const mib = 1 << 20

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cryophile-reliability")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, b := range []string{"backup", "freeze", "thaw", "restore"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "cryophile-"+b), "./cmd/"+b)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	report := table()
	fmt.Print(report)
	if p := os.Getenv("CRYOPHILE_RELIABILITY_REPORT"); p != "" {
		os.WriteFile(p, []byte(report), 0o644)
	}
	os.Exit(code)
}

// long reports whether the long form (make reliability) runs.
func long() bool { return os.Getenv("CRYOPHILE_RELIABILITY") == "long" }

// count returns short in the short form, long in the long form.
func count(short, long_ int) int {
	if long() {
		return long_
	}
	return short
}

// seed is the scenarios' base seed: CRYOPHILE_RELIABILITY_SEED or a fixed
// value, so a failure can be replayed.
func seed() uint64 {
	if s, err := strconv.ParseUint(os.Getenv("CRYOPHILE_RELIABILITY_SEED"), 10, 64); err == nil {
		return s
	}
	return 20261125
}

// rng returns a generator seeded from seed() and the scenario's name.
func rng(name string) *mrand.Rand {
	h := sha256.Sum256([]byte(name))
	return mrand.New(mrand.NewPCG(seed(), uint64(h[0])<<8|uint64(h[1])))
}

// need skips the test when a tool is missing, or fails it under
// CRYOPHILE_INTEGRATION=1.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CRYOPHILE_INTEGRATION") != "" {
				t.Fatalf("%s not installed (scripts/reliability.sh installs it)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// ---- the table ----

// row is one scenario's line in the table.
type row struct {
	name     string
	runs     int
	failures int
	bytes    int64
	passed   bool
	skipped  bool
	notes    []string
}

var (
	rowsMu sync.Mutex
	rows   []*row
)

// scenario is what a test records into its row.
type scenario struct {
	t   *testing.T
	mu  sync.Mutex
	row *row
	cur *run
}

// begin starts the row of scenario name; the row's pass/fail state is taken
// from t when the test ends.
func begin(t *testing.T, name string) *scenario {
	r := &row{name: name}
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	s := &scenario{t: t, row: r}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		r.passed = !t.Failed() && !t.Skipped()
		r.skipped = t.Skipped()
		fmt.Printf("reliability: %-22s runs=%d failures=%d bytes=%d %s\n", r.name, r.runs, r.failures, r.bytes, strings.Join(r.notes, "; "))
	})
	return s
}

// run is one seeded attempt of a scenario.
type run struct {
	s      *scenario
	failed bool
}

// run starts a new run.
func (s *scenario) run() *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.row.runs++
	r := &run{s: s}
	s.cur = r
	return r
}

// errorf reports a broken invariant: the run counts as failed, the test too.
func (r *run) errorf(format string, args ...any) {
	r.s.t.Helper()
	r.s.mu.Lock()
	if !r.failed {
		r.failed = true
		r.s.row.failures++
	}
	r.s.mu.Unlock()
	r.s.t.Errorf(format, args...)
}

// checked adds n bytes to those verified.
func (s *scenario) checked(n int64) {
	s.mu.Lock()
	s.row.bytes += n
	s.mu.Unlock()
}

// note adds a figure to the row (retries, peak RSS, …).
func (s *scenario) note(format string, args ...any) {
	s.mu.Lock()
	s.row.notes = append(s.row.notes, fmt.Sprintf(format, args...))
	s.mu.Unlock()
	s.t.Logf(format, args...)
}

// table formats the rows and the summary line.
func table() string {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	var b strings.Builder
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	fmt.Fprintf(&b, "\n%-24s %6s %9s %15s  %s\n", "scenario", "runs", "failures", "bytes checked", "result")
	passed, failed := 0, 0
	for _, r := range rows {
		res := "pass"
		switch {
		case r.skipped:
			res = "skip"
		case !r.passed:
			res = "FAIL"
			failed++
		default:
			passed++
		}
		fmt.Fprintf(&b, "%-24s %6d %9d %15d  %s\n", r.name, r.runs, r.failures, r.bytes, res)
		for _, n := range r.notes {
			fmt.Fprintf(&b, "    %s\n", n)
		}
	}
	fmt.Fprintf(&b, "%d passed, %d failed\n", passed, failed)
	return b.String()
}

// ---- one installation ----

const vaultID = "0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"

// env is one throwaway installation: config, spool, file vault, key.
type env struct {
	t      testing.TB
	dir    string
	spool  string
	vault  string
	config string
	cert   string // recipient certificate
	secret string // its secret key (0600, no passphrase)
	osEnv  []string
	// creds, when set, are the credentials each program (by name) runs
	// with; a program not in it runs as the test (root). See newSharedEnv.
	creds map[string]*syscall.Credential
	// wrap, when set, may rewrite each command before it starts (to run
	// it under strace, say).
	wrap func(prog string, cmd *exec.Cmd)
	// term, when set, asks a daemon started by startDaemon to stop, in
	// place of SIGTERM to its process (which a wrapper like strace would
	// not pass on).
	term func(cmd *exec.Cmd)
	// member, when set, owns the directories scratch makes: the user
	// restore runs as.
	member *syscall.Credential

	mu      sync.Mutex
	daemons []*exec.Cmd
}

// newEnv makes an installation whose spool is spoolDir (a new directory
// when empty) with a file:// vault of class STANDARD; extra is added to the
// config before the vault.
func newEnv(t testing.TB, spoolDir, extra string) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), spoolDir, extra)
}

// newEnvIn is newEnv with the installation's files in dir.
func newEnvIn(t testing.TB, dir, spoolDir, extra string) *env {
	t.Helper()
	if spoolDir == "" {
		spoolDir = filepath.Join(dir, "spool")
		if err := os.Mkdir(spoolDir, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, dir: dir, spool: spoolDir, vault: filepath.Join(dir, "vault"), config: filepath.Join(dir, "cryophile.toml")}
	if err := os.Mkdir(e.vault, 0o750); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(extra, fmt.Sprintf("[[vault]]\nid = %q\nurl = \"file://%s\"\nstorage_class = \"STANDARD\"\n", vaultID, e.vault))
	home := t.TempDir()
	e.osEnv = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"), "AWS_EC2_METADATA_DISABLED=true"}
	e.cert, e.secret = e.key("alice", nil)
	t.Cleanup(e.stopDaemons)
	return e
}

// Numeric ids for newSharedEnv (as in packaging's TestGroupSharesSpool): no
// /etc/passwd entry is needed to run a process as them.
const (
	daemonUID   = 64101 // the user and group cryophile: freeze and thaw
	memberUID   = 64102 // a member of the group cryophile: backup and restore
	strangerUID = 64103 // another user, not in the group
)

// newSharedEnv makes an installation laid out as the package lays it out:
// a world-traversable directory holding a spool as tmpfiles.d makes it
// (2770 cryophile:cryophile, its queues the same), a file:// vault owned
// by cryophile, freeze and thaw running as daemonUID, backup and restore
// as memberUID (supplementary group cryophile), the secret key the
// member's, restore's output in member-owned scratch directories. It
// makes binDir traversable. It skips the test unless run as root.
func newSharedEnv(t *testing.T, extra string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as other users")
	}
	dir, err := os.MkdirTemp("", "cryophile-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, binDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spoolDir := filepath.Join(dir, "spool")
	for _, d := range []string{"", "backup", "freeze", "thaw", "restore"} {
		mkdirOwned(t, filepath.Join(spoolDir, d), 0o770|os.ModeSetgid, daemonUID, daemonUID)
	}
	e := newEnvIn(t, dir, spoolDir, extra)
	if err := os.Chown(e.vault, daemonUID, daemonUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e.secret, memberUID, memberUID); err != nil {
		t.Fatal(err)
	}
	daemon := &syscall.Credential{Uid: daemonUID, Gid: daemonUID, Groups: []uint32{daemonUID}}
	member := &syscall.Credential{Uid: memberUID, Gid: memberUID, Groups: []uint32{daemonUID}}
	e.creds = map[string]*syscall.Credential{"cryophile-freeze": daemon, "cryophile-thaw": daemon,
		"cryophile-backup": member, "cryophile-restore": member}
	e.member = member
	return e
}

// mkdirOwned creates dir owned by uid:gid with mode (chmod after chown,
// which clears the setgid bit).
func mkdirOwned(t testing.TB, dir string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// writeConfig (re)writes the config file.
func (e *env) writeConfig(extra, vaults string) {
	e.t.Helper()
	cfg := fmt.Sprintf("spool = %q\n\n[thaw]\npoll_interval = \"1s\"\n\n%s\n%s", e.spool, extra, vaults)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// keyCache keeps generated keys: key generation is the slow part of a
// small test.
var keyCache sync.Map

type keyFiles struct{ cert, secret []byte }

// key writes a certificate and a secret key (protected by passphrase when
// non-nil) into the env's directory.
func (e *env) key(name string, passphrase []byte) (cert, secret string) {
	e.t.Helper()
	ck := name + "\x00" + string(passphrase)
	var kf keyFiles
	if v, ok := keyCache.Load(ck); ok {
		kf = v.(keyFiles)
	} else {
		ent, err := archive.GenerateKey(name, name+"@example.org")
		if err != nil {
			e.t.Fatal(err)
		}
		var pub, sec bytes.Buffer
		if err := archive.WritePublicKey(&pub, ent); err != nil {
			e.t.Fatal(err)
		}
		if err := archive.WriteSecretKey(&sec, ent, passphrase); err != nil {
			e.t.Fatal(err)
		}
		kf = keyFiles{pub.Bytes(), sec.Bytes()}
		keyCache.Store(ck, kf)
	}
	cert, secret = filepath.Join(e.dir, name+".pub.asc"), filepath.Join(e.dir, name+".sec.asc")
	if err := os.WriteFile(cert, kf.cert, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(secret, kf.secret, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return cert, secret
}

// result is what a finished command left.
type result struct {
	code           int
	stdout, stderr string
}

func (e *env) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, prog), append([]string{"--config", e.config}, args...)...)
	cmd.Env = e.osEnv
	if c := e.creds[prog]; c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
	}
	if e.wrap != nil {
		e.wrap(prog, cmd)
	}
	return cmd
}

// scratch returns a new empty directory for a command's output, owned by
// e.member when set.
func (e *env) scratch() string {
	e.t.Helper()
	if e.member == nil {
		return e.t.TempDir()
	}
	d, err := os.MkdirTemp(e.dir, "scratch-")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.Chown(d, int(e.member.Uid), int(e.member.Gid)); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// run runs a binary to completion; stdin may be nil.
func (e *env) run(stdin io.Reader, prog string, args ...string) result {
	e.t.Helper()
	cmd := e.command(prog, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("%s: %v", prog, err)
	}
	return result{code, out.String(), errb.String()}
}

// backup backs data up and returns the backup ID; it fails the test unless
// backup exits 0.
func (e *env) backup(data io.Reader, args ...string) archive.ID {
	e.t.Helper()
	r := e.run(data, "cryophile-backup", append([]string{"--vault", vaultID, "--recipient", e.cert}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("cryophile-backup %v: exit %d\n%s", args, r.code, r.stderr)
	}
	id, err := archive.ParseID(strings.TrimSpace(r.stdout))
	if err != nil {
		e.t.Fatalf("backup printed %q: %v", r.stdout, err)
	}
	return id
}

// idArgs are restore's flags naming id.
func idArgs(id archive.ID) []string {
	a := []string{"--vault", id.Vault.String(), "--ulid", id.ULID.String()}
	if id.Prefix != "" {
		a = append(a, "--prefix", id.Prefix)
	}
	return a
}

// restore restores id through thaw (which must be running) into a file and
// returns the result and the file's SHA-256 and size.
func (e *env) restore(id archive.ID, args ...string) (result, string, int64) {
	e.t.Helper()
	out := filepath.Join(e.scratch(), "out")
	r := e.run(nil, "cryophile-restore", append(append(idArgs(id), "--key", e.secret, "--output", out), args...)...)
	f, err := os.Open(out)
	if err != nil {
		return r, "", 0
	}
	defer f.Close()
	h := sha256.New()
	n, _ := io.Copy(h, f)
	return r, hex.EncodeToString(h.Sum(nil)), n
}

// startDaemon starts cryophile-freeze or cryophile-thaw, logging to
// DIR/PROG.log; it is stopped when the test ends.
func (e *env) startDaemon(prog string, args ...string) *exec.Cmd {
	e.t.Helper()
	cmd := e.command(prog, append([]string{"-v"}, args...)...)
	logf, err := os.OpenFile(filepath.Join(e.dir, prog+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.daemons = append(e.daemons, cmd)
	e.mu.Unlock()
	return cmd
}

// alive reports whether cmd's process still runs: started, not exited
// (a zombie not yet waited for counts as exited).
func alive(cmd *exec.Cmd) bool {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// log returns a daemon's log so far.
func (e *env) log(prog string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, prog+".log"))
	return string(b)
}

func (e *env) stopDaemons() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.daemons {
		if d.ProcessState == nil {
			if e.term != nil {
				e.term(d)
			} else {
				d.Process.Signal(syscall.SIGTERM)
			}
			done := make(chan struct{})
			go func() { d.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				d.Process.Kill()
				<-done
			}
		}
	}
	e.daemons = nil
	if e.t.Failed() {
		for _, p := range []string{"cryophile-freeze", "cryophile-thaw"} {
			if l := e.log(p); l != "" {
				e.t.Logf("%s log (tail):\n%s", p, tail(l, 3000))
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inVault reports whether id's manifest is in the file vault.
func (e *env) inVault(id archive.ID) bool {
	_, err := os.Stat(filepath.Join(e.vault, id.Key(), archive.ManifestName))
	return err == nil
}

// files lists the regular files and symlinks under dir (relative paths),
// skipping nothing.
func files(dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// ---- data ----

// stream is a deterministic, seeded byte stream of n bytes that compresses
// about 2:1; it hashes what it hands out.
type stream struct {
	r    *mrand.ChaCha8
	n    int64
	left int64
	h    io.Writer
	sum  func() string
}

func newStream(n int64, seed uint64) *stream {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	h := sha256.New()
	return &stream{r: mrand.NewChaCha8(s), n: n, left: n, h: h, sum: func() string { return hex.EncodeToString(h.Sum(nil)) }}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	s.r.Read(p)
	// Every other 4 KiB block is zeros: compressible, fast.
	for i := 0; i < len(p); i += 8192 {
		clear(p[i:min(len(p), i+4096)])
	}
	s.left -= int64(len(p))
	s.h.Write(p)
	return len(p), nil
}

// data returns n seeded bytes and their SHA-256.
func data(n int, seed uint64) ([]byte, string) {
	b, _ := io.ReadAll(newStream(int64(n), seed))
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

// syncBuf is a bytes.Buffer safe for a process writing while a test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
