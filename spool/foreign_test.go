package spool_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

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

// TestForeignPrefixDirectory: a prefix directory the process may not read
// stops neither Archives nor CleanupDeadWriters: Archives lists it as
// Unlisted, with Err naming it, next to the archives of other prefixes;
// CleanupDeadWriters cleans those up and reports it.
func TestForeignPrefixDirectory(t *testing.T) {
	s := openSpool(t)
	spool.SetCleanupGrace(s, time.Hour)
	old := time.Now().Add(-2 * time.Hour)
	hidden := newID(t, "host/foreign/pool")
	dead := hidden
	dead.Prefix, dead.ULID = "host/other", ulid.Make()
	for _, id := range []archive.ID{hidden, dead} {
		st := s.Dir(spool.QueueBackup, id)
		mustWrite(t, filepath.Join(st, spool.LockName), nil)
		mustWrite(t, filepath.Join(st, ".chunk.000001.x.tmp"), []byte("partial"))
		os.Chtimes(st, old, old)
	}
	pdir := filepath.Dir(filepath.Dir(s.Dir(spool.QueueBackup, hidden))) // …/host/foreign
	if err := os.Chmod(pdir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(pdir, 0o750) })

	var (
		dirs       []spool.ArchiveDir
		listErr    error
		removed    []archive.ID
		cleanupErr error
	)
	if err := testperm.WithoutDACOverride(func() {
		dirs, listErr = s.Archives(spool.QueueBackup)
		removed, cleanupErr = s.CleanupDeadWriters()
	}); err != nil {
		t.Fatal(err)
	}
	if listErr != nil {
		t.Fatalf("Archives: %v", listErr)
	}
	var unlisted, listed int
	for _, d := range dirs {
		switch {
		case d.Unlisted():
			unlisted++
			if d.Path != pdir || d.ID.Prefix != "host/foreign" || !errors.Is(d.Err, fs.ErrPermission) || !strings.Contains(d.Err.Error(), pdir) {
				t.Errorf("Archives: unlisted %+v, want %s (prefix host/foreign) with an error wrapping fs.ErrPermission naming it", d, pdir)
			}
		case d.ID == dead && d.Err == nil:
			listed++
		default:
			t.Errorf("Archives listed %+v", d)
		}
	}
	if unlisted != 1 || listed != 1 {
		t.Fatalf("Archives: %d unlisted and %d archives, want 1 and 1: %+v", unlisted, listed, dirs)
	}
	if len(removed) != 1 || removed[0] != dead {
		t.Errorf("CleanupDeadWriters removed %v, want [%s]", removed, dead)
	}
	if !errors.Is(cleanupErr, fs.ErrPermission) || !strings.Contains(cleanupErr.Error(), pdir) {
		t.Errorf("CleanupDeadWriters: %v, want an error wrapping fs.ErrPermission naming %s", cleanupErr, pdir)
	}
	os.Chmod(pdir, 0o750)
	if got := names(t, s.Dir(spool.QueueBackup, hidden)); len(got) != 2 {
		t.Errorf("the hidden staging holds %v after cleanup, want its 2 files untouched", got)
	}
}
