package freeze_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/freeze"
	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/storage"
)

// gatedStore holds every Put until gate is closed.
type gatedStore struct {
	storage.Store
	gate chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Put(ctx, key, r, size, opts)
}

// readStatus reads freeze's status file and its queue; ok is false while
// there is none.
func readStatus(t *testing.T, e *env) (st *daemon.Status, q freeze.Status, ok bool) {
	t.Helper()
	st, err := daemon.ReadStatus(freeze.StatusPath(e.sp))
	if errors.Is(err, os.ErrNotExist) {
		return nil, q, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(st.Queue, &q); err != nil {
		t.Fatalf("queue %s: %v", st.Queue, err)
	}
	return st, q, true
}

// parseMetrics checks that b is Prometheus text (every sample's metric has
// a # TYPE line before it, every value is a number) and returns the
// samples by name{labels}.
func parseMetrics(t *testing.T, b []byte) map[string]float64 {
	t.Helper()
	typed := map[string]bool{}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			typed[f[2]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		name, _, _ := strings.Cut(series, "{")
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil || !typed[name] {
			t.Fatalf("metrics line %q: not a sample of a typed metric", line)
		}
		samples[series] = v
	}
	return samples
}

func TestStatusFile(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	gate := make(chan struct{})
	o := e.options()
	o.Vaults[0].Store = &gatedStore{Store: e.vaults[v], gate: gate}
	o.Concurrency = 1
	o.Version = "1.2.3"
	o.StatusInterval = 10 * time.Millisecond
	o.MetricsFile = filepath.Join(t.TempDir(), "cryophile-freeze.prom")
	e.publishArchive(v, "", 3, 1000)
	b2 := e.newBackup(v, "streaming") // no manifest yet: waiting
	b2.publish(fragmentData(t, 1000))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.freezer(o).Run(ctx) }()
	waitFor(t, "a status file with an upload in flight and the rest pending", 10*time.Second, func() bool {
		st, q, ok := readStatus(t, e)
		return ok && st.Ready && q.Uploading == 1 && q.Pending == 3 && q.Waiting == 1
	})
	st, _, _ := readStatus(t, e)
	if st.Program != freeze.Program || st.PID != os.Getpid() || st.Version != "1.2.3" || st.Stopped || st.Started.IsZero() {
		t.Errorf("status %+v: want program %s, pid %d, version 1.2.3, started, not stopped", st, freeze.Program, os.Getpid())
	}
	m, err := os.ReadFile(o.MetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseMetrics(t, m)["cryophile_freeze_fragments_pending"]; got != 3 {
		t.Errorf("cryophile_freeze_fragments_pending = %v, want 3:\n%s", got, m)
	}

	close(gate)
	b2.finish()
	waitFor(t, "a status file with both archives completed", 10*time.Second, func() bool {
		_, q, _ := readStatus(t, e)
		return q.Completed == 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st, q, _ := readStatus(t, e)
	if !st.Stopped || st.Ready || q.Pending+q.Uploading+q.Waiting != 0 || q.Uploaded != 4 || q.UploadedBytes != 4000 {
		t.Errorf("status after stop %+v, queue %+v: want stopped, not ready, 4 fragments (4000 bytes) uploaded, nothing queued", st, q)
	}
	if len(st.Errors) != 0 || st.ErrorsTotal != 0 {
		t.Errorf("errors %+v (total %d), want none", st.Errors, st.ErrorsTotal)
	}
	m, err = os.ReadFile(o.MetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	got := parseMetrics(t, m)
	for series, want := range map[string]float64{
		`cryophile_daemon_up{program="cryophile-freeze"}`:    0,
		`cryophile_daemon_ready{program="cryophile-freeze"}`: 0,
		"cryophile_freeze_fragments_pending":                 0,
		"cryophile_freeze_fragments_uploaded_total":          4,
		"cryophile_freeze_uploaded_bytes_total":              4000,
		"cryophile_freeze_archives_completed_total":          2,
		"cryophile_freeze_errors_total":                      0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %t), want %v", series, v, ok, want)
		}
	}
	if ts := got[`cryophile_daemon_last_update_timestamp_seconds{program="cryophile-freeze"}`]; time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("last update timestamp %v is not now", ts)
	}
}

func TestStatusFileErrors(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	b, _ := e.publishArchive(v, "host", 2, 1000)
	o := e.options()
	o.Vaults[0].Class = "GLACIER_TYPO" // a permanent error
	o.MetricsFile = filepath.Join(t.TempDir(), "m.prom")
	if err := e.freezer(o).Once(context.Background()); !errors.Is(err, storage.ErrPermanent) {
		t.Fatalf("Once: %v, want ErrPermanent", err)
	}
	st, q, ok := readStatus(t, e)
	if !ok {
		t.Fatal("no status file after Once")
	}
	if !st.Stopped || len(q.Stopped) != 1 || q.Stopped[0] != v {
		t.Errorf("status %+v, queue %+v: want stopped, vault %s stopped", st, q, v)
	}
	if st.ErrorsTotal < 1 || len(st.Errors) < 1 {
		t.Fatalf("errors %+v (total %d), want the vault's error", st.Errors, st.ErrorsTotal)
	}
	first := st.Errors[0]
	if first.Archive != b.id.String() || !strings.HasPrefix(first.Key, b.id.Key()+"/") || first.Time.IsZero() ||
		!strings.Contains(first.Message, "GLACIER_TYPO") {
		t.Errorf("error %+v: want the archive, its key, a time and the storage class in the message", first)
	}
	m, err := os.ReadFile(o.MetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	got := parseMetrics(t, m)
	if got["cryophile_freeze_errors_total"] != float64(st.ErrorsTotal) || got["cryophile_freeze_vaults_stopped"] != 1 {
		t.Errorf("metrics:\n%s\nwant errors_total %d and 1 vault stopped", m, st.ErrorsTotal)
	}
}

func TestRunning(t *testing.T) {
	e := newEnv(t, 1)
	if running, err := freeze.Running(e.sp); err != nil || running {
		t.Fatalf("Running = %t, %v before any freeze, want false", running, err)
	}
	o := e.options()
	ready := make(chan struct{})
	o.OnReady = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.freezer(o).Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if running, err := freeze.Running(e.sp); err != nil || !running {
		t.Errorf("Running = %t, %v while Run runs, want true", running, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Running released the lock it took: a new freeze can start.
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once after Running: %v", err)
	}
}
