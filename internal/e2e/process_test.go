//go:build integration

package e2e_test

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSignalDuringBackup: SIGINT or SIGTERM while fragments are being
// published removes them and the staging files, publishes no manifest, and
// exits 75.
func TestSignalDuringBackup(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t, "")
			cert, _ := e.gpgKey("alice", "")
			cmd := e.command("cryophile-backup", "--vault", vaultID, "--recipient", cert, "--size", "1M", "--compression", "none")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Feed data until a fragment is published, then keep the pipe
			// open: the backup is mid-stream when the signal comes.
			feed := make(chan struct{})
			go func() {
				defer close(feed)
				chunk := randomBytes(256<<10, 1)
				for i := 0; i < 12; i++ {
					if _, err := stdin.Write(chunk); err != nil {
						return
					}
				}
			}()
			freeze := filepath.Join(e.spool, "freeze")
			waitFor(t, "a published fragment", 30*time.Second, func() bool {
				m, _ := filepath.Glob(filepath.Join(freeze, "*", "*", "chunk.*"))
				return len(m) > 0
			})
			<-feed
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("backup did not exit after %v", sig)
			}
			stdin.Close()
			if got, want := cmd.ProcessState.ExitCode(), exitTemp; got != want {
				t.Errorf("exit status %d, want %d\n%s", got, want, errb.String())
			}
			e.assertNothingPublished(t)
		})
	}
}

// TestBackPressure: with a spool budget of three fragments and no consumer,
// backup waits and says so; a consumer that takes fragments away lets it
// finish; the spool never holds more than the budget.
func TestBackPressure(t *testing.T) {
	e := newEnv(t, "")
	cert, secret := e.gpgKey("alice", "")
	data := randomBytes(10*mib, 3)
	cmd := e.command("cryophile-backup", "--vault", vaultID, "--recipient", cert, "--size", "1M", "--compression", "none", "--spool-max", "3M")
	cmd.Stdin = bytes.NewReader(data)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan string, 1)
	var stderrText strings.Builder
	var mu sync.Mutex
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			mu.Lock()
			stderrText.WriteString(s.Text() + "\n")
			mu.Unlock()
			if strings.Contains(s.Text(), "wait") {
				select {
				case waiting <- s.Text():
				default:
				}
			}
		}
	}()
	select {
	case <-waiting:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("backup did not say it is waiting for the spool budget")
	}
	// Stand in for freeze: move each fragment out of the spool, checking the
	// budget every time.
	moved := filepath.Join(e.dir, "moved")
	os.Mkdir(moved, 0o755)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var id string
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				mu.Lock()
				t.Fatalf("backup: %v\n%s", err, stderrText.String())
			}
			finished = true
		case <-time.After(20 * time.Millisecond):
		}
		if used := spoolBytes(t, e.spool); used > 3*mib+64<<10 {
			t.Errorf("spool holds %d bytes, budget is %d", used, 3*mib)
		}
		m, _ := filepath.Glob(filepath.Join(e.spool, "freeze", "*", "*", "chunk.*"))
		for _, p := range m {
			id = filepath.Join(filepath.Base(filepath.Dir(filepath.Dir(p))), filepath.Base(filepath.Dir(p)))
			os.Rename(p, filepath.Join(moved, filepath.Base(p)))
		}
	}
	// The archive is intact: put it back together and restore it.
	src := filepath.Join(e.spool, "freeze", strings.TrimSpace(out.String()))
	ents, _ := os.ReadDir(moved)
	for _, ent := range ents {
		os.Rename(filepath.Join(moved, ent.Name()), filepath.Join(src, ent.Name()))
	}
	_ = id
	r := e.run(nil, "cryophile-restore", "--from", src, "--key", secret, "--output", filepath.Join(e.dir, "out"))
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s", r.code, r.stderr)
	}
	got, _ := os.ReadFile(filepath.Join(e.dir, "out"))
	if !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes, want %d", len(got), len(data))
	}
}

// spoolBytes sums the sizes of the regular files under dir.
func spoolBytes(t testing.TB, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// TestMemory: peak RSS stays under 64 MiB for a 4 GiB stream, in backup
// and in restore, with the default 1 GiB fragments (measured by GNU time).
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("4 GiB stream")
	}
	need(t, "/usr/bin/time")
	e := newEnv(t, "")
	cert, secret := e.gpgKey("alice", "")
	const size = 4 << 30
	rss := func(stderr string) int64 {
		for _, line := range strings.Split(stderr, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes): "); ok {
				kb, _ := strconv.ParseInt(v, 10, 64)
				return kb << 10
			}
		}
		t.Fatalf("no RSS in /usr/bin/time output:\n%s", stderr)
		return 0
	}
	timed := func(stdin io.Reader, stdout io.Writer, prog string, args ...string) string {
		cmd := exec.Command("/usr/bin/time", append([]string{"-v", filepath.Join(binDir, prog), "--config", e.config}, args...)...)
		cmd.Stdin, cmd.Stdout = stdin, stdout
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", prog, err, errb.String())
		}
		return errb.String()
	}
	// A stream that compresses like real data, generated on the fly.
	var out bytes.Buffer
	stderr := timed(io.LimitReader(newPatternReader(), size), &out, "cryophile-backup", "--vault", vaultID, "--recipient", cert)
	if got, limit := rss(stderr), int64(64<<20); got > limit {
		t.Errorf("backup of 4 GiB: peak RSS %d MiB, want under %d MiB", got>>20, limit>>20)
	} else {
		t.Logf("backup of 4 GiB: peak RSS %d MiB", got>>20)
	}
	id := strings.TrimSpace(out.String())
	e.thaw(id)
	h := newHashWriter()
	stderr = timed(nil, h, "cryophile-restore", "--vault", vaultID, "--ulid", filepath.Base(id), "--key", secret)
	if got, limit := rss(stderr), int64(64<<20); got > limit {
		t.Errorf("restore of 4 GiB: peak RSS %d MiB, want under %d MiB", got>>20, limit>>20)
	} else {
		t.Logf("restore of 4 GiB: peak RSS %d MiB", got>>20)
	}
	want := newHashWriter()
	io.Copy(want, io.LimitReader(newPatternReader(), size))
	if h.n != size || h.sum() != want.sum() {
		t.Fatalf("restored %d bytes (sha256 %s), want %d (%s)", h.n, h.sum(), int64(size), want.sum())
	}
}
