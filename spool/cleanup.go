package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cryophile/cryophile/archive"
)

// CleanupDeadWriters removes what crashed backups left behind (hand-off
// rule 6). For every staging directory in backup/ whose lock no live
// process holds, it takes the lock itself (so no writer can start on it
// meanwhile), removes the freeze/ counterpart if that has no manifest (an
// archive that will never complete), then the staging directory, then the
// VAULT/PREFIX directories left empty. A freeze/ counterpart WITH a
// manifest is complete (the writer died between publishing the manifest
// and removing its staging directory) and is left alone.
//
// A staging directory without a lock file that changed within the last
// minute is skipped: its writer may be between its mkdir and its lock.
// It returns the IDs it cleaned up; an error about one archive (a staging
// directory it cannot read, say) does not stop the others.
func (s *Spool) CleanupDeadWriters() (removed []archive.ID, err error) {
	dirs, err := s.Archives(QueueBackup)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, d := range dirs {
		if d.Unlisted() {
			errs = append(errs, fmt.Errorf("spool: cleanup below %s: %w", d.Path, d.Err))
			continue
		}
		if d.Err != nil {
			errs = append(errs, fmt.Errorf("spool: cleanup %s: %w", d.ID, d.Err))
			continue
		}
		ok, err := s.cleanupOne(d.ID)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed = append(removed, d.ID)
		}
	}
	return removed, errors.Join(errs...)
}

func (s *Spool) cleanupOne(id archive.ID) (bool, error) {
	staging := s.Dir(QueueBackup, id)
	lockPath := filepath.Join(staging, LockName)
	// Never create a lock file in another writer's staging directory: a
	// writer finishing removes its directory with its lock in it, and a
	// lock file created in between would make that removal fail ("directory
	// not empty": a complete backup reported as failed; seen with 8
	// backups at once). Only a directory whose writer died before taking
	// its lock, past the grace period, gets one.
	create := false
	if _, err := os.Lstat(lockPath); errors.Is(err, fs.ErrNotExist) {
		fi, err := os.Lstat(staging)
		if err != nil {
			return false, nil // gone meanwhile
		}
		if time.Since(fi.ModTime()) < s.cleanupGrace {
			return false, nil
		}
		create = true
	}
	l, err := lock(lockPath, create)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return false, nil // a live writer
		}
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // its writer finished meanwhile
		}
		return false, fmt.Errorf("spool: cleanup %s: %w", id, err)
	}
	defer l.Close()

	freeze := s.Dir(QueueFreeze, id)
	fi, err := os.Lstat(freeze)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("spool: cleanup %s: %w", id, err)
	case !fi.IsDir():
		return false, fmt.Errorf("spool: cleanup %s: %s: %w: not a directory", id, freeze, ErrSpool)
	default:
		_, err := os.Lstat(filepath.Join(freeze, archive.ManifestName))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.RemoveAll(freeze); err != nil {
				return false, fmt.Errorf("spool: cleanup %s: %w", id, err)
			}
			_ = syncDir(filepath.Dir(freeze))
			s.prune(QueueFreeze, id)
		case err != nil:
			return false, fmt.Errorf("spool: cleanup %s: %w", id, err)
		}
	}
	// Remove the staging directory while holding its lock, then release.
	if err := os.RemoveAll(staging); err != nil {
		return false, fmt.Errorf("spool: cleanup %s: %w", id, err)
	}
	s.prune(QueueBackup, id)
	return true, nil
}
