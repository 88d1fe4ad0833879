package thaw

import (
	"fmt"
	"path/filepath"

	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/spool"
)

// Program is the name of the thaw daemon in its status file.
const Program = "cryophile-thaw"

// DaemonStatusName is the name of thaw's daemon status file in the spool's
// root (not to be confused with an archive's status.json in restore/).
const DaemonStatusName = DaemonName + ".status.json"

// DaemonStatusPath returns the path of the daemon status file that Run and
// Once keep in sp: SPOOL/thaw.status.json, format daemon.StatusFormat,
// whose "queue" is a Queue.
func DaemonStatusPath(sp *spool.Spool) string { return filepath.Join(sp.Root(), DaemonStatusName) }

// Queue is thaw's work in progress, over all the restore requests it
// serves.
type Queue struct {
	// Archives is the number of restore requests in progress.
	Archives int `json:"archives"`
	// Fragments counts their fragments per state.
	Fragments Counts `json:"fragments"`
}

// String formats q for humans and sd_notify STATUS=.
func (q Queue) String() string {
	if q.Archives == 0 {
		return "idle: no restore request"
	}
	c := q.Fragments
	s := fmt.Sprintf("%d archives: %d/%d fragments published, %d downloading, %d ready, %d restoring, %d pending",
		q.Archives, c.Published, c.Total, c.Downloading, c.Ready, c.Restoring, c.Pending)
	if c.Quarantined > 0 {
		s += fmt.Sprintf(", %d quarantined", c.Quarantined)
	}
	return s
}

// Queue returns the current work in progress.
func (t *Thaw) Queue() Queue {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := Queue{Archives: len(t.jobs)}
	c := &q.Fragments
	for _, j := range t.jobs {
		jc := j.counts()
		c.Total += jc.Total
		c.Published += jc.Published
		c.Downloading += jc.Downloading
		c.Restoring += jc.Restoring
		c.Ready += jc.Ready
		c.Pending += jc.Pending
		c.Quarantined += jc.Quarantined
	}
	return q
}

// statusFile returns t's daemon status file (and its metrics textfile).
func (t *Thaw) statusFile() *daemon.StatusFile {
	return &daemon.StatusFile{
		Path:        DaemonStatusPath(t.sp),
		MetricsPath: t.o.MetricsFile,
		Mode:        spool.FileMode,
		Program:     Program,
		Version:     t.o.Version,
		Name:        "thaw",
		Interval:    t.o.StatusInterval,
		Queue: func() (any, func(*daemon.Metrics)) {
			q := t.Queue()
			return q, q.metrics
		},
		Errors:  &t.errs,
		OnError: func(err error) { t.log.Warn("status file", "err", err) },
	}
}

// metrics writes q as Prometheus metrics.
func (q Queue) metrics(m *daemon.Metrics) {
	m.Gauge("cryophile_thaw_archives", "Restore requests in progress.", float64(q.Archives))
	c := q.Fragments
	const help = "Fragments of the restore requests in progress, per state."
	for _, s := range []struct {
		state string
		n     int
	}{
		{"published", c.Published}, {"downloading", c.Downloading}, {"ready", c.Ready},
		{"restoring", c.Restoring}, {"pending", c.Pending}, {"quarantined", c.Quarantined},
	} {
		m.Gauge("cryophile_thaw_fragments", help, float64(s.n), "state", s.state)
	}
}
