package file_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
)

// crashRootEnv names the vault the crash helper process writes to.
const crashRootEnv = "CRYOPHILE_TEST_CRASH_ROOT"

// stallingReader gives one block of bytes, says so on ready, then blocks
// until the process is killed.
type stallingReader struct {
	sent  bool
	ready io.Writer
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		for i := range p {
			p[i] = 'x'
		}
		return len(p), nil
	}
	r.ready.Write([]byte("copying\n"))
	select {}
}

// TestCrashMidPut kills a process with SIGKILL in the middle of a Put and
// checks that the vault shows nothing under the key, and that the
// temporary file it left is removed once stale.
func TestCrashMidPut(t *testing.T) {
	if root := os.Getenv(crashRootEnv); root != "" {
		// The helper process: never returns.
		s, err := file.New(root, file.Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Put(context.Background(), "p/01CRASH/chunk.000001", &stallingReader{ready: os.Stdout}, 1<<30, storage.PutOptions{Class: storage.ClassGlacier})
		t.Fatalf("Put returned: %v", err)
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidPut$")
	cmd.Env = append(os.Environ(), crashRootEnv+"="+root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "copying") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v; want copying", line, err)
	}
	// While its writer lives, even an old temporary file is left alone:
	// another process's New must not pull it from under a running Put.
	live, _ := filepath.Glob(filepath.Join(root, ".cryophile/tmp/put-*"))
	for _, p := range live {
		ancient := time.Now().Add(-2 * staleAge)
		os.Chtimes(p, ancient, ancient)
	}
	newStore(t, root, file.Options{})
	if after, _ := filepath.Glob(filepath.Join(root, ".cryophile/tmp/put-*")); len(live) != 1 || len(after) != 1 {
		t.Errorf("temporary files of a live Put: %q before New, %q after; want one kept", live, after)
	}
	for _, p := range live {
		now := time.Now()
		os.Chtimes(p, now, now)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s := newStore(t, root, file.Options{})
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Errorf("List after a crash mid-put = %q, want nothing", got)
	}
	if _, err := s.Head(context.Background(), "p/01CRASH/chunk.000001"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Head after a crash mid-put: %v, want ErrNotExist", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(root, ".cryophile/tmp/*"))
	if len(tmps) != 1 {
		t.Fatalf("temporary files after the crash: %q, want the one being written", tmps)
	}
	fi, err := os.Stat(tmps[0])
	if err != nil || fi.Size() == 0 {
		t.Fatalf("temporary file %s: %v, size %v; want a partial copy", tmps[0], err, fi)
	}
	// Its writer is dead (the flock went with it); once stale, New
	// removes it.
	old := fi.ModTime().Add(-2 * staleAge)
	if err := os.Chtimes(tmps[0], old, old); err != nil {
		t.Fatal(err)
	}
	newStore(t, root, file.Options{})
	if _, err := os.Stat(tmps[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file after New: %v, want removed", err)
	}
}
