package thaw

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

// StatusFormat is the format of status.json.
const StatusFormat = "cryophile-status/1"

// Failure codes in Status.Failure: what kind of permanent failure ended a
// restore request. cryophile-restore maps them to exit statuses.
const (
	// FailNotFound: the archive does not exist in the vault.
	FailNotFound = "not_found"
	// FailIncomplete: the vault holds fragments of the archive but no
	// manifest (an upload that never finished).
	FailIncomplete = "incomplete"
	// FailCorrupt: a fragment (or the manifest) does not match its
	// SHA-256 after several downloads; it is quarantined.
	FailCorrupt = "corrupt"
	// FailUnavailable: the vault cannot serve the request as configured
	// (unknown vault, access denied, no such bucket).
	FailUnavailable = "unavailable"
)

// Status is thaw's report on one archive, published atomically as
// restore/VAULT/PREFIX/ULID/status.json on every change. Field order is
// the JSON key order.
type Status struct {
	Format   string `json:"format"`
	BackupID string `json:"backup_id"`
	// Request is the ID (ULID) of the request this status answers.
	Request string `json:"request"`
	// Tier is the tier requested; TierNote says when thaw used another
	// (Expedited is refused for DEEP_ARCHIVE: Standard is used).
	Tier     string `json:"tier"`
	TierNote string `json:"tier_note,omitempty"`
	Days     int    `json:"days"`
	// Class is the storage class of the fragments (the first one's when
	// they differ).
	Class   string    `json:"class,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Fragments counts fragments per state.
	Fragments Counts `json:"fragments"`
	// Bytes is the ciphertext size; Downloaded how much of it thaw has
	// downloaded for this request.
	Bytes      int64 `json:"bytes"`
	Downloaded int64 `json:"downloaded"`
	// TypicalWait is the usual restore time for Tier and Class ("" when no
	// restore is needed).
	TypicalWait string `json:"typical_wait,omitempty"`
	// Estimate is the cost and wait estimated before the first restore
	// request.
	Estimate *Estimate `json:"estimate,omitempty"`
	// Errors are recent errors, transient or not, newest last.
	Errors []StatusError `json:"errors,omitempty"`
	// Complete: every fragment is published.
	Complete bool `json:"complete"`
	// Failure, when set, is a permanent failure: thaw gave up on the
	// request and removed it from thaw/.
	Failure *Failure `json:"failure,omitempty"`
}

// Counts are fragment counts per state. Every fragment is in exactly one.
type Counts struct {
	Total int `json:"total"`
	// Published: in restore/ (or already consumed by restore).
	Published int `json:"published"`
	// Downloading: being downloaded (or verified, or waiting to publish).
	Downloading int `json:"downloading"`
	// Ready: readable in the vault, waiting for a download slot or for
	// restore/ to drain below its budget.
	Ready int `json:"ready"`
	// Restoring: a restore is running in the vault.
	Restoring int `json:"restoring"`
	// Pending: not looked at yet, or about to be restored.
	Pending int `json:"pending"`
	// Quarantined: failed verification; kept in the quarantine.
	Quarantined int `json:"quarantined"`
}

// StatusError is one error report.
type StatusError struct {
	Time     time.Time `json:"time"`
	Fragment string    `json:"fragment,omitempty"`
	Message  string    `json:"message"`
}

// Failure is a permanent failure of a request.
type Failure struct {
	Code     string `json:"code"`
	Fragment string `json:"fragment,omitempty"`
	Message  string `json:"message"`
}

// FailureError is the error form of a Failure, for callers that branch on
// it: its Is matches archive.ErrCorrupt for FailCorrupt.
type FailureError struct{ Failure }

func (e *FailureError) Error() string { return "cryophile-thaw: " + e.Message }

// Is makes a corrupt fragment an archive.ErrCorrupt.
func (e *FailureError) Is(target error) bool {
	return target == archive.ErrCorrupt && e.Code == FailCorrupt
}

// Err returns the failure as an error, nil when s has none.
func (s *Status) Err() error {
	if s == nil || s.Failure == nil {
		return nil
	}
	return &FailureError{*s.Failure}
}

// StatusPath returns the path of archive id's status.json.
func StatusPath(sp *spool.Spool, id archive.ID) string {
	return filepath.Join(sp.Dir(spool.QueueRestore, id), spool.StatusName)
}

// ReadStatus reads archive id's status.json. A missing file wraps
// fs.ErrNotExist.
func ReadStatus(sp *spool.Spool, id archive.ID) (*Status, error) {
	p := StatusPath(sp, id)
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", p, spool.ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", p, archive.ErrCorrupt, err)
	}
	if s.Format != StatusFormat {
		return nil, fmt.Errorf("%s: unknown format %q", p, s.Format)
	}
	return &s, nil
}

// writeJSON replaces path atomically with v: a temporary file in tmpDir
// (same file system), fsync, rename over path, fsync of path's directory.
// The directory is never created: a restore directory that restore has
// removed stays removed.
func writeJSON(tmpDir, path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	return spool.ReplaceFile(tmpDir, path, b, spool.FileMode)
}

// syncDir fsyncs a directory.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// publishNoReplace renames the synced file tmp to dir/name without ever
// replacing an existing file (hand-off rule 1), then fsyncs dir. It is
// spool's publication, for files that must keep a fixed staging name
// across restarts (resumable downloads), which spool.Stage's random names
// cannot. An existing name wraps fs.ErrExist.
func publishNoReplace(tmp, dir, name string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, filepath.Join(dir, name), unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		if err = unix.Link(tmp, filepath.Join(dir, name)); err == nil {
			_ = os.Remove(tmp)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "publish", Old: tmp, New: filepath.Join(dir, name), Err: err}
	}
	return syncDir(dir)
}
