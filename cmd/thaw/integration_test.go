//go:build integration

package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsnotify/fsnotify"
	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/internal/s3test/glacier"
	"github.com/cryophile/cryophile/internal/testseed"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/thaw"
)

// binDir holds cryophile-backup, -freeze, -thaw and -restore, built once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cryophile-thaw-test")
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
	os.Exit(code)
}

// classes are the storage classes of the rig's vaults.
var classes = []string{"GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "STANDARD"}

// rig is a spool, a configuration with one S3 vault per storage class (all
// in one bucket of the local S3 service behind the Glacier proxy), and keys.
type rig struct {
	t       *testing.T
	dir     string
	spool   string
	config  string
	env     []string
	s3      *s3test.Env
	vaults  map[string]string // class → vault UUID
	cert    string
	secret  string
	other   string // a secret key that is not a recipient
	sp      *spool.Spool
	prefix  string
	mu      sync.Mutex
	daemons []*exec.Cmd
}

func newRig(t *testing.T, extra string) *rig {
	t.Helper()
	s3env := s3test.StartWith(t, glacier.Options{Delays: glacier.DefaultDelays()})
	dir := t.TempDir()
	r := &rig{t: t, dir: dir, spool: filepath.Join(dir, "spool"), config: filepath.Join(dir, "cryophile.toml"),
		s3: s3env, vaults: map[string]string{}, prefix: "host/pool"}
	if err := os.Mkdir(r.spool, 0o750); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "spool = %q\n%s\n", r.spool, extra)
	for _, c := range classes {
		r.vaults[c] = uuid.NewString()
		fmt.Fprintf(&conf, "[[vault]]\nid = %q\nurl = \"s3://%s/%s\"\nstorage_class = %q\nendpoint = %q\npath_style = true\nregion = %q\n\n",
			r.vaults[c], s3env.Bucket, strings.ToLower(c), c, s3env.Endpoint, s3env.Region)
	}
	r.vaults["missing-bucket"] = uuid.NewString()
	fmt.Fprintf(&conf, "[[vault]]\nid = %q\nurl = \"s3://no-such-bucket-here\"\nendpoint = %q\npath_style = true\nregion = %q\n\n",
		r.vaults["missing-bucket"], s3env.Endpoint, s3env.Region)
	if err := os.WriteFile(r.config, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	r.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + s3env.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3env.SecretKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	r.cert, r.secret = r.key("alice")
	_, r.other = r.key("mallory")
	sp, err := spool.Open(r.spool)
	if err != nil {
		t.Fatal(err)
	}
	r.sp = sp
	t.Cleanup(r.stopDaemons)
	return r
}

// key makes an OpenPGP key (ed25519 + cv25519) and writes its certificate
// and secret key, armored.
func (r *rig) key(name string) (cert, secret string) {
	r.t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		r.t.Fatal(err)
	}
	write := func(path, typ string, ser func(io.Writer) error) {
		var b bytes.Buffer
		w, err := armor.Encode(&b, typ, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		if err := ser(w); err != nil {
			r.t.Fatal(err)
		}
		w.Close()
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			r.t.Fatal(err)
		}
	}
	cert, secret = filepath.Join(r.dir, name+".pub.asc"), filepath.Join(r.dir, name+".sec.asc")
	write(cert, openpgp.PublicKeyType, e.Serialize)
	write(secret, openpgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivate(w, nil) })
	return cert, secret
}

func (r *rig) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, prog), append([]string{"--config", r.config}, args...)...)
	cmd.Env = r.env
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

func (r *rig) run(stdin []byte, prog string, args ...string) result {
	r.t.Helper()
	cmd := r.command(prog, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("%s: %v", prog, err)
	}
	return result{code, out.String(), errb.String()}
}

