package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/spool"
)

// StatusFormat is the format of a daemon's status file
// (SPOOL/NAME.status.json).
const StatusFormat = "cryophile-daemon-status/1"

// MaxErrors is how many errors a status file keeps.
const MaxErrors = 20

// Status is a daemon's status file: what it is, whether it is ready, its
// queue (daemon-specific) and its last errors. Field order is the JSON key
// order.
type Status struct {
	Format  string    `json:"format"`
	Program string    `json:"program"`
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Ready: the daemon holds its lock, watches its queue and has scanned
	// it.
	Ready bool `json:"ready"`
	// Stopped: the daemon wrote this file as it stopped.
	Stopped bool `json:"stopped"`
	// Queue is the daemon's queue depths (freeze.Status, thaw.Queue).
	Queue json.RawMessage `json:"queue"`
	// ErrorsTotal counts the errors since the start; Errors are the last
	// MaxErrors of them, newest last.
	ErrorsTotal int64   `json:"errors_total"`
	Errors      []Error `json:"errors"`
}

// Error is one error in a status file.
type Error struct {
	Time     time.Time `json:"time"`
	Archive  string    `json:"archive,omitempty"`
	Key      string    `json:"key,omitempty"`
	Fragment string    `json:"fragment,omitempty"`
	Message  string    `json:"message"`
}

// ErrorLog keeps the last MaxErrors errors and counts them all. The zero
// value is ready; it is safe for concurrent use.
type ErrorLog struct {
	mu    sync.Mutex
	errs  []Error
	total int64
}

// Add records e, stamped with the current time if it has none.
func (l *ErrorLog) Add(e Error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.errs = append(l.errs, e)
	if len(l.errs) > MaxErrors {
		l.errs = append(l.errs[:0], l.errs[len(l.errs)-MaxErrors:]...)
	}
}

// Snapshot returns a copy of the kept errors and the total count.
func (l *ErrorLog) Snapshot() ([]Error, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Error{}, l.errs...), l.total
}

// ReadStatus reads a status file. A missing file gives an error wrapping
// fs.ErrNotExist.
func ReadStatus(path string) (*Status, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Format != StatusFormat {
		return nil, fmt.Errorf("%s: unknown format %q", path, s.Format)
	}
	return &s, nil
}

// WriteFile replaces path atomically with b (spool.ReplaceFile, staged in
// path's directory): readers see the old file or the new one, never a mix.
func WriteFile(path string, b []byte, mode os.FileMode) error {
	return spool.ReplaceFile("", path, b, mode)
}

// Defaults of StatusFile.
const (
	DefaultStatusInterval = time.Second
	DefaultKeepAlive      = time.Minute
)

// StatusFile keeps a daemon's status file, and optionally a node_exporter
// textfile of metrics, up to date: Update writes them at most once per
// Interval (a change within the interval is written at its end), and
// again every KeepAlive while nothing changes, so that a stale "updated"
// means a stuck or dead daemon. Close writes them one last time with
// Stopped set.
type StatusFile struct {
	// Path is the status file; MetricsPath, if not empty, the textfile.
	Path, MetricsPath string
	// Mode is the files' permissions.
	Mode os.FileMode
	// Program and Version go into the file; Name is the metric prefix
	// (cryophile_NAME_…).
	Program, Version, Name string
	// Interval and KeepAlive default to DefaultStatusInterval and
	// DefaultKeepAlive.
	Interval, KeepAlive time.Duration
	// Queue returns the daemon's queue depths (marshalled to JSON) and
	// writes its metrics. It is called from Update's or a timer's
	// goroutine.
	Queue func() (queue any, metrics func(*Metrics))
	// Errors are the daemon's errors.
	Errors *ErrorLog
	// OnError is called when a file cannot be written.
	OnError func(error)

	mu       sync.Mutex
	started  time.Time
	ready    bool
	closed   bool
	last     time.Time // last write
	lastBody []byte    // what changed-detection compares
	timer    *time.Timer
}

// SetReady marks the daemon ready and writes the file.
func (s *StatusFile) SetReady() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	s.Update()
}

// Update writes the files now if the status changed and the last write is
// at least Interval old; if it is younger, the write happens at its end.
func (s *StatusFile) Update() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

// tick is the timer's: the end of an interval, or a keep-alive.
func (s *StatusFile) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

// flushLocked writes the files if they changed or the keep-alive is due,
// or arms the timer for the end of the interval.
func (s *StatusFile) flushLocked() {
	if s.closed {
		return
	}
	if s.started.IsZero() {
		s.started = time.Now().UTC()
	}
	if wait := s.interval() - time.Since(s.last); wait > 0 {
		s.arm(wait)
		return
	}
	s.writeLocked(false, time.Since(s.last) >= s.keepAlive())
}

// Close stops the timers and writes the files with Stopped set. Update,
// SetReady and Close do nothing on a nil StatusFile.
func (s *StatusFile) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.started.IsZero() {
		s.started = time.Now().UTC()
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.writeLocked(true, true)
}

