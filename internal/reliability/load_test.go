//go:build reliability

package reliability_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
)

// timed runs cmd under GNU time -v and returns its peak RSS in KiB (-1 if
// it could not be read).
func timed(cmd *exec.Cmd) (rssKiB int64, err error) {
	f, ferr := os.CreateTemp("", "cryophile-time")
	if ferr != nil {
		return -1, ferr
	}
	defer os.Remove(f.Name())
	f.Close()
	cmd.Args = append([]string{"/usr/bin/time", "-v", "-o", f.Name()}, cmd.Args...)
	cmd.Path = "/usr/bin/time"
	err = cmd.Run()
	b, _ := os.ReadFile(f.Name())
	m := regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`).FindSubmatch(b)
	if m == nil {
		return -1, err
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n, err
}

// stopTimed sends SIGTERM to the program GNU time runs for cmd (time
// itself ignores the signals it would get).
func stopTimed(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

// peak keeps the largest RSS seen per program.
type peak struct {
	mu sync.Mutex
	m  map[string]int64
}

func (p *peak) add(prog string, kib int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]int64{}
	}
	p.m[prog] = max(p.m[prog], kib)
}

func (p *peak) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []string
	for _, k := range []string{"cryophile-backup", "cryophile-freeze", "cryophile-restore"} {
		if v, ok := p.m[k]; ok {
			s = append(s, fmt.Sprintf("%s %d MiB", strings.TrimPrefix(k, "cryophile-"), v>>10))
		}
	}
	return "peak RSS: " + strings.Join(s, ", ")
}

// TestLoadConcurrentBackups: 100 small archives backed up by 8 backup
// processes at once while freeze runs (file vault): every backup succeeds,
// every archive arrives in the vault and restores bit-identical (restore
// --from the vault directory).
func TestLoadConcurrentBackups(t *testing.T) {
	need(t, "/usr/bin/time")
	sc := begin(t, "8 load 100x8 backups")
	e := newEnv(t, "", "")
	var rss peak
	freeze := e.command("cryophile-freeze", "-v")
	logf, _ := os.Create(filepath.Join(e.dir, "cryophile-freeze.log"))
	freeze.Stderr = logf
	fdone := make(chan int64, 1)
	go func() { k, _ := timed(freeze); fdone <- k }()
	const archives, workers = 100, 8
	type arch struct {
		id  archive.ID
		sum string
		n   int
	}
	results := make([]arch, archives)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				run := sc.run()
				d, sum := data(1000+i*997, uint64(i))
				cmd := e.command("cryophile-backup", "--vault", vaultID, "--prefix", fmt.Sprintf("load/w%03d", i), "--recipient", e.cert)
				cmd.Stdin = bytes.NewReader(d)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				k, err := timed(cmd)
				rss.add("cryophile-backup", k)
				if err != nil {
					run.errorf("backup %d: %v\n%s", i, err, errb.String())
					continue
				}
				id, err := archive.ParseID(strings.TrimSpace(out.String()))
				if err != nil {
					run.errorf("backup %d printed %q", i, out.String())
					continue
				}
				results[i] = arch{id, sum, len(d)}
			}
		})
	}
	t0 := time.Now()
	for i := range archives {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	waitFor(t, "every archive in the vault", 2*time.Minute, func() bool {
		for _, a := range results {
			if a.sum != "" && !e.inVault(a.id) {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(t0)
	stopTimed(freeze)
	rss.add("cryophile-freeze", <-fdone)
	for _, a := range results {
		if a.sum == "" {
			continue
		}
		run := sc.run()
		res := e.run(nil, "cryophile-restore", "--from", filepath.Join(e.vault, a.id.Key()), "--key", e.secret)
		if res.code != 0 || sha([]byte(res.stdout)) != a.sum {
			run.errorf("%s: exit %d, %d bytes of %d\n%s", a.id, res.code, len(res.stdout), a.n, res.stderr)
			continue
		}
		sc.checked(int64(a.n))
	}
	sc.note("100 archives by 8 processes in %v, in the vault; %s", elapsed.Round(time.Millisecond), rss.String())
}

// TestLoadManyFragments: one archive of many 1 MiB fragments (500 in the
// short form, 5,000 in the long one; --compression none) goes through
// backup and freeze (running at the same time) into the vault and restores
// bit-identical; peak RSS of each process is reported. The long form also
// streams 20 GiB through a spool budget of 3 GiB.
func TestLoadManyFragments(t *testing.T) {
	need(t, "/usr/bin/time")
	sc := begin(t, "8 load big archives")
	cases := []struct {
		name   string
		size   int64
		frag   string
		budget string
	}{{"fragments", int64(count(500, 5000)) * mib, "1M", "256MiB"}}
	if long() {
		cases = append(cases, struct {
			name   string
			size   int64
			frag   string
			budget string
		}{"20GiB/3GiB", 20 << 30, "256M", "3GiB"})
	}
	for _, c := range cases {
		var rss peak
		e := newEnv(t, "", fmt.Sprintf("[budget]\nmax_bytes = %q\nreserve = \"1GiB\"\n[backup]\nfragment_size = \"%siB\"\n", c.budget, c.frag))
		freeze := e.command("cryophile-freeze", "-q")
		fdone := make(chan int64, 1)
		go func() { k, _ := timed(freeze); fdone <- k }()
		run := sc.run()
		src := newStream(c.size, 77)
		cmd := e.command("cryophile-backup", "--vault", vaultID, "--prefix", "load/big", "--recipient", e.cert, "--size", c.frag, "--compression", "none")
		cmd.Stdin = src
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		k, err := timed(cmd)
		rss.add("cryophile-backup", k)
		if err != nil {
			stopTimed(freeze)
			t.Fatalf("%s: backup: %v\n%s", c.name, err, tail(errb.String(), 2000))
		}
		backupTime := time.Since(t0)
		id, _ := archive.ParseID(strings.TrimSpace(out.String()))
		waitFor(t, "the archive in the vault", 10*time.Minute, func() bool { return e.inVault(id) })
		stopTimed(freeze)
		rss.add("cryophile-freeze", <-fdone)
		m, err := archive.ReadManifestFile(filepath.Join(e.vault, id.Key(), archive.ManifestName))
		if err != nil {
			t.Fatal(err)
		}
		restore := e.command("cryophile-restore", "--from", filepath.Join(e.vault, id.Key()), "--key", e.secret)
		h := newHashSink()
		restore.Stdout = h
		k, err = timed(restore)
		rss.add("cryophile-restore", k)
		if err != nil || h.sum() != src.sum() || h.n != c.size {
			run.errorf("%s: restore: %v, %d bytes of %d, sha ok %v", c.name, err, h.n, c.size, h.sum() == src.sum())
		} else {
			sc.checked(h.n)
		}
		sc.note("%s: %d fragments, %d MiB, backup %v (%.0f MiB/s), %s", c.name, len(m.Fragments), c.size>>20,
			backupTime.Round(time.Millisecond), float64(c.size>>20)/backupTime.Seconds(), rss.String())
		os.RemoveAll(e.vault)
	}
}

// hashSink hashes and counts what is written to it.
type hashSink struct {
	w   io.Writer
	n   int64
	sum func() string
}

func newHashSink() *hashSink {
	s := newStream(0, 0) // for its hasher
	return &hashSink{w: s.h, sum: s.sum}
}

func (h *hashSink) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.w.Write(p)
}

// sha is the hex SHA-256 of b.
func sha(b []byte) string { return sum(bytes.NewReader(b)) }
