package spool_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cryophile/cryophile/spool"
)

// seen collects the paths a watcher reports.
type seen struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *seen) add(p string) { s.mu.Lock(); s.n[p]++; s.mu.Unlock() }
func (s *seen) has(p string) func() bool {
	return func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.n[p] > 0 }
}
func (s *seen) count(p string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.n[p] }

func startWatch(t *testing.T, root string, rescan time.Duration) *seen {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := &seen{n: map[string]int{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := spool.Watch(ctx, root, rescan, got.add); err != context.Canceled {
			t.Errorf("Watch = %v, want context.Canceled", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return got
}

func TestWatch(t *testing.T) {
	root := t.TempDir()
	staging := filepath.Join(root, ".staging")
	if err := os.Mkdir(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	before := filepath.Join(root, "v", "p", "before")
	mustWrite(t, before, []byte("1"))
	outside := filepath.Join(t.TempDir(), "target")
	mustWrite(t, outside, nil)
	linkDir := filepath.Join(t.TempDir(), "linked")
	mustWrite(t, filepath.Join(linkDir, "inside"), nil)
	if err := os.Symlink(outside, filepath.Join(root, "symlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(linkDir, filepath.Join(root, "symlinkdir")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, ".hidden"), nil)

	// A rescan period far beyond the test: what is seen after the initial
	// scan is seen through events.
	got := startWatch(t, root, time.Hour)
	eventually(t, "the file published before the watch", got.has(before))

	tests := []struct {
		name string
		path string
	}{
		{"published by rename into a watched directory", filepath.Join(root, "v", "p", "after")},
		{"in a directory created after the watch", filepath.Join(root, "v", "q", "r", "new")},
		{"at the top", filepath.Join(root, "top")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.MkdirAll(filepath.Dir(tt.path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := spool.PublishBytes(staging, filepath.Dir(tt.path), filepath.Base(tt.path), []byte("x")); err != nil {
				t.Fatal(err)
			}
			eventually(t, tt.path, got.has(tt.path))
		})
	}
	// A file in a directory that was created and filled before its watch
	// could be added is found by the scan of the new directory.
	tmp := filepath.Join(t.TempDir(), "d")
	mustWrite(t, filepath.Join(tmp, "sub", "early"), nil)
	moved := filepath.Join(root, "v", "moved")
	if err := os.Rename(tmp, moved); err != nil {
		t.Skipf("rename across filesystems: %v", err)
	}
	eventually(t, "a file in a directory moved in", got.has(filepath.Join(moved, "sub", "early")))

	for _, p := range []string{filepath.Join(root, "symlink"), filepath.Join(root, "symlinkdir", "inside"), filepath.Join(root, ".hidden")} {
		if got.count(p) != 0 {
			t.Errorf("Watch reported %s", p)
		}
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for p := range got.n {
		if filepath.Dir(p) == staging {
			t.Errorf("Watch reported staging file %s", p)
		}
	}
}

func TestWatchRescan(t *testing.T) {
	// Rescans report files again: a consumer that failed the first time
	// gets another chance without any new event.
	root := t.TempDir()
	p := filepath.Join(root, "f")
	mustWrite(t, p, nil)
	got := startWatch(t, root, 10*time.Millisecond)
	eventually(t, "a second report from a rescan", func() bool { return got.count(p) >= 2 })
}
