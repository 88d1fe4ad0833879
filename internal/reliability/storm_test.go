//go:build reliability

package reliability_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
)

// TestRestartStorm: both daemons are restarted every ~2 s (alternately
// with SIGTERM and SIGKILL) while a paced multi-fragment backup is uploaded
// and then restored. The end state is the one a run without restarts
// gives: the restore is bit-identical, the vault holds exactly the
// manifest and the fragments it lists (each matching its SHA-256), and
// nothing of the archive is left in freeze/ or restore/.
func TestRestartStorm(t *testing.T) {
	sc := begin(t, "5 restart storm")
	e := newEnv(t, "", "[budget]\nrestore_max_bytes = \"4MiB\"\n")
	size := int64(count(24, 96) * mib)
	r := rng(t.Name())

	var mu sync.Mutex
	cur := map[string]*exec.Cmd{}
	restarts := 0
	start := func(prog string) {
		mu.Lock()
		defer mu.Unlock()
		cur[prog] = e.startDaemon(prog)
	}
	start("cryophile-freeze")
	start("cryophile-thaw")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1500+r.IntN(1000)) * time.Millisecond):
			}
			for _, prog := range []string{"cryophile-freeze", "cryophile-thaw"} {
				mu.Lock()
				d := cur[prog]
				mu.Unlock()
				if i%2 == 0 {
					d.Process.Kill()
				} else {
					d.Process.Signal(syscall.SIGTERM)
				}
				d.Wait()
				start(prog)
				mu.Lock()
				restarts++
				mu.Unlock()
			}
		}
	})

	// A paced backup (~2.5 MiB/s) so the storm hits it mid-stream.
	src := newStream(size, 5)
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 256<<10)
		for {
			n, err := src.Read(buf)
			pw.Write(buf[:n])
			if err != nil {
				pw.Close()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	run := sc.run()
	id := e.backup(pr, "--prefix", "storm/a", "--size", "1M", "--compression", "none")
	waitFor(t, "the manifest in the vault", 3*time.Minute, func() bool { return e.inVault(id) })
	res, got, n := e.restoreWithTimeout(id, 4*time.Minute, "--tier", "expedited")
	close(stop)
	wg.Wait()
	if res.code != 0 || got != src.sum() || n != size {
		run.errorf("restore during the storm: exit %d, %d bytes (want %d), sha ok %v\n%s", res.code, n, size, got == src.sum(), tail(res.stderr, 2000))
	} else {
		sc.checked(n)
	}

	// The vault: exactly the manifest and its fragments.
	run = sc.run()
	dir := filepath.Join(e.vault, id.Key())
	m, err := archive.ReadManifestFile(filepath.Join(dir, archive.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{archive.ManifestName}
	for _, f := range m.Fragments {
		want = append(want, f.Name)
		b, err := os.ReadFile(filepath.Join(dir, f.Name))
		s := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(s[:]) != f.SHA256 {
			run.errorf("vault %s: %v or SHA-256 differs from the manifest", f.Name, err)
		}
		sc.checked(int64(len(b)))
	}
	have := files(dir)
	sort.Strings(have)
	sort.Strings(want)
	if strings.Join(have, " ") != strings.Join(want, " ") {
		run.errorf("vault holds %v, want %v", have, want)
	}
	for _, q := range []string{"freeze", "restore"} {
		for _, p := range files(filepath.Join(e.spool, q, id.Dir())) {
			if strings.HasPrefix(filepath.Base(p), "chunk.") || p == archive.ManifestName && q == "freeze" {
				run.errorf("%s/%s/%s left after the storm", q, id, p)
			}
		}
	}
	sc.note("%d daemon restarts, %d fragments", restarts, len(m.Fragments))
	if restarts < 8 {
		t.Errorf("only %d restarts: the storm was too short to test much", restarts)
	}
}
