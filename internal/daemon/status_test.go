package daemon_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cryophile/cryophile/internal/daemon"
)

func TestErrorLogKeepsTheLast(t *testing.T) {
	var l daemon.ErrorLog
	for i := range daemon.MaxErrors + 5 {
		l.Add(daemon.Error{Message: fmt.Sprint(i)})
	}
	errs, total := l.Snapshot()
	if got, want := total, int64(daemon.MaxErrors+5); got != want {
		t.Errorf("total = %d, want %d", got, want)
	}
	if len(errs) != daemon.MaxErrors || errs[0].Message != "5" || errs[len(errs)-1].Message != fmt.Sprint(daemon.MaxErrors+4) {
		t.Errorf("kept %d errors from %q to %q, want %d from 5", len(errs), errs[0].Message, errs[len(errs)-1].Message, daemon.MaxErrors)
	}
	if errs[0].Time.IsZero() {
		t.Error("error without a time")
	}
}

func TestStatusFileThrottles(t *testing.T) {
	dir := t.TempDir()
	n := 0
	var errs daemon.ErrorLog
	s := &daemon.StatusFile{
		Path: filepath.Join(dir, "x.status.json"), MetricsPath: filepath.Join(dir, "x.prom"),
		Program: "cryophile-x", Version: "v", Name: "x",
		Interval: time.Hour, KeepAlive: time.Hour,
		Queue: func() (any, func(*daemon.Metrics)) {
			n++ // every call is a change
			return map[string]int{"n": n}, func(m *daemon.Metrics) { m.Gauge("cryophile_x_n", "N.", float64(n)) }
		},
		Errors:  &errs,
		OnError: func(err error) { t.Error(err) },
	}
	s.SetReady()
	for range 100 {
		s.Update() // within the interval: deferred to its end
	}
	st, err := daemon.ReadStatus(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := queueN(t, st); got != 1 || !st.Ready || st.Stopped || st.Program != "cryophile-x" {
		t.Errorf("status %+v (queue %d): want the first write only, ready", st, got)
	}
	errs.Add(daemon.Error{Archive: "a", Message: "boom"})
	s.Close()
	st, err = daemon.ReadStatus(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := queueN(t, st); got != 2 || st.Ready || !st.Stopped || st.ErrorsTotal != 1 || st.Errors[0].Message != "boom" {
		t.Errorf("status %+v (queue %d): want the final write, stopped, with the error", st, got)
	}
	s.Update() // after Close: nothing
	if n != 2 {
		t.Errorf("Queue called %d times, want 2", n)
	}
	var raw map[string]any
	b, _ := json.Marshal(st)
	if err := json.Unmarshal(b, &raw); err != nil || raw["format"] != daemon.StatusFormat {
		t.Errorf("format %v, want %s", raw["format"], daemon.StatusFormat)
	}
}

func TestStatusFileKeepAlive(t *testing.T) {
	s := &daemon.StatusFile{
		Path: filepath.Join(t.TempDir(), "x.status.json"), Program: "cryophile-x", Name: "x",
		Interval: time.Millisecond, KeepAlive: 50 * time.Millisecond,
		Queue:   func() (any, func(*daemon.Metrics)) { return 0, nil }, // never changes
		OnError: func(err error) { t.Error(err) },
	}
	defer s.Close()
	s.Update()
	first, err := daemon.ReadStatus(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	// Updates with nothing new, more often than the keep-alive, must not
	// put it off.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.Update()
		st, err := daemon.ReadStatus(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Updated.After(first.Updated) {
			if d := st.Updated.Sub(first.Updated); d < 50*time.Millisecond {
				t.Errorf("rewritten after %v with nothing new, want the 50ms keep-alive", d)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no keep-alive write within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func queueN(t *testing.T, st *daemon.Status) int {
	t.Helper()
	var q struct{ N int }
	if err := json.Unmarshal(st.Queue, &q); err != nil {
		t.Fatal(err)
	}
	return q.N
}

func TestMetrics(t *testing.T) {
	var m daemon.Metrics
	m.Gauge("cryophile_x_fragments", "Fragments.", 3, "state", "ready")
	m.Gauge("cryophile_x_fragments", "Fragments.", 0.5, "state", `a"b\c`)
	m.Counter("cryophile_x_errors_total", "Errors.", 7)
	want := `# HELP cryophile_x_fragments Fragments.
# TYPE cryophile_x_fragments gauge
cryophile_x_fragments{state="ready"} 3
cryophile_x_fragments{state="a\"b\\c"} 0.5
# HELP cryophile_x_errors_total Errors.
# TYPE cryophile_x_errors_total counter
cryophile_x_errors_total 7
`
	if got := string(m.Bytes()); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
}
