//go:build integration

package e2e_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cryophile-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	// go build names binaries after their directories; install them under
	// their real names.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "cryophile-") {
			os.Rename(filepath.Join(dir, e.Name()), filepath.Join(dir, "cryophile-"+e.Name()))
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when tool is missing, or fails it under
// CRYOPHILE_INTEGRATION=1 (make test), where a missing tool is a broken
// install step.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CRYOPHILE_INTEGRATION") != "" {
				t.Fatalf("%s not installed (scripts/deps.sh installs it)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

const vaultID = "0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"

// env is one throwaway installation: config, spool, vault directory, keys.
type env struct {
	t      testing.TB
	dir    string
	spool  string
	config string
}

func newEnv(t testing.TB, extraConfig string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, spool: filepath.Join(dir, "spool"), config: filepath.Join(dir, "cryophile.toml")}
	if err := os.Mkdir(e.spool, 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("spool = %q\n\n%s\n[[vault]]\nid = %q\nurl = \"file://%s/vault\"\n", e.spool, extraConfig, vaultID, dir)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// result is what a finished command left.
type result struct {
	code           int
	stdout, stderr string
}

// run runs a cryophile binary with the env's config; stdin may be nil.
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

func (e *env) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, prog), append([]string{"--config", e.config}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+filepath.Join(e.dir, "gnupg"))
	return cmd
}

// backup runs cryophile-backup on data and returns the backup ID, failing the
// test unless it succeeds.
func (e *env) backup(data []byte, args ...string) string {
	e.t.Helper()
	r := e.run(bytes.NewReader(data), "cryophile-backup", append([]string{"--vault", vaultID}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("cryophile-backup %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

// thaw stands in for cryophile-thaw: it moves a complete archive from
// freeze/ to restore/, fragments first, manifest last.
func (e *env) thaw(id string) {
	e.t.Helper()
	from, to := filepath.Join(e.spool, "freeze", id), filepath.Join(e.spool, "restore", id)
	if err := os.MkdirAll(to, 0o750); err != nil {
		e.t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() != "manifest.json" {
			if err := os.Rename(filepath.Join(from, ent.Name()), filepath.Join(to, ent.Name())); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	if err := os.Rename(filepath.Join(from, "manifest.json"), filepath.Join(to, "manifest.json")); err != nil {
		e.t.Fatal(err)
	}
}

// fragments lists the chunk.* files of dir.
func fragments(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "chunk.*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testData returns n bytes that compress somewhat, like real streams: runs
// of text-ish bytes mixed with random ones.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; {
		run := 1 + r.IntN(64)
		if r.IntN(2) == 0 {
			c := byte('a' + r.IntN(26))
			for j := 0; j < run && i < n; j++ {
				b[i] = c
				i++
			}
		} else {
			for j := 0; j < run && i < n; j++ {
				b[i] = byte(r.Uint32())
				i++
			}
		}
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// gpgKey makes a key with gpg --quick-gen-key (ed25519 + cv25519 subkey) in
// the env's GNUPGHOME and exports its certificate and secret key; a
// non-empty passphrase protects the secret key.
func (e *env) gpgKey(name, passphrase string) (cert, secret string) {
	e.t.Helper()
	need(e.t, "gpg")
	home := filepath.Join(e.dir, "gnupg")
	os.MkdirAll(home, 0o700)
	uid := name + " <" + name + "@example.org>"
	e.gpg("--passphrase", passphrase, "--quick-gen-key", uid, "default", "default", "never")
	cert, secret = filepath.Join(e.dir, name+".pub.asc"), filepath.Join(e.dir, name+".sec.asc")
	os.WriteFile(cert, e.gpg("--armor", "--export", uid), 0o644)
	os.WriteFile(secret, e.gpg("--passphrase", passphrase, "--armor", "--export-secret-keys", uid), 0o600)
	return cert, secret
}

// gpg runs gpg in batch mode in the env's GNUPGHOME and returns stdout.
func (e *env) gpg(args ...string) []byte {
	e.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", filepath.Join(e.dir, "gnupg"), "--batch", "--yes", "--pinentry-mode", "loopback", "--quiet"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("gpg %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
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

// randomBytes returns n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// patternReader is an endless, deterministic stream that compresses about
// 2:1 like real file-system data, fast enough not to be the bottleneck.
type patternReader struct {
	block []byte
	off   int
	r     *rand.Rand
}

func newPatternReader() *patternReader {
	return &patternReader{block: testData(4<<20, 99), r: rand.New(rand.NewPCG(1, 2))}
}

func (p *patternReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if p.off == len(p.block) {
			// Vary the block a little so the stream is not periodic.
			for i := 0; i < 64; i++ {
				p.block[p.r.IntN(len(p.block))] = byte(p.r.Uint32())
			}
			p.off = 0
		}
		c := copy(b[n:], p.block[p.off:])
		n += c
		p.off += c
	}
	return n, nil
}

// hashWriter counts and hashes what is written to it.
type hashWriter struct {
	h hash.Hash
	n int64
}

func newHashWriter() *hashWriter { return &hashWriter{h: sha256.New()} }

func (w *hashWriter) Write(b []byte) (int, error) {
	w.n += int64(len(b))
	return w.h.Write(b)
}

func (w *hashWriter) sum() string { return hex.EncodeToString(w.h.Sum(nil)) }
