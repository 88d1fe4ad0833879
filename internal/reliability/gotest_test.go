//go:build reliability

package reliability_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// root is the module's root directory.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// goTest runs `go test args...` in the module root and returns its output.
func goTest(t *testing.T, timeout time.Duration, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"test"}, args...)...)
	cmd.Dir = root()
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestDaemonKillLoops re-runs the seeded kill -9 loops that already exist
// for the daemons (cmd/freeze TestIntegrationKill: 10 kills of freeze per
// run while it uploads to the local S3 + Glacier proxy; cmd/thaw TestKill9:
// 10 kills of thaw per run while restores stream) with -count, so that
// the long form kills each daemon ≥ 50 times. Each run of a -count takes
// the next seed (internal/testseed: the base seed, from
// CRYOPHILE_RELIABILITY_SEED when set, plus the run's number), so the runs
// kill at different points; a failed run's log names its seed. The short
// form leaves them to `make integration`, which already runs them once.
// CRYOPHILE_RELIABILITY_KILL_COUNT overrides the count.
func TestDaemonKillLoops(t *testing.T) {
	n := count(0, 5)
	if s, err := strconv.Atoi(os.Getenv("CRYOPHILE_RELIABILITY_KILL_COUNT")); err == nil {
		n = s
	}
	for _, c := range []struct{ name, pkg, test string }{
		{"2 freeze kill -9", "./cmd/freeze/", "TestIntegrationKill"},
		{"2 thaw kill -9", "./cmd/thaw/", "TestKill9"},
	} {
		t.Run(c.test, func(t *testing.T) {
			sc := begin(t, c.name)
			if n == 0 {
				sc.note("short form: runs once (10 kills) in make integration's ./...")
				t.Skip("short form: the integration target runs it")
			}
			out, err := goTest(t, 15*time.Minute, []string{"CRYOPHILE_INTEGRATION=1"},
				"-tags", "integration", "-count", strconv.Itoa(n), "-v", "-run", "^"+c.test+"$", c.pkg)
			pass := strings.Count(out, "--- PASS: "+c.test+" ")
			fail := strings.Count(out, "--- FAIL: "+c.test+" ")
			for i := 0; i < pass+fail; i++ {
				r := sc.run()
				if i < fail {
					r.errorf("%s run failed", c.test)
				}
			}
			kills := 0
			re := regexp.MustCompile(`(\d+) kills`)
			for _, m := range re.FindAllStringSubmatch(out, -1) {
				k, _ := strconv.Atoi(m[1])
				kills += k
			}
			rounds := strings.Count(out, ": killed after")
			kills = max(kills, rounds)
			sc.note("%d runs, %d kills of the daemon", pass+fail, kills)
			if kills < 10*n {
				t.Errorf("%d kills of the daemon in %d runs, want ≥ %d", kills, n, 10*n)
			}
			if err != nil || pass != n {
				t.Errorf("go test -count %d -run %s %s: %v, %d passed\n%s", n, c.test, c.pkg, err, pass, failing(out, c.test))
			}
		})
	}
}

// TestFuzz runs every fuzzer for a fixed time in the long form
// (CRYOPHILE_RELIABILITY_FUZZTIME, default 30s each). New crashers are
// written by `go test -fuzz` into the package's testdata/fuzz/NAME/, where
// they become regression cases of the plain test runs. The short form
// runs only the seeds and those regression cases (they run in make unit).
func TestFuzz(t *testing.T) {
	fuzztime := os.Getenv("CRYOPHILE_RELIABILITY_FUZZTIME")
	if fuzztime == "" {
		fuzztime = "30s"
	}
	for _, f := range []struct{ pkg, name string }{
		{"./archive/", "FuzzParseManifest"},
		{"./archive/", "FuzzParseFragmentName"},
		{"./archive/", "FuzzParseID"},
		{"./archive/", "FuzzReader"},
		{"./thaw/", "FuzzParseRequest"},
		{"./config/", "FuzzLoad"},
	} {
		t.Run(f.name, func(t *testing.T) {
			sc := begin(t, "9 "+f.name)
			run := sc.run()
			args := []string{"-run", "^" + f.name + "$", f.pkg}
			if long() {
				// Minimizing each new interesting input may take 60 s
				// by default: with large seeds (the example config) that
				// left FuzzLoad 11 execs in 30 s. Time is for fuzzing.
				args = []string{"-run", "^$", "-fuzz", "^" + f.name + "$", "-fuzztime", fuzztime, "-fuzzminimizetime", "2s", "-parallel", "2", f.pkg}
			}
			out, err := goTest(t, 10*time.Minute, nil, args...)
			if err != nil {
				run.errorf("%s: %v\n%s", f.name, err, tail(out, 3000))
			}
			// "fuzz: elapsed: 30s, execs: 123456 (4115/sec), …"
			execs := regexp.MustCompile(`execs: (\d+)`).FindAllStringSubmatch(out, -1)
			if len(execs) > 0 {
				n, _ := strconv.ParseInt(execs[len(execs)-1][1], 10, 64)
				sc.note("%s: %d execs in %s", f.name, n, fuzztime)
				if n < 1000 {
					run.errorf("%s ran only %d inputs in %s: the fuzzer stalled", f.name, n, fuzztime)
				}
			} else {
				sc.note("%s: seeds and testdata/fuzz cases only", f.name)
			}
			sc.checked(0)
			scanFailure(t, out)
		})
	}
}

// scanFailure logs the lines that name a new crasher file.
func scanFailure(t *testing.T, out string) {
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		if strings.Contains(s.Text(), "testdata/fuzz") {
			t.Log(s.Text())
		}
	}
}

// failing returns the output of the failed runs of test in a -v log.
func failing(out, test string) string {
	var b strings.Builder
	var cur []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "=== RUN   "+test) {
			cur = nil
		}
		cur = append(cur, line)
		if strings.Contains(line, "--- FAIL: "+test) {
			fmt.Fprintln(&b, strings.Join(cur, "\n"))
		}
	}
	if b.Len() == 0 {
		return tail(out, 4000)
	}
	return tail(b.String(), 8000)
}
