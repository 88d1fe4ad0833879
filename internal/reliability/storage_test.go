//go:build reliability

package reliability_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
)

// tmpfs mounts a tmpfs of size MiB on a new directory and returns it; it is
// unmounted when the test ends. It skips the test unless run as root.
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0750", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// free returns the bytes available on dir's file system.
func free(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestSpoolFull: the spool is a 24 MiB tmpfs. Backup of 48 MiB of
// incompressible data waits for the free-space reserve (back-pressure) with
// no freeze running, publishes no manifest meanwhile, and completes once
// freeze runs. A backup that meets a full file system (a filler file eats
// the space after its budget check) either waits or fails with exit 74 and
// leaves nothing published. Thaw, with restore/ on the same small file
// system and a slow reader, stops downloading at the reserve and resumes as
// restore consumes: the restore is bit-identical.
func TestSpoolFull(t *testing.T) {
	sc := begin(t, "4 spool full")
	spoolDir := tmpfs(t, 24)
	e := newEnv(t, spoolDir, "[budget]\nreserve = \"6MiB\"\nrestore_max_bytes = \"1GiB\"\n")
	const size = 48 * mib

	// Back-pressure: no freeze, so backup must wait.
	run := sc.run()
	cmd := e.command("cryophile-backup", "--vault", vaultID, "--prefix", "full/a", "--recipient", e.cert, "--size", "4M", "--compression", "none")
	// Incompressible: replace the stream's zero blocks.
	cmd.Stdin = io.TeeReader(io.LimitReader(randReader{newStream(size, 41)}, size), io.Discard)
	var stdout bytes.Buffer
	var stderr syncBuf
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "backup to wait for space", 30*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		return strings.Contains(stderr.String(), "wait")
	})
	select {
	case err := <-exited:
		t.Fatalf("backup exited (%v) instead of waiting for space:\n%s", err, stderr.String())
	default:
	}
	m, _ := filepath.Glob(filepath.Join(spoolDir, "freeze", "*", "full", "a", "*", archive.ManifestName))
	if len(m) > 0 {
		run.errorf("a manifest was published while backup waited: %v", m)
	}
	t.Logf("backup waits with %d MiB free: %s", free(spoolDir)>>20, strings.TrimSpace(tail(stderr.String(), 300)))
	e.startDaemon("cryophile-freeze")
	select {
	case err := <-exited:
		if err != nil {
			run.errorf("backup after freeze started: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("backup did not finish once freeze ran\n%s", stderr.String())
	}
	id, err := archive.ParseID(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("backup printed %q", stdout.String())
	}
	waitFor(t, "freeze to upload the archive", time.Minute, func() bool { return e.inVault(id) })
	wantSum := sum(io.LimitReader(randReader{newStream(size, 41)}, size))

	// Disk full under the reserve check: a filler takes the space.
	run = sc.run()
	e.stopDaemons()
	// Leave room for one fragment plus a little: the budget check passes,
	// the second fragment meets ENOSPC.
	filler := fill(t, spoolDir, 11*mib)
	cfg, _ := os.ReadFile(e.config)
	full := filepath.Join(e.dir, "full.toml")
	os.WriteFile(full, bytes.Replace(cfg, []byte(`reserve = "6MiB"`), []byte(`reserve = "1MiB"`), 1), 0o644)
	bcmd := e.command("cryophile-backup", "--vault", vaultID, "--prefix", "full/b", "--recipient", e.cert, "--size", "4M", "--compression", "none")
	bcmd.Args[2] = full // --config
	bcmd.Stdin = io.LimitReader(randReader{newStream(size, 42)}, 24*mib)
	var berr syncBuf
	bcmd.Stderr = &berr
	if err := bcmd.Start(); err != nil {
		t.Fatal(err)
	}
	bdone := make(chan error, 1)
	go func() { bdone <- bcmd.Wait() }()
	select {
	case <-bdone:
		code := bcmd.ProcessState.ExitCode()
		t.Logf("backup on a full spool: exit %d: %s", code, strings.TrimSpace(berr.String()))
		if code != 74 {
			run.errorf("backup on a full spool: exit %d, want 74 (or waiting)\n%s", code, berr.String())
		}
	case <-time.After(15 * time.Second):
		// It waits for space: acceptable; SIGTERM must then clean up.
		t.Logf("backup on a full spool waits: %s", strings.TrimSpace(tail(berr.String(), 300)))
		bcmd.Process.Signal(syscall.SIGTERM)
		<-bdone
		if code := bcmd.ProcessState.ExitCode(); code != exitTemp {
			run.errorf("waiting backup after SIGTERM: exit %d, want %d", code, exitTemp)
		}
	}
	for _, q := range []string{"freeze", "backup"} {
		for _, p := range files(filepath.Join(spoolDir, q)) {
			if strings.Contains(p, "full/b") {
				run.errorf("failed backup left %s/%s", q, p)
			}
		}
	}
	os.Remove(filler)

	// Thaw into a small restore/: pauses at the reserve, resumes.
	run = sc.run()
	e.startDaemon("cryophile-thaw")
	rcmd := e.command("cryophile-restore", append(idArgs(id), "--key", e.secret)...)
	out, _ := rcmd.StdoutPipe()
	var rerr syncBuf
	rcmd.Stderr = &rerr
	if err := rcmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Do not read until thaw has filled restore/ down to its reserve.
	waitFor(t, "thaw to stop at the free-space reserve", time.Minute, func() bool {
		return strings.Contains(e.log("cryophile-thaw"), "free space below the reserve")
	})
	minFree := free(spoolDir)
	watchdog := time.AfterFunc(3*time.Minute, func() { rcmd.Process.Kill() })
	defer watchdog.Stop()
	h := sha256.New()
	n, _ := io.Copy(h, out)
	if err := rcmd.Wait(); err != nil {
		run.errorf("restore through a full restore/: %v\n%s", err, rerr.String())
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSum || n != size {
		run.errorf("restored %d bytes, sha %s; want %d, %s", n, got, size, wantSum)
	}
	sc.checked(n)
	sc.note("thaw paused with %d MiB free of 24, backup waited at the reserve", minFree>>20)
	if minFree < 0 {
		run.errorf("free space %d", minFree)
	}
}

// TestVaultDamage: a fragment deleted or truncated in the vault, or the
// manifest deleted, makes restore exit 65 with a message naming it.
func TestVaultDamage(t *testing.T) {
	sc := begin(t, "4 vault damage")
	e := newEnv(t, "", "[thaw]\nconcurrency = 2\n")
	e.writeConfig("", fmt.Sprintf("[[vault]]\nid = %q\nurl = \"file://%s\"\nstorage_class = \"STANDARD\"\n", vaultID, e.vault))
	e.startDaemon("cryophile-freeze")
	e.startDaemon("cryophile-thaw")
	for _, c := range []struct {
		name, mention string
		damage        func(dir string) error
	}{
		{"fragment deleted", "chunk.000002", func(dir string) error { return os.Remove(filepath.Join(dir, "chunk.000002")) }},
		{"fragment truncated", "chunk.000002", func(dir string) error { return os.Truncate(filepath.Join(dir, "chunk.000002"), 1000) }},
		{"fragment bit flip", "chunk.000003", func(dir string) error {
			p := filepath.Join(dir, "chunk.000003")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 1
			return os.WriteFile(p, b, 0o644)
		}},
		{"manifest deleted", "manifest", func(dir string) error { return os.Remove(filepath.Join(dir, archive.ManifestName)) }},
	} {
		run := sc.run()
		d, _ := data(3*mib+500, uint64(len(c.name)))
		id := e.backup(bytes.NewReader(d), "--prefix", "damage/"+strings.ReplaceAll(c.name, " ", "-"), "--size", "1M", "--compression", "none")
		waitFor(t, "freeze to upload "+id.String(), time.Minute, func() bool { return e.inVault(id) })
		if err := c.damage(filepath.Join(e.vault, id.Key())); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var res result
		go func() { defer close(done); res, _, _ = e.restore(id, "--tier", "expedited") }()
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			t.Fatalf("%s: restore still running after 90 s", c.name)
		}
		if res.code != exitData || !strings.Contains(res.stderr, c.mention) {
			run.errorf("%s: exit %d, want %d naming %s\n%s", c.name, res.code, exitData, c.mention, res.stderr)
		}
		t.Logf("%s: exit %d: %s", c.name, res.code, strings.TrimSpace(tail(res.stderr, 400)))
	}
}

// fill writes a file of zeros into dir until only leave bytes stay free on
// its file system and returns the file's path.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, zeroReader{}, free(dir)-leave); err != nil {
		t.Fatalf("filler: %v", err)
	}
	return p
}

