//go:build reliability

package reliability_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/oklog/ulid/v2"
)

// TestBackupKill9 kills cryophile-backup with SIGKILL at seeded random
// points of a paced stream (≥ 10 in the short form, ≥ 50 in the long one).
// After each kill: no manifest for the killed ID, every fragment visible in
// freeze/ is whole (exactly --size bytes, since the last, short one can only
// be cut once the stream ended) and no other file is there. After the next
// backup and after the next freeze start, the killed backup's leftovers are
// gone. Backups that finished before the kill, and a control backup after
// each run, are then restored bit-identical through freeze and thaw.
func TestBackupKill9(t *testing.T) {
	sc := begin(t, "1 backup kill -9")
	e := newEnv(t, "", "")
	r := rng(t.Name())
	kills := count(12, 60)
	type done struct {
		id  archive.ID
		sum string
		n   int64
	}
	var complete []done
	var killedIDs []archive.ID
	for i := range kills {
		run := sc.run()
		size := int64(2*mib + r.IntN(5*mib))
		u := ulid.MustNew(ulid.Timestamp(time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)), ulidEntropy{r})
		id := archive.ID{Prefix: fmt.Sprintf("kill/run%02d", i), ULID: u}
		id.Vault, _ = archive.ParseVault(vaultID)
		cmd := e.command("cryophile-backup", "--vault", vaultID, "--prefix", id.Prefix, "--ulid", u.String(),
			"--recipient", e.cert, "--size", "1M", "--compression", "none")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stdout strings.Builder
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		src := newStream(size, uint64(i))
		go func() {
			// About 25 MiB/s, so kills land before, during and after
			// fragments are cut.
			buf := make([]byte, 64<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					if _, werr := in.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err == io.EOF {
					in.Close()
					return
				}
				time.Sleep(2500 * time.Microsecond)
			}
		}()
		delay := time.Duration(r.IntN(400)) * time.Millisecond
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		killed := false
		select {
		case err := <-exited:
			if err != nil {
				run.errorf("run %d: backup failed by itself: %v", i, err)
			}
		case <-time.After(delay):
			cmd.Process.Kill()
			err := <-exited
			killed = err != nil
		}
		in.Close()
		freeze := filepath.Join(e.spool, "freeze", id.Dir())
		if _, err := os.Lstat(filepath.Join(freeze, archive.ManifestName)); killed && err == nil {
			// Killed after publishing its manifest, before exiting: the
			// archive is complete (the manifest is the only marker).
			killed = false
			stdout.WriteString(id.String())
			t.Logf("run %d: killed after its manifest was published", i)
		}
		if !killed {
			if got := strings.TrimSpace(stdout.String()); got != id.String() {
				run.errorf("run %d: backup exited 0 printing %q, want %q", i, got, id)
			}
			complete = append(complete, done{id, src.sum(), size})
			t.Logf("run %d: backup finished before the kill at %v", i, delay)
		} else {
			killedIDs = append(killedIDs, id)
			if _, err := os.Lstat(filepath.Join(freeze, archive.ManifestName)); err == nil {
				run.errorf("run %d: killed backup %s left a manifest in freeze/", i, id)
			}
			ents, _ := os.ReadDir(freeze)
			for j, ent := range ents {
				fi, _ := ent.Info()
				// Only the last fragment may be short, and only once the
				// whole stream was read (it is cut at end of input).
				whole := fi != nil && (fi.Size() == mib || j == len(ents)-1 && src.left == 0 && fi.Size() > 0)
				if _, err := archive.ParseFragmentName(ent.Name()); err != nil || !whole || !fi.Mode().IsRegular() {
					run.errorf("run %d: freeze/%s/%s visible after the kill (%v)", i, id, ent.Name(), fi)
				}
			}
			t.Logf("run %d: killed after %v with %d fragments published", i, delay, len(ents))
		}
		// The next backup must clean up what the killed one left.
		d, sum := data(100_000, uint64(1000+i))
		cid := e.backup(strings.NewReader(string(d)), "--prefix", "kill/control", "--size", "1M")
		complete = append(complete, done{cid, sum, int64(len(d))})
		if killed {
			e.checkGone(run, "next backup", id)
		}
	}
	// A freeze start cleans up anyway (and uploads everything).
	if res := e.run(nil, "cryophile-freeze", "--once"); res.code != 0 {
		t.Fatalf("freeze --once: exit %d\n%s", res.code, res.stderr)
	}
	for _, id := range killedIDs {
		run := sc.run()
		e.checkGone(run, "freeze start", id)
		if e.inVault(id) {
			run.errorf("killed backup %s has a manifest in the vault", id)
		}
	}
	if left := files(filepath.Join(e.spool, "backup")); len(left) > 0 {
		t.Errorf("backup/ still holds %v", left)
	}
	e.startDaemon("cryophile-thaw")
	for _, c := range complete {
		run := sc.run()
		res, sum, n := e.restore(c.id)
		if res.code != 0 || sum != c.sum || n != c.n {
			run.errorf("restore %s: exit %d, %d bytes (want %d), sha %s want %s\n%s", c.id, res.code, n, c.n, sum, c.sum, res.stderr)
			continue
		}
		sc.checked(n)
	}
	sc.note("%d kills, %d backups complete and restored", len(killedIDs), len(complete))
	if len(killedIDs) < kills/2 {
		t.Errorf("only %d of %d runs were killed mid-backup: the scenario tested little", len(killedIDs), kills)
	}
}

// checkGone checks that nothing of the killed backup id is left in the
// spool: no staging directory in backup/, no directory in freeze/.
// (A staging directory without a lock file younger than a minute is spared
// by design: its writer may be between mkdir and lock. It is reported.)
func (e *env) checkGone(run *run, after string, id archive.ID) {
	e.t.Helper()
	staging := filepath.Join(e.spool, "backup", id.Dir())
	if _, err := os.Lstat(staging); err == nil {
		if _, err := os.Lstat(filepath.Join(staging, ".lock")); err == nil {
			run.errorf("after %s: staging %s of the killed backup is still there: %v", after, staging, files(staging))
		} else {
			e.t.Logf("after %s: staging %s without a lock kept (grace period)", after, staging)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.spool, "freeze", id.Dir())); err == nil {
		run.errorf("after %s: freeze/%s of the killed backup is still there: %v", after, id, files(filepath.Join(e.spool, "freeze", id.Dir())))
	}
}

// ulidEntropy makes a seeded math/rand generator an io.Reader for ulid.
type ulidEntropy struct{ r interface{ Uint32() uint32 } }

func (u ulidEntropy) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(u.r.Uint32())
	}
	return len(p), nil
}
