package thaw_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
	"github.com/cryophile/cryophile/thaw"
)

// daemonStatus reads thaw's daemon status file; ok is false while there is
// none.
func (e *env) daemonStatus() (st *daemon.Status, q thaw.Queue, ok bool) {
	e.t.Helper()
	st, err := daemon.ReadStatus(thaw.DaemonStatusPath(e.sp))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, q, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(st.Queue, &q); err != nil {
		e.t.Fatalf("queue %s: %v", st.Queue, err)
	}
	return st, q, true
}

// sample returns the value of series in the Prometheus text file p,
// checking that its metric has a # TYPE line.
func sample(t *testing.T, p, series string) float64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(series, "{")
	if !strings.Contains(string(b), "\n# TYPE "+name+" ") && !strings.HasPrefix(string(b), "# TYPE "+name+" ") {
		t.Fatalf("%s has no # TYPE line for %s:\n%s", p, name, b)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", p, line, err)
			}
			return f
		}
	}
	t.Fatalf("%s has no sample %s:\n%s", p, series, b)
	return 0
}

func TestDaemonStatusFile(t *testing.T) {
	const size = 32 << 10
	metrics := filepath.Join(t.TempDir(), "thaw.prom")
	e := newEnv(t, file.Options{}, func(o *thaw.Options) {
		o.RestoreMaxBytes = 2*size + 8<<10
		o.StatusInterval = 10 * time.Millisecond
		o.MetricsFile = metrics
		o.Version = "1.2.3"
	})
	id, _, frags := e.putArchive("", storage.ClassStandard, 6, size, true)
	e.request(id, "standard", 3)
	th := e.engine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- th.Run(ctx) }()
	// Blocked by the budget: two published, the rest readable but held.
	waitFor(t, "a status file with two fragments published and four ready", 10*time.Second, func() bool {
		st, q, ok := e.daemonStatus()
		return ok && st.Ready && q.Archives == 1 && q.Fragments.Published == 2 && q.Fragments.Ready == 4
	})
	st, _, _ := e.daemonStatus()
	if st.Program != thaw.Program || st.PID != os.Getpid() || st.Version != "1.2.3" || st.Stopped {
		t.Errorf("status %+v: want program %s, pid %d, version 1.2.3, not stopped", st, thaw.Program, os.Getpid())
	}
	if got := sample(t, metrics, `cryophile_thaw_fragments{state="ready"}`); got != 4 {
		t.Errorf(`cryophile_thaw_fragments{state="ready"} = %v, want 4`, got)
	}
	e.consume(id, frags)
	waitFor(t, "a status file with nothing in progress", 10*time.Second, func() bool {
		_, q, _ := e.daemonStatus()
		return q.Archives == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st, q, _ := e.daemonStatus()
	if !st.Stopped || st.Ready || q.Fragments != (thaw.Counts{}) || st.ErrorsTotal != 0 {
		t.Errorf("status after stop %+v, queue %+v: want stopped, not ready, nothing in progress, no error", st, q)
	}
	for series, want := range map[string]float64{
		`cryophile_daemon_up{program="cryophile-thaw"}`: 0,
		`cryophile_thaw_fragments{state="published"}`:   0,
		"cryophile_thaw_archives":                       0,
		"cryophile_thaw_errors_total":                   0,
	} {
		if got := sample(t, metrics, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

func TestDaemonStatusErrors(t *testing.T) {
	metrics := filepath.Join(t.TempDir(), "thaw.prom")
	e := newEnv(t, file.Options{}, func(o *thaw.Options) { o.VerifyAttempts = 2; o.MetricsFile = metrics })
	id, _, _ := e.putArchive("c", storage.ClassGlacierIR, 2, 16<<10, true)
	p := filepath.Join(e.vault.Root(), filepath.FromSlash(id.Key()), "chunk.000002")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0x40
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	e.request(id, "bulk", 1)
	if err := e.once(); err == nil {
		t.Fatal("Once succeeded with a corrupt fragment")
	}
	st, _, ok := e.daemonStatus()
	if !ok {
		t.Fatal("no daemon status file after Once")
	}
	if !st.Stopped || st.ErrorsTotal < 3 || int(st.ErrorsTotal) != len(st.Errors) {
		t.Fatalf("status %+v: want stopped, two failed verifications and the failure in the errors", st)
	}
	for _, se := range st.Errors {
		if se.Archive != id.String() || se.Fragment != "chunk.000002" || se.Time.IsZero() || se.Message == "" {
			t.Errorf("error %+v: want archive %s, fragment chunk.000002, a time and a message", se, id)
		}
	}
	if last := st.Errors[len(st.Errors)-1]; !strings.Contains(last.Message, thaw.FailCorrupt) {
		t.Errorf("last error %q, want the %s failure", last.Message, thaw.FailCorrupt)
	}
	if got := sample(t, metrics, "cryophile_thaw_errors_total"); got != float64(st.ErrorsTotal) {
		t.Errorf("cryophile_thaw_errors_total = %v, want %d", got, st.ErrorsTotal)
	}
}
