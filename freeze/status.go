package freeze

import (
	"path/filepath"

	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/spool"
)

// Program is the name of the freeze daemon in its status file.
const Program = "cryophile-freeze"

// StatusName is the name of freeze's status file in the spool's root.
const StatusName = DaemonName + ".status.json"

// StatusPath returns the path of the status file that Run and Once keep in
// sp: SPOOL/freeze.status.json, format daemon.StatusFormat, whose "queue"
// is a Status.
func StatusPath(sp *spool.Spool) string { return filepath.Join(sp.Root(), StatusName) }

// statusFile returns the status file of f (and its metrics textfile).
func (f *Freezer) statusFile() *daemon.StatusFile {
	return &daemon.StatusFile{
		Path:        StatusPath(f.sp),
		MetricsPath: f.o.MetricsFile,
		Mode:        spool.FileMode,
		Program:     Program,
		Version:     f.o.Version,
		Name:        "freeze",
		Interval:    f.o.StatusInterval,
		Queue: func() (any, func(*daemon.Metrics)) {
			s := f.Status()
			return s, s.metrics
		},
		Errors:  &f.errs,
		OnError: func(err error) { f.log.Warn("status file", "err", err) },
	}
}

// metrics writes s as Prometheus metrics.
func (s Status) metrics(m *daemon.Metrics) {
	m.Gauge("cryophile_freeze_fragments_pending", "Fragments and manifests waiting for an upload slot.", float64(s.Pending))
	m.Gauge("cryophile_freeze_uploads_in_flight", "Uploads in progress.", float64(s.Uploading))
	m.Gauge("cryophile_freeze_archives_waiting", "Archives whose manifest is not published yet (backups in progress).", float64(s.Waiting))
	m.Counter("cryophile_freeze_fragments_uploaded_total", "Fragments uploaded, verified and receipted since the start.", float64(s.Uploaded))
	m.Counter("cryophile_freeze_uploaded_bytes_total", "Bytes of the fragments uploaded since the start.", float64(s.UploadedBytes))
	m.Counter("cryophile_freeze_archives_completed_total", "Archives completed (manifest uploaded) since the start.", float64(s.Completed))
	m.Gauge("cryophile_freeze_archives_failed", "Archives stopped by a conflict or quarantined since the start.", float64(s.Failed))
	m.Gauge("cryophile_freeze_vaults_stopped", "Vaults stopped by a permanent error.", float64(len(s.Stopped)))
}

// Running reports whether a cryophile-freeze holds sp's daemon lock. The
// test takes the lock and releases it at once when nobody holds it.
func Running(sp *spool.Spool) (bool, error) { return sp.DaemonRunning(DaemonName) }
