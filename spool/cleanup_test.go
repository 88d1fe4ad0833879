package spool_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

func TestCleanupDeadWriters(t *testing.T) {
	s := openSpool(t)
	spool.SetCleanupGrace(s, time.Hour)
	old := time.Now().Add(-2 * time.Hour)

	// makeStaging simulates what a backup leaves: a staging directory with
	// a lock file (not held) and a partial fragment, and published
	// fragments in freeze/.
	makeStaging := func(id archive.ID, lock, manifest bool, frags int) {
		st := s.Dir(spool.QueueBackup, id)
		mustWrite(t, filepath.Join(st, ".chunk.000009.abc.tmp"), []byte("partial"))
		if lock {
			mustWrite(t, filepath.Join(st, spool.LockName), nil)
		}
		fz := s.Dir(spool.QueueFreeze, id)
		for i := 1; i <= frags; i++ {
			mustWrite(t, filepath.Join(fz, archive.FragmentName(i)), []byte("x"))
		}
		if manifest {
			mustWrite(t, filepath.Join(fz, archive.ManifestName), []byte("{}"))
		}
		os.Chtimes(st, old, old)
	}

	dead := newID(t, "host/dead")
	makeStaging(dead, true, false, 3)
	complete := newID(t, "host/complete")
	makeStaging(complete, true, true, 2)
	nolockOld := newID(t, "")
	makeStaging(nolockOld, false, false, 1)
	nolockNew := newID(t, "")
	makeStaging(nolockNew, false, false, 1)
	now := time.Now()
	os.Chtimes(s.Dir(spool.QueueBackup, nolockNew), now, now)

	// A live writer in this process, and one in another process.
	live := newID(t, "host/live")
	o := newOutbox(t, s, live, spool.Budget{})
	writeFragment(t, o, 1, []byte("live"))
	other := newID(t, "host/other")
	makeStaging(other, true, false, 2)
	holdLockInOtherProcess(t, filepath.Join(s.Dir(spool.QueueBackup, other), spool.LockName))

	removed, err := s.CleanupDeadWriters()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, id := range removed {
		got = append(got, id.String())
	}
	want := []string{dead.String(), complete.String(), nolockOld.String()}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}

	tests := []struct {
		id             archive.ID
		staging        bool
		freeze         bool
		freezeContents []string
	}{
		{dead, false, false, nil},
		{complete, false, true, []string{"chunk.000001", "chunk.000002", archive.ManifestName}},
		{nolockOld, false, false, nil},
		{nolockNew, true, true, []string{"chunk.000001"}},
		{live, true, true, []string{"chunk.000001"}},
		{other, true, true, []string{"chunk.000001", "chunk.000002"}},
	}
	for _, tt := range tests {
		if got := exists(s.Dir(spool.QueueBackup, tt.id)); got != tt.staging {
			t.Errorf("%s: staging exists = %v, want %v", tt.id, got, tt.staging)
		}
		if got := exists(s.Dir(spool.QueueFreeze, tt.id)); got != tt.freeze {
			t.Errorf("%s: freeze exists = %v, want %v", tt.id, got, tt.freeze)
		}
		if got := names(t, s.Dir(spool.QueueFreeze, tt.id)); tt.freeze && !slices.Equal(got, tt.freezeContents) {
			t.Errorf("%s: freeze holds %v, want %v", tt.id, got, tt.freezeContents)
		}
	}
	// Empty VAULT/PREFIX parents of what was removed are gone.
	for _, id := range []archive.ID{dead, nolockOld} {
		for _, q := range []string{spool.QueueBackup, spool.QueueFreeze} {
			if v := filepath.Join(s.Root(), q, id.Vault.String()); exists(v) {
				t.Errorf("empty %s left", v)
			}
		}
	}
	if !s.LiveWriter(other) || !s.LiveWriter(live) || s.LiveWriter(dead) {
		t.Errorf("LiveWriter wrong after cleanup")
	}
	// The live outbox still works.
	writeFragment(t, o, 2, []byte("more"))

	// A second pass finds nothing more to do.
	if removed, err := s.CleanupDeadWriters(); err != nil || len(removed) != 0 {
		t.Errorf("second CleanupDeadWriters = %v, %v", removed, err)
	}
}
