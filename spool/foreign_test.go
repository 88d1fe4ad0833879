package spool_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/testperm"
	"github.com/cryophile/cryophile/spool"
)

// TestForeignDirectory: an archive directory the process may not read
// (another user's; mode 000 here, checked without root's DAC override)
// stops neither Archives, nor Usage, nor CleanupDeadWriters: Archives lists
// it with Err naming it, Usage counts the rest, CleanupDeadWriters cleans
// the other dead writers up, reports it, and leaves it alone.
func TestForeignDirectory(t *testing.T) {
	s := openSpool(t)
	spool.SetCleanupGrace(s, time.Hour)
	old := time.Now().Add(-2 * time.Hour)
	foreign, dead := newID(t, "host/foreign"), newID(t, "host/dead")
	for _, id := range []archive.ID{foreign, dead} {
		st := s.Dir(spool.QueueBackup, id)
		mustWrite(t, filepath.Join(st, spool.LockName), nil)
		mustWrite(t, filepath.Join(st, ".chunk.000001.x.tmp"), []byte("partial"))
		os.Chtimes(st, old, old)
	}
	fdir := s.Dir(spool.QueueBackup, foreign)
	if err := os.Chmod(fdir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(fdir, 0o700) })

	var (
		dirs       []spool.ArchiveDir
		listErr    error
		used       int64
		usageErr   error
		removed    []archive.ID
		cleanupErr error
	)
	if err := testperm.WithoutDACOverride(func() {
		dirs, listErr = s.Archives(spool.QueueBackup)
		used, usageErr = s.Usage(spool.QueueBackup)
		removed, cleanupErr = s.CleanupDeadWriters()
	}); err != nil {
		t.Fatal(err)
	}

	if listErr != nil {
		t.Fatalf("Archives: %v", listErr)
	}
	if len(dirs) != 2 {
		t.Fatalf("Archives listed %d directories, want 2", len(dirs))
	}
	for _, d := range dirs {
		switch d.ID {
		case foreign:
			if !errors.Is(d.Err, fs.ErrPermission) || !strings.Contains(d.Err.Error(), fdir) {
				t.Errorf("Archives: %s has Err %v, want one wrapping fs.ErrPermission naming %s", d.ID, d.Err, fdir)
			}
		case dead:
			if d.Err != nil {
				t.Errorf("Archives: %s has Err %v", d.ID, d.Err)
			}
		}
	}
	if usageErr != nil || used != int64(len("partial")) {
		t.Errorf("Usage = %d, %v; want %d (the readable directory's), nil", used, usageErr, len("partial"))
	}
	if len(removed) != 1 || removed[0] != dead {
		t.Errorf("CleanupDeadWriters removed %v, want [%s]", removed, dead)
	}
	if !errors.Is(cleanupErr, fs.ErrPermission) || !strings.Contains(cleanupErr.Error(), fdir) {
		t.Errorf("CleanupDeadWriters: %v, want an error wrapping fs.ErrPermission naming %s", cleanupErr, fdir)
	}
	os.Chmod(fdir, 0o700)
	if got := names(t, fdir); len(got) != 2 {
		t.Errorf("%s holds %v after cleanup, want its 2 files untouched", fdir, got)
	}
}
