//go:build integration

package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Exit statuses (README, "Exit status").
const (
	exitUsage = 64
	exitData  = 65
	exitIO    = 74
	exitTemp  = 75
)

// assertNothingPublished fails if the spool's freeze/ or backup/ queue holds
// any file: a failed backup must leave nothing behind.
func (e *env) assertNothingPublished(t testing.TB) {
	t.Helper()
	for _, q := range []string{"freeze", "backup"} {
		filepath.WalkDir(filepath.Join(e.spool, q), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("left behind: %s", p)
			}
			return nil
		})
	}
}

func expect(t testing.TB, r result, code int, mention ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstderr: %s", r.code, code, r.stderr)
	}
	for _, s := range mention {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not mention %q:\n%s", s, r.stderr)
		}
	}
}

func TestBackupRefuses(t *testing.T) {
	e := newEnv(t, "")
	cert, secret := e.gpgKey("alice", "")
	data := testData(3*mib, 1)
	tests := []struct {
		name    string
		args    []string
		code    int
		mention []string
	}{
		{"unknown vault", []string{"--vault", "11111111-2222-3333-4444-555555555555"}, exitUsage, []string{"11111111-2222-3333-4444-555555555555"}},
		{"invalid vault", []string{"--vault", "not-a-uuid"}, exitUsage, []string{"not-a-uuid"}},
		{"dotdot prefix", []string{"--vault", vaultID, "--prefix", "a/../b"}, exitUsage, []string{`"a/../b"`}},
		{"absolute prefix", []string{"--vault", vaultID, "--prefix", "/etc"}, exitUsage, []string{`"/etc"`}},
		{"unsafe prefix", []string{"--vault", vaultID, "--prefix", "a b$"}, exitUsage, []string{"a b$"}},
		{"newline prefix", []string{"--vault", vaultID, "--prefix", "a\nb"}, exitUsage, []string{"prefix"}},
		{"bad timestamp", []string{"--vault", vaultID, "--timestamp", "yesterday"}, exitUsage, []string{"yesterday"}},
		{"tiny size", []string{"--vault", vaultID, "--size", "1K"}, exitUsage, []string{"1 MiB"}},
		{"huge size", []string{"--vault", vaultID, "--size", "6T"}, exitUsage, []string{"5 TiB"}},
		{"bad compression", []string{"--vault", vaultID, "--compression", "gzip"}, exitUsage, []string{"gzip"}},
		{"missing recipient file", []string{"--vault", vaultID, "--recipient", "/nonexistent.asc"}, exitUsage, []string{"/nonexistent.asc"}},
		{"recipient not a key", []string{"--vault", vaultID, "--recipient", "/etc/hostname"}, exitUsage, []string{"/etc/hostname"}},
		{"secret key is fine as recipient", nil, 0, nil},
		{"spool missing", []string{"--vault", vaultID, "--spool", "/nonexistent/spool"}, exitIO, []string{"/nonexistent/spool"}},
		{"input read error", []string{"--vault", vaultID, "--input", "/proc/self/mem"}, exitIO, []string{"/proc/self/mem"}},
		{"input missing", []string{"--vault", vaultID, "--input", "/nonexistent/input"}, exitIO, []string{"/nonexistent/input"}},
		{"producer fails", []string{"--vault", vaultID, "--stdin-from-command", "--", "sh", "-c", "head -c 3000000 /dev/urandom; exit 3"}, exitIO, []string{"producer", "nothing published"}},
		{"producer missing", []string{"--vault", vaultID, "--stdin-from-command", "--", "/nonexistent/zfs", "send"}, exitUsage, []string{"/nonexistent/zfs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Flags go before a producer command's "--".
			args := []string{"--recipient", cert}
			if tc.args == nil {
				args = []string{"--vault", vaultID, "--recipient", secret}
			} else if contains(tc.args, "--recipient") {
				args = nil
			}
			if !contains(tc.args, "--size") {
				args = append(args, "--size", "1M")
			}
			args = append(args, tc.args...)
			r := e.run(bytes.NewReader(data), "cryophile-backup", args...)
			expect(t, r, tc.code, tc.mention...)
			if tc.code != 0 {
				if r.stdout != "" {
					t.Errorf("stdout = %q, want nothing (no backup ID for a failed backup)", r.stdout)
				}
				e.assertNothingPublished(t)
			} else {
				os.RemoveAll(filepath.Join(e.spool, "freeze"))
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestBackupExistingULID: an archive ID is never reused.
func TestBackupExistingULID(t *testing.T) {
	e := newEnv(t, "")
	cert, _ := e.gpgKey("alice", "")
	id := e.backup([]byte("first"), "--recipient", cert, "--size", "1M")
	ulid := filepath.Base(id)
	before, _ := os.ReadFile(filepath.Join(e.spool, "freeze", id, "manifest.json"))
	r := e.run(strings.NewReader("second"), "cryophile-backup", "--vault", vaultID, "--recipient", cert, "--ulid", ulid)
	expect(t, r, exitUsage, ulid)
	after, _ := os.ReadFile(filepath.Join(e.spool, "freeze", id, "manifest.json"))
	if !bytes.Equal(before, after) {
		t.Errorf("the existing archive's manifest changed")
	}
}

// TestSpoolReadOnly: a spool that cannot be written is an I/O error naming it.
func TestSpoolReadOnly(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a read-only tmpfs")
	}
	e := newEnv(t, "")
	cert, _ := e.gpgKey("alice", "")
	ro := filepath.Join(e.dir, "ro")
	os.Mkdir(ro, 0o755)
	if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(ro, 0) })
	r := e.run(strings.NewReader("x"), "cryophile-backup", "--vault", vaultID, "--recipient", cert, "--spool", ro)
	expect(t, r, exitIO, ro)
}

// TestDiskFull: the spool's filesystem fills up while a fragment is being
// written (back-pressure saw room for it when it started); backup fails
// cleanly, says why, and publishes nothing.
func TestDiskFull(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	e := newEnv(t, "[budget]\nreserve = \"1MiB\"\n")
	cert, _ := e.gpgKey("alice", "")
	if err := syscall.Mount("tmpfs", e.spool, "tmpfs", 0, "size=24m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(e.spool, 0) })
	cmd := e.command("cryophile-backup", "--vault", vaultID, "--recipient", cert, "--size", "16M", "--compression", "none")
	stdin, _ := cmd.StdinPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(randomBytes(2*mib, 1))
	// Once the first fragment is being staged, another writer takes the
	// rest of the filesystem.
	waitFor(t, "a staged fragment", 30*time.Second, func() bool {
		return spoolBytes(t, filepath.Join(e.spool, "backup")) > 0
	})
	filler, err := os.Create(filepath.Join(e.spool, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(filler, bytes.NewReader(make([]byte, 24*mib))) // fails with ENOSPC
	filler.Close()
	stdin.Write(randomBytes(12*mib, 2))
	stdin.Close()
	cmd.Wait()
	os.Remove(filepath.Join(e.spool, "filler"))
	expect(t, result{code: cmd.ProcessState.ExitCode(), stderr: errb.String()}, exitIO, "no space left")
	e.assertNothingPublished(t)
}

// TestRestoreRefuses covers bad keys and damaged archives.
func TestRestoreRefuses(t *testing.T) {
	e := newEnv(t, "")
	cert, secret := e.gpgKey("alice", "")
	_, otherSecret := e.gpgKey("mallory", "")
	protCert, protSecret := e.gpgKey("prot", "correct horse")
	data := randomBytes(3*mib+5, 9)
	id := e.backup(data, "--recipient", cert, "--recipient", protCert, "--size", "1M")
	clean := filepath.Join(e.spool, "freeze", id)
	nfrag := len(fragments(t, clean))
	if nfrag < 4 {
		t.Fatalf("%d fragments, want at least 4", nfrag)
	}
	// damaged copies the archive and applies a change to the copy.
	damaged := func(t *testing.T, change func(dir string)) string {
		dir := filepath.Join(t.TempDir(), "archive")
		if out, err := exec.Command("cp", "-r", clean, dir).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		change(dir)
		return dir
	}
	passFile := filepath.Join(e.dir, "pass")
	os.WriteFile(passFile, []byte("wrong horse\n"), 0o600)
	tests := []struct {
		name    string
		dir     string
		key     string
		extra   []string
		code    int
		mention []string
	}{
		{"public-only key", clean, cert, nil, exitUsage, []string{cert}},
		{"unreadable key", clean, "/nonexistent/key.asc", nil, exitUsage, []string{"/nonexistent/key.asc"}},
		{"not a key", clean, "/etc/hostname", nil, exitUsage, []string{"/etc/hostname"}},
		{"not a recipient", clean, otherSecret, nil, exitData, []string{"recipient"}},
		{"wrong passphrase", clean, protSecret, []string{"--pass-fd", "3"}, exitData, []string{"passphrase"}},
		{"corrupted byte", damaged(t, func(d string) { flip(t, filepath.Join(d, "chunk.000002"), 1000) }), secret, nil, exitData, []string{"chunk.000002", "sha256"}},
		{"missing fragment", damaged(t, func(d string) { os.Remove(filepath.Join(d, "chunk.000003")) }), secret, nil, exitData, []string{"chunk.000003"}},
		{"truncated last fragment", damaged(t, func(d string) { truncate(t, filepath.Join(d, lastName(nfrag)), 10) }), secret, nil, exitData, []string{lastName(nfrag)}},
		{"extra unknown file", damaged(t, func(d string) { os.WriteFile(filepath.Join(d, "chunk.999999"), []byte("x"), 0o644) }), secret, nil, exitData, []string{"chunk.999999"}},
		{"unknown format", damaged(t, func(d string) { replaceIn(t, filepath.Join(d, "manifest.json"), `"cryophile/1"`, `"cryophile/2"`) }), secret, nil, exitData, []string{"cryophile/2"}},
		{"manifest missing", damaged(t, func(d string) { os.Remove(filepath.Join(d, "manifest.json")) }), secret, nil, exitData, []string{"manifest.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := e.command("cryophile-restore", append([]string{"--from", tc.dir, "--key", tc.key, "--output", out}, tc.extra...)...)
			if contains(tc.extra, "--pass-fd") {
				f, _ := os.Open(passFile)
				defer f.Close()
				cmd.ExtraFiles = []*os.File{f}
			}
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			r := result{code: cmd.ProcessState.ExitCode(), stderr: errb.String()}
			_ = err
			expect(t, r, tc.code, tc.mention...)
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed restore left its output file %s", out)
			}
		})
	}
	t.Run("right passphrase", func(t *testing.T) {
		os.WriteFile(passFile, []byte("correct horse\n"), 0o600)
		out := filepath.Join(t.TempDir(), "out")
		cmd := e.command("cryophile-restore", "--from", clean, "--key", protSecret, "--pass-fd", "3", "--output", out)
		f, _ := os.Open(passFile)
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("restore: %v\n%s", err, b)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, data) {
			t.Fatalf("restored %d bytes, want %d", len(got), len(data))
		}
	})
}

func lastName(n int) string { return fmt.Sprintf("chunk.%06d", n) }

func flip(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t testing.TB, path string, by int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-by); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t testing.TB, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %s", path, old)
	}
	os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}