// backup backs data up to the vault of class and returns the backup ID.
func (r *rig) backup(class string, data []byte) archive.ID {
	r.t.Helper()
	res := r.run(data, "cryophile-backup", "--vault", r.vaults[class], "--prefix", r.prefix, "--recipient", r.cert, "--size", "1M", "--compression", "zstd")
	if res.code != 0 {
		r.t.Fatalf("backup: exit %d\n%s", res.code, res.stderr)
	}
	id, err := archive.ParseID(strings.TrimSpace(res.stdout))
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// freeze uploads everything in freeze/.
func (r *rig) freeze() {
	r.t.Helper()
	if res := r.run(nil, "cryophile-freeze", "--once"); res.code != 0 {
		r.t.Fatalf("freeze --once: exit %d\n%s", res.code, res.stderr)
	}
}

// startThaw starts the thaw daemon; it is stopped when the test ends.
func (r *rig) startThaw() *exec.Cmd {
	r.t.Helper()
	cmd := r.command("cryophile-thaw", "-v")
	logf, err := os.OpenFile(filepath.Join(r.dir, "thaw.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.daemons = append(r.daemons, cmd)
	r.mu.Unlock()
	// Ready once it holds the spool's thaw lock.
	waitFor(r.t, "cryophile-thaw holding its lock", 20*time.Second, func() bool {
		ok, _ := thaw.Running(r.sp)
		return ok
	})
	return cmd
}

func (r *rig) stopDaemons() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.daemons {
		if d.ProcessState == nil {
			d.Process.Signal(syscall.SIGTERM)
			d.Wait()
		}
	}
	if r.t.Failed() {
		if b, err := os.ReadFile(filepath.Join(r.dir, "thaw.log")); err == nil {
			r.t.Logf("thaw log:\n%s", tail(string(b), 4000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// restore runs cryophile-restore of id into a new output file and returns
// the result and the file's content.
func (r *rig) restore(id archive.ID, key string, args ...string) (result, []byte) {
	r.t.Helper()
	out := filepath.Join(r.t.TempDir(), "out")
	res := r.run(nil, "cryophile-restore", append([]string{"--vault", id.Vault.String(), "--prefix", id.Prefix, "--ulid", id.ULID.String(), "--key", key, "--output", out}, args...)...)
	b, _ := os.ReadFile(out)
	return res, b
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomBytes(n int, seed uint64) []byte {
	c := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	b := make([]byte, n)
	c.Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFullCycle: backup → freeze → thaw → restore, bit-identical, for each
// storage class and tier, with the proxy's scaled restore delays
// (Expedited 1 s, Standard 3 s, Bulk 5 s), all served by one thaw.
func TestFullCycle(t *testing.T) {
	r := newRig(t, "[thaw]\npoll_interval = \"1s\"\n")
	cases := []struct {
		class, tier string
		note        bool
	}{
		{"GLACIER", "expedited", false},
		{"GLACIER", "bulk", false},
		{"DEEP_ARCHIVE", "expedited", true}, // refused by AWS: Standard
		{"DEEP_ARCHIVE", "bulk", false},
		{"GLACIER_IR", "bulk", false},
		{"STANDARD", "standard", false},
	}
	ids := make([]archive.ID, len(cases))
	data := make([][]byte, len(cases))
	for i, tc := range cases {
		data[i] = randomBytes(2<<20+1000*i, uint64(i))
		ids[i] = r.backup(tc.class, data[i])
	}
	r.freeze()
	r.startThaw()
	for i, tc := range cases {
		t.Run(tc.class+"/"+tc.tier, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			res, got := r.restore(ids[i], r.secret, "--tier", tc.tier, "--days", "2")
			if res.code != 0 {
				t.Fatalf("restore: exit %d\n%s", res.code, res.stderr)
			}
			if sha(got) != sha(data[i]) {
				t.Fatalf("restored %d bytes (%s), want %d (%s)", len(got), sha(got), len(data[i]), sha(data[i]))
			}
			if !strings.Contains(res.stderr, "filed restore request") || !strings.Contains(res.stderr, "estimate:") {
				t.Errorf("stderr lacks the request or the estimate:\n%s", res.stderr)
			}
			if got := strings.Contains(res.stderr, "not available for DEEP_ARCHIVE"); got != tc.note {
				t.Errorf("tier fallback note shown = %v, want %v:\n%s", got, tc.note, res.stderr)
			}
			t.Logf("%s %s: %v", tc.class, tc.tier, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestStreaming: restore writes plaintext before thaw publishes the last
// fragment (the budget of restore/ holds thaw back until restore consumes),
// measured by timestamps. The archive is large next to what restore's
// decrypt and decompress pipeline reads ahead (several MiB).
func TestStreaming(t *testing.T) {
	r := newRig(t, "[budget]\nrestore_max_bytes = \"3MiB\"\n[thaw]\npoll_interval = \"1s\"\n")
	data := randomBytes(32<<20, 77)
	id := r.backup("GLACIER", data)
	r.freeze()
	dir := r.sp.Dir(spool.QueueRestore, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	created := make(chan map[string]time.Time, 1)
	go func() {
		m := map[string]time.Time{}
		for ev := range w.Events {
			if ev.Has(fsnotify.Create) {
				m[filepath.Base(ev.Name)] = time.Now()
			}
		}
		created <- m
	}()
	r.startThaw()
	cmd := r.command("cryophile-restore", "--vault", id.Vault.String(), "--prefix", id.Prefix, "--ulid", id.ULID.String(), "--key", r.secret, "--tier", "expedited")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(stdout, first); err != nil {
		t.Fatalf("no plaintext: %v\n%s", err, errb.String())
	}
	firstAt := time.Now()
	rest, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("restore: %v\n%s", err, errb.String())
	}
	if got := append(first, rest...); sha(got) != sha(data) {
		t.Fatalf("restored %d bytes, not the %d backed up", len(got), len(data))
	}
	w.Close()
	m := <-created
	n := 0
	var last string
	for name := range m {
		if k, err := archive.ParseFragmentName(name); err == nil && k > n {
			n, last = k, name
		}
	}
	if n < 30 {
		t.Fatalf("saw %d fragments published (%v), want about 32", n, m)
	}
	if !firstAt.Before(m[last]) {
		t.Errorf("first plaintext byte at %v, last fragment %s published at %v: not streaming", firstAt, last, m[last])
	}
	t.Logf("first plaintext %v before %s was published", m[last].Sub(firstAt).Round(time.Millisecond), last)
}

// TestKill9: thaw is killed with SIGKILL at seeded random points, exactly
// kill9Kills times a run, and restarted, while restores wait and stream.
// Restores run one at a time; one that finishes before the last kill is
// followed by the next archive's, so every kill lands while a restore is
// in progress however fast the machine. Every restore completes
// bit-identical, no fragment is published twice, none is ever seen partial.
func TestKill9(t *testing.T) {
	r := newRig(t, "[budget]\nrestore_max_bytes = \"4MiB\"\n[thaw]\nconcurrency = 2\npoll_interval = \"1s\"\n")
	var archives []*killRestore
	for i := range 3 {
		data := randomBytes(32<<20, 99+uint64(i))
		archives = append(archives, &killRestore{id: r.backup("GLACIER", data), data: data})
	}
	r.freeze()
	if _, err := os.Stat(filepath.Join(r.spool, "freeze", archives[0].id.Dir(), archive.ManifestName)); err == nil {
		t.Fatalf("freeze left the manifest in freeze/")
	}
	rng := mrand.New(mrand.NewPCG(testseed.Seed(t, 2026), 4))
	restores := 0
	start := func() *killRestore {
		a := *archives[restores%len(archives)]
		restores++
		a.start(r)
		return &a
	}
	cur := start()
	for kill := range kill9Kills {
		if cur.finished() {
			cur.check(r)
			t.Logf("kill %d: restore %d finished, starting the next", kill, restores)
			cur = start()
		}
		d := r.startThaw()
		delay := time.Duration(20+rng.IntN(300)) * time.Millisecond
		select {
		case cur.err = <-cur.exited:
			cur.done = true
		case <-time.After(delay):
		}
		d.Process.Kill()
		d.Wait()
		t.Logf("kill %d: killed after %v", kill, delay)
	}
	r.startThaw()
	cur.wait(r, 2*time.Minute)
	cur.check(r)
	t.Logf("%d kills; %d restores", kill9Kills, restores)
}

// kill9Kills is how many times TestKill9 kills thaw in a run.
const kill9Kills = 10

// killRestore is one restore of TestKill9, watched: fsnotify on its
// restore/ directory counts what thaw publishes there and catches partial
// fragments.
type killRestore struct {
	id   archive.ID
	data []byte

	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan error
	err    error
	done   bool
	w      *fsnotify.Watcher
	seen   chan killSeen
}

// killSeen is what the watcher saw in a restore's directory.
type killSeen struct {
	count   map[string]int
	partial []string
}

// start watches the restore directory and starts cryophile-restore.
func (k *killRestore) start(r *rig) {
	r.t.Helper()
	dir := r.sp.Dir(spool.QueueRestore, k.id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		r.t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := w.Add(dir); err != nil {
		r.t.Fatal(err)
	}
	k.w, k.seen = w, make(chan killSeen, 1)
	go func() {
		var m *archive.Manifest
		s := killSeen{count: map[string]int{}}
		for ev := range w.Events {
			name := filepath.Base(ev.Name)
			if !ev.Has(fsnotify.Create) || strings.HasPrefix(name, ".") {
				continue
			}
			s.count[name]++
			if name == archive.ManifestName && m == nil {
				m, _ = archive.ReadManifestFile(ev.Name)
			}
			if m == nil {
				continue
			}
			if f, ok := m.Fragment(name); ok {
				if fi, err := os.Stat(ev.Name); err == nil && fi.Size() != f.Size {
					s.partial = append(s.partial, fmt.Sprintf("%s: %d bytes of %d", name, fi.Size(), f.Size))
				}
			}
		}
		k.seen <- s
	}()
	out := filepath.Join(r.t.TempDir(), "out")
	k.cmd = r.command("cryophile-restore", "--vault", k.id.Vault.String(), "--prefix", k.id.Prefix, "--ulid", k.id.ULID.String(), "--key", r.secret, "--tier", "expedited", "--output", out)
	k.stderr.Reset()
	k.cmd.Stderr = &k.stderr
	if err := k.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	k.exited = make(chan error, 1)
	go func() { k.exited <- k.cmd.Wait() }()
}

// finished reports whether the restore has exited.
func (k *killRestore) finished() bool {
	if k.done {
		return true
	}
	select {
	case k.err = <-k.exited:
		k.done = true
	default:
	}
	return k.done
}

// wait waits for the restore to exit.
func (k *killRestore) wait(r *rig, d time.Duration) {
	r.t.Helper()
	if k.finished() {
		return
	}
	select {
	case k.err = <-k.exited:
		k.done = true
	case <-time.After(d):
		k.cmd.Process.Kill()
		r.t.Fatalf("restore of %s did not finish\n%s", k.id, k.stderr.String())
	}
}

// check checks a finished restore: exit 0, the data bit-identical, every
// name published once, nothing seen partial.
func (k *killRestore) check(r *rig) {
	r.t.Helper()
	if k.err != nil {
		r.t.Fatalf("restore of %s: %v\n%s", k.id, k.err, k.stderr.String())
	}
	got, _ := os.ReadFile(k.cmd.Args[len(k.cmd.Args)-1])
	if sha(got) != sha(k.data) {
		r.t.Fatalf("restore of %s: %d bytes, not the %d backed up", k.id, len(got), len(k.data))
	}
	k.w.Close()
	s := <-k.seen
	for name, n := range s.count {
		if n != 1 && name != spool.StatusName {
			r.t.Errorf("restore of %s: %s published %d times", k.id, name, n)
		}
	}
	if len(s.partial) > 0 {
		r.t.Errorf("restore of %s: partial files seen: %v", k.id, s.partial)
	}
}

// TestThawNotRunning: restore says it waits for thaw and how to start it;
// cryophile-thaw --once then serves the request while restore streams.
func TestThawNotRunning(t *testing.T) {
	r := newRig(t, "[thaw]\npoll_interval = \"1s\"\n")
	data := randomBytes(1<<20, 5)
	id := r.backup("GLACIER", data)
	r.freeze()
	out := filepath.Join(t.TempDir(), "out")
	cmd := r.command("cryophile-restore", "--vault", id.Vault.String(), "--prefix", id.Prefix, "--ulid", id.ULID.String(), "--key", r.secret, "--tier", "expedited", "--output", out)
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, "the hint on stderr", 20*time.Second, func() bool {
		s := errb.String()
		return strings.Contains(s, "not running") && strings.Contains(s, "systemctl start cryophile-thaw") && strings.Contains(s, "cryophile-thaw --once")
	})
	if res := r.run(nil, "cryophile-thaw", "--once"); res.code != 0 {
		t.Fatalf("thaw --once: exit %d\n%s", res.code, res.stderr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("restore: %v\n%s", err, errb.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("restore did not finish\n%s", errb.String())
	}
	if got, _ := os.ReadFile(out); sha(got) != sha(data) {
		t.Fatal("restored data differs")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailures: what thaw cannot do reaches restore as a clear error and
// the documented exit status.
func TestFailures(t *testing.T) {
	r := newRig(t, "[thaw]\npoll_interval = \"1s\"\n")
	data := randomBytes(3<<20, 11)
	good := r.backup("STANDARD", data)
	corrupt := r.backup("GLACIER_IR", randomBytes(3<<20, 12))
	r.freeze()
	// Flip a byte of the second fragment where versitygw keeps it.
	p := filepath.Join(r.s3.Server.Dir, r.s3.Bucket, "glacier_ir", filepath.FromSlash(corrupt.Key()), "chunk.000002")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[1000] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// An incomplete archive: a fragment and no manifest.
	incomplete, _ := archive.NewID(good.Vault, good.Prefix, time.Now())
	if _, err := r.s3.Client.PutObject(context.Background(), &awss3.PutObjectInput{
		Bucket: aws.String(r.s3.Bucket), Key: aws.String("standard/" + incomplete.Key() + "/chunk.000001"), Body: bytes.NewReader([]byte("x")),
	}); err != nil {
		t.Fatal(err)
	}
	absent, _ := archive.NewID(good.Vault, good.Prefix, time.Now())
	unavailable, _ := archive.NewID(uuid.MustParse(r.vaults["missing-bucket"]), "", time.Now())
	r.startThaw()
	for _, tc := range []struct {
		name    string
		id      archive.ID
		key     string
		code    int
		mention []string
	}{
		{"wrong key", good, r.other, 65, []string{"recipient"}},
		{"corrupt fragment", corrupt, r.secret, 65, []string{"chunk.000002", "quarantined"}},
		{"incomplete", incomplete, r.secret, 65, []string{"incomplete"}},
		{"absent", absent, r.secret, 65, []string{"does not exist"}},
		{"vault unavailable", unavailable, r.secret, 69, []string{"no-such-bucket-here"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, out := r.restore(tc.id, tc.key)
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", res.code, tc.code, res.stderr)
			}
			for _, s := range tc.mention {
				if !strings.Contains(res.stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, res.stderr)
				}
			}
			if len(out) > 0 {
				t.Errorf("a failed restore left %d bytes of output", len(out))
			}
		})
	}
	q, _ := os.ReadDir(thaw.QuarantineDir(r.sp, corrupt))
	if len(q) != 1 {
		t.Errorf("quarantine holds %d files, want the bad chunk.000002", len(q))
	}
	// The good archive still restores with the right key, and list shows
	// the incomplete one.
	if res, out := r.restore(good, r.secret); res.code != 0 || sha(out) != sha(data) {
		t.Fatalf("restore of the good archive: exit %d\n%s", res.code, res.stderr)
	}
	res := r.run(nil, "cryophile-thaw", "list", "--vault", good.Vault.String(), "--prefix", good.Prefix)
	if res.code != 0 || !strings.Contains(res.stdout, good.String()) || !strings.Contains(res.stdout, incomplete.String()+" ") || !strings.Contains(res.stdout, "incomplete") {
		t.Errorf("list: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestLatestAndCancel: --latest asks thaw for the listing; --cancel
// withdraws a request and thaw removes what it published.
func TestLatestAndCancel(t *testing.T) {
	r := newRig(t, "[thaw]\npoll_interval = \"1s\"\n")
	old := randomBytes(1<<20, 1)
	r.backup("GLACIER_IR", old)
	newer := randomBytes(1<<20, 2)
	newID := r.backup("GLACIER_IR", newer)
	slow := r.backup("GLACIER", randomBytes(1<<20, 3))
	r.freeze()
	r.startThaw()
	out := filepath.Join(t.TempDir(), "out")
	res := r.run(nil, "cryophile-restore", "--vault", newID.Vault.String(), "--prefix", newID.Prefix, "--latest", "--key", r.secret, "--output", out)
	if got, _ := os.ReadFile(out); res.code != 0 || sha(got) != sha(newer) {
		t.Fatalf("restore --latest: exit %d\n%s", res.code, res.stderr)
	}
	res = r.run(nil, "cryophile-thaw", "estimate", "--vault", slow.Vault.String(), "--prefix", slow.Prefix, "--latest", "--tier", "standard")
	if res.code != 0 || !strings.Contains(res.stdout, "restore requests (GLACIER, tier Standard)") {
		t.Errorf("estimate: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// A Bulk restore (5 s) is withdrawn while it runs.
	cmd := r.command("cryophile-restore", "--vault", slow.Vault.String(), "--prefix", slow.Prefix, "--ulid", slow.ULID.String(), "--key", r.secret, "--output", filepath.Join(t.TempDir(), "o2"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "thaw's status", 20*time.Second, func() bool {
		st, err := thaw.ReadStatus(r.sp, slow)
		return err == nil && st.Fragments.Restoring > 0
	})
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 75 {
		t.Errorf("interrupted restore: exit %d, want 75", code)
	}
	if reqs, _ := thaw.RestoreRequests(r.sp, slow); len(reqs) != 1 {
		t.Fatalf("after Ctrl-C %d requests are filed, want the one left in place", len(reqs))
	}
	res = r.run(nil, "cryophile-restore", "--cancel", "--vault", slow.Vault.String(), "--prefix", slow.Prefix, "--ulid", slow.ULID.String())
	if res.code != 0 || !strings.Contains(res.stderr, "withdrew") {
		t.Fatalf("--cancel: exit %d\n%s", res.code, res.stderr)
	}
	waitFor(t, "restore directory removed by thaw", 20*time.Second, func() bool {
		_, err := os.Stat(r.sp.Dir(spool.QueueRestore, slow))
		return os.IsNotExist(err)
	})
}

// TestRequestEnds: restores of one archive run back to back (the next may
// find the previous one's request before thaw removed it: it must not wait
// for ever on it), and a restore waiting for a fragment whose request is
// withdrawn by --cancel from another shell exits 75 naming the request
// instead of waiting for ever.
func TestRequestEnds(t *testing.T) {
	r := newRig(t, "[thaw]\npoll_interval = \"1s\"\n")
	data := randomBytes(3<<20, 11)
	id := r.backup("GLACIER_IR", data)
	slow := r.backup("GLACIER", randomBytes(1<<20, 12))
	r.freeze()
	r.startThaw()
	for i := range 5 {
		out := filepath.Join(t.TempDir(), "out")
		cmd := r.command("cryophile-restore", "--vault", id.Vault.String(), "--prefix", id.Prefix, "--ulid", id.ULID.String(), "--key", r.secret, "--output", out)
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		timer.Stop()
		if got, _ := os.ReadFile(out); err != nil || sha(got) != sha(data) {
			t.Fatalf("restore %d of %s (killed after a minute): %v, %d bytes\n%s", i+1, id, err, len(got), stderr.String())
		}
		t.Logf("restore %d:\n%s", i+1, stderr.String())
	}

	// Bulk (5 s): the manifest (STANDARD) comes at once, the fragment waits.
	out := filepath.Join(t.TempDir(), "o")
	cmd := r.command("cryophile-restore", "--vault", slow.Vault.String(), "--prefix", slow.Prefix, "--ulid", slow.ULID.String(), "--key", r.secret, "--output", out)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "restore waiting for a fragment", 20*time.Second, func() bool {
		st, err := thaw.ReadStatus(r.sp, slow)
		return err == nil && st.Fragments.Restoring > 0 && strings.Contains(stderr.String(), "estimate")
	})
	res := r.run(nil, "cryophile-restore", "--cancel", "--vault", slow.Vault.String(), "--prefix", slow.Prefix, "--ulid", slow.ULID.String())
	if res.code != 0 {
		t.Fatalf("--cancel: exit %d\n%s", res.code, res.stderr)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("restore still waiting 30 s after its request was withdrawn\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 75 || !strings.Contains(stderr.String(), "withdrawn") {
		t.Errorf("restore whose request was withdrawn: exit %d, want 75 saying so\n%s", code, stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("--output %s left after the withdrawn restore", out)
	}
}

// TestStatus: --status says the daemon never ran (exit 69), then that it
// is running, with the queue, then that it stopped; --json prints the file.
func TestStatus(t *testing.T) {
	r := newRig(t, "")
	res := r.run(nil, "cryophile-thaw", "--status")
	if res.code != 69 || !strings.Contains(res.stderr, "never ran on this spool") {
		t.Fatalf("--status before any run: exit %d, stderr %q; want 69 and \"never ran\"", res.code, res.stderr)
	}
	metrics := filepath.Join(t.TempDir(), "thaw.prom")
	cmd := r.command("cryophile-thaw", "--metrics-textfile", metrics)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "--status saying running and ready", 20*time.Second, func() bool {
		res = r.run(nil, "cryophile-thaw", "--status")
		return res.code == 0 && strings.Contains(res.stdout, "cryophile-thaw: running, pid ") && strings.Contains(res.stdout, "ready: yes")
	})
	if !strings.Contains(res.stdout, "queue: idle: no restore request") || !strings.Contains(res.stdout, "errors: none") {
		t.Errorf("--status:\n%s\nwant the queue and no errors", res.stdout)
	}
	// --status released the lock it tested: the daemon still holds it.
	if ok, err := thaw.Running(r.sp); err != nil || !ok {
		t.Errorf("thaw.Running after --status = %t, %v; want true", ok, err)
	}
	res = r.run(nil, "cryophile-thaw", "--status", "--json")
	var st struct {
		Format  string `json:"format"`
		PID     int    `json:"pid"`
		Ready   bool   `json:"ready"`
		Stopped bool   `json:"stopped"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || res.code != 0 {
		t.Fatalf("--status --json: exit %d, %v:\n%s", res.code, err, res.stdout)
	}
	if st.Format != "cryophile-daemon-status/1" || st.PID != cmd.Process.Pid || !st.Ready || st.Stopped {
		t.Errorf("--status --json = %+v, want format cryophile-daemon-status/1, pid %d, ready", st, cmd.Process.Pid)
	}
	if b, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(b), `cryophile_daemon_up{program="cryophile-thaw"} 1`) {
		t.Errorf("metrics textfile (%v):\n%s\nwant cryophile_daemon_up 1", err, b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("thaw after SIGTERM: %v", err)
	}
	res = r.run(nil, "cryophile-thaw", "--status")
	if res.code != 0 || !strings.Contains(res.stdout, "cryophile-thaw: not running; last run: pid "+fmt.Sprint(cmd.Process.Pid)) {
		t.Errorf("--status after the stop: exit %d:\n%s%s\nwant not running, last run with the pid", res.code, res.stdout, res.stderr)
	}
}