// TestThawDiskFull: restore/ is on a small tmpfs that something else fills
// up while thaw downloads. The fragment restore waits for is downloaded
// even below the free-space reserve (else nothing would drain restore/), so
// thaw meets ENOSPC.
// Thaw keeps running and retries, publishes no partial fragment, does not
// fail the request; restore waits. Once the space is freed, the restore
// completes bit-identical.
func TestThawDiskFull(t *testing.T) {
	sc := begin(t, "4 thaw disk full")
	spoolDir := tmpfs(t, 24)
	e := newEnv(t, spoolDir, "[budget]\nreserve = \"4KiB\"\nrestore_max_bytes = \"1GiB\"\n")
	const size = 12 * mib
	id := e.backup(io.LimitReader(randReader{newStream(size, 43)}, size), "--prefix", "full/thaw", "--size", "2M", "--compression", "none")
	if res := e.run(nil, "cryophile-freeze", "--once"); res.code != 0 {
		t.Fatalf("freeze --once: exit %d\n%s", res.code, res.stderr)
	}
	wantSum := sum(io.LimitReader(randReader{newStream(size, 43)}, size))
	m, err := archive.ReadManifestFile(filepath.Join(e.vault, id.Key(), archive.ManifestName))
	if err != nil {
		t.Fatal(err)
	}

	run := sc.run()
	// Room for the manifest, status and half a fragment.
	filler := fill(t, spoolDir, 1*mib)
	thawd := e.startDaemon("cryophile-thaw")
	rcmd := e.command("cryophile-restore", append(idArgs(id), "--key", e.secret, "--tier", "expedited")...)
	out, _ := rcmd.StdoutPipe()
	var rerr syncBuf
	rcmd.Stderr = &rerr
	if err := rcmd.Start(); err != nil {
		t.Fatal(err)
	}
	type got struct {
		sum string
		n   int64
	}
	read := make(chan got, 1)
	go func() {
		h := sha256.New()
		n, _ := io.Copy(h, out)
		read <- got{hex.EncodeToString(h.Sum(nil)), n}
	}()
	waitFor(t, "thaw to meet the full file system", time.Minute, func() bool {
		return strings.Contains(e.log("cryophile-thaw"), "no space left on device")
	})
	// Let it retry a few times on the full file system.
	retries := func() int { return strings.Count(e.log("cryophile-thaw"), "no space left on device") }
	waitFor(t, "thaw to retry on the full file system", time.Minute, func() bool { return retries() >= 3 })
	if !alive(thawd) {
		run.errorf("thaw exited on a full file system\n%s", tail(e.log("cryophile-thaw"), 2000))
	}
	restoreDir := filepath.Join(spoolDir, "restore", id.Dir())
	for _, name := range files(restoreDir) {
		f, ok := m.Fragment(name)
		if !ok {
			continue
		}
		if fi, err := os.Stat(filepath.Join(restoreDir, name)); err == nil && fi.Size() != f.Size {
			run.errorf("restore/%s/%s visible with %d of %d bytes on a full file system", id, name, fi.Size(), f.Size)
		}
	}
	if st, err := os.ReadFile(filepath.Join(restoreDir, "status.json")); err == nil && strings.Contains(string(st), `"failure"`) {
		run.errorf("the request failed on a full file system: %s", st)
	}
	select {
	case g := <-read:
		run.errorf("restore ended (%d bytes) while the file system was full\n%s", g.n, rerr.String())
	default:
	}

	run = sc.run()
	os.Remove(filler)
	watchdog := time.AfterFunc(2*time.Minute, func() { rcmd.Process.Kill() })
	defer watchdog.Stop()
	g := <-read
	if err := rcmd.Wait(); err != nil {
		run.errorf("restore after the space came back: %v\n%s", err, rerr.String())
	}
	if g.sum != wantSum || g.n != size {
		run.errorf("restored %d bytes, sha %s; want %d, %s", g.n, g.sum, int64(size), wantSum)
	}
	sc.checked(g.n)
	sc.note("thaw met ENOSPC %d times, kept the request and resumed", retries())
}

// sum returns the hex SHA-256 of what r yields.
func sum(r io.Reader) string {
	h := sha256.New()
	io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil))
}

// randReader makes a stream incompressible: its zero blocks are filled
// from the stream's own generator.
type randReader struct{ s *stream }

func (r randReader) Read(p []byte) (int, error) {
	if r.s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.s.left {
		p = p[:r.s.left]
	}
	r.s.r.Read(p)
	r.s.left -= int64(len(p))
	return len(p), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