func (s *StatusFile) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultStatusInterval
}

// arm makes the timer fire in d (sooner if it is already due sooner).
func (s *StatusFile) arm(d time.Duration) {
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.tick)
		return
	}
	s.timer.Reset(d)
}

func (s *StatusFile) keepAlive() time.Duration {
	if s.KeepAlive > 0 {
		return s.KeepAlive
	}
	return DefaultKeepAlive
}

// writeLocked renders and writes the files unless nothing changed (and
// force is false), then arms the keep-alive.
func (s *StatusFile) writeLocked(stopped, force bool) {
	queue, metrics := s.Queue()
	q, err := json.Marshal(queue)
	if err != nil {
		s.fail(err)
		return
	}
	var errs []Error
	var total int64
	if s.Errors != nil {
		errs, total = s.Errors.Snapshot()
	}
	// What a change is: everything but the time stamps.
	body := fmt.Appendf(nil, "%t %t %d %s", s.ready, stopped, total, q)
	// The keep-alive counts from the last write, not from this call:
	// frequent calls with no change must not put it off.
	defer func() { s.arm(max(s.keepAlive()-time.Since(s.last), 0)) }()
	if !force && bytes.Equal(body, s.lastBody) {
		return
	}
	now := time.Now().UTC()
	st := Status{
		Format: StatusFormat, Program: s.Program, PID: os.Getpid(), Version: s.Version,
		Started: s.started, Updated: now, Ready: s.ready && !stopped, Stopped: stopped,
		Queue: q, ErrorsTotal: total, Errors: errs,
	}
	if st.Errors == nil {
		st.Errors = []Error{}
	}
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		s.fail(err)
		return
	}
	mode := s.Mode
	if mode == 0 {
		mode = 0o640
	}
	// The metrics first: whoever sees a status file finds metrics at
	// least as new.
	var werr error
	if s.MetricsPath != "" {
		m := &Metrics{}
		s.commonMetrics(m, &st)
		if metrics != nil {
			metrics(m)
		}
		if err := WriteFile(s.MetricsPath, m.Bytes(), 0o644); err != nil {
			werr = fmt.Errorf("metrics textfile: %w", err)
		}
	}
	if err := WriteFile(s.Path, append(b, '\n'), mode); err != nil {
		werr = errors.Join(werr, fmt.Errorf("status file: %w", err))
	}
	s.last = time.Now()
	s.lastBody = body
	if werr != nil {
		s.fail(werr)
	}
}

func (s *StatusFile) fail(err error) {
	if s.OnError != nil {
		s.OnError(err)
	}
}

func (s *StatusFile) commonMetrics(m *Metrics, st *Status) {
	prog := []string{"program", s.Program}
	up := 1.0
	if st.Stopped {
		up = 0
	}
	m.Gauge("cryophile_daemon_up", "Whether the daemon is running (0: it wrote this as it stopped).", up, prog...)
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	m.Gauge("cryophile_daemon_ready", "Whether the daemon holds its lock and has scanned its queue.", ready, prog...)
	m.Gauge("cryophile_daemon_start_time_seconds", "When the daemon started, in seconds since the epoch.", unixSeconds(st.Started), prog...)
	m.Gauge("cryophile_daemon_last_update_timestamp_seconds", "When the daemon last wrote its status, in seconds since the epoch; refreshed at least every minute.", unixSeconds(st.Updated), prog...)
	m.Counter("cryophile_"+s.Name+"_errors_total", "Errors since the daemon started (transient ones included).", float64(st.ErrorsTotal))
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// Metrics builds a Prometheus text exposition (format 0.0.4), as
// node_exporter's textfile collector reads it.
type Metrics struct {
	b     strings.Builder
	typed map[string]bool
}

// Gauge adds a sample of gauge name; labels are name, value pairs.
func (m *Metrics) Gauge(name, help string, v float64, labels ...string) {
	m.add("gauge", name, help, v, labels)
}

// Counter adds a sample of counter name (whose name ends in _total).
func (m *Metrics) Counter(name, help string, v float64, labels ...string) {
	m.add("counter", name, help, v, labels)
}

func (m *Metrics) add(typ, name, help string, v float64, labels []string) {
	if m.typed == nil {
		m.typed = map[string]bool{}
	}
	if !m.typed[name] {
		m.typed[name] = true
		fmt.Fprintf(&m.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b.WriteByte(',')
			}
			fmt.Fprintf(&m.b, "%s=\"%s\"", labels[i], labelEscaper.Replace(labels[i+1]))
		}
		m.b.WriteByte('}')
	}
	m.b.WriteByte(' ')
	m.b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	m.b.WriteByte('\n')
}

// labelEscaper escapes a label value as the text format wants (not
// strconv.Quote: the format has no \u escapes).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Bytes returns the exposition.
func (m *Metrics) Bytes() []byte { return []byte(m.b.String()) }
