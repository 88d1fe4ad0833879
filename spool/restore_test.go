package spool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

// thawStaging is where the test's stand-in for thaw stages its files.
func thawStaging(t *testing.T, s *spool.Spool) string {
	t.Helper()
	d := filepath.Join(s.Root(), spool.QueueRestore, ".thaw-staging")
	if err := os.MkdirAll(d, 0o750); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRestoreSource(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "delete", true: "keep"}[keep], func(t *testing.T) {
			s := openSpool(t)
			id := newID(t, "host/pool")
			frags := [][]byte{[]byte("first"), []byte("second"), []byte("third")}
			m := manifestFor(id, frags...)
			dir := s.Dir(spool.QueueRestore, id)
			staging := thawStaging(t, s)

			src := s.RestoreSource(id, keep)
			var mu sync.Mutex
			var waited []string
			src.OnWait = func(name string) { mu.Lock(); waited = append(waited, name); mu.Unlock() }
			hasWaited := func(name string) func() bool {
				return func() bool {
					mu.Lock()
					defer mu.Unlock()
					for _, w := range waited {
						if w == name {
							return true
						}
					}
					return false
				}
			}
			// Fragment 2 arrives first, before anyone asks.
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := spool.PublishBytes(staging, dir, "chunk.000002", frags[1]); err != nil {
				t.Fatal(err)
			}
			type result struct {
				b   []byte
				err error
			}
			ctx := context.Background()
			for i, want := range frags {
				f := m.Fragments[i]
				got := make(chan result, 1)
				go func() {
					r, err := src.Open(ctx, f)
					if err != nil {
						got <- result{nil, err}
						return
					}
					defer r.Close()
					b, err := io.ReadAll(r)
					got <- result{b, err}
				}()
				if i != 1 {
					// Not there yet: Open waits and says so, then the
					// fragment is published.
					eventually(t, "OnWait("+f.Name+")", hasWaited(f.Name))
					if err := spool.PublishBytes(staging, dir, f.Name, want); err != nil {
						t.Fatal(err)
					}
				}
				r := <-got
				if r.err != nil || string(r.b) != string(want) {
					t.Fatalf("Open(%s) = %q, %v; want %q", f.Name, r.b, r.err, want)
				}
				if err := src.Done(f); err != nil {
					t.Fatal(err)
				}
				if got := exists(filepath.Join(dir, f.Name)); got != keep {
					t.Errorf("after Done(%s) exists = %v, want %v", f.Name, got, keep)
				}
			}
			if hasWaited("chunk.000002")() {
				t.Errorf("waited for chunk.000002, which was already there")
			}
		})
	}
}

func TestRestoreSourceErrors(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "")
	dir := s.Dir(spool.QueueRestore, id)
	src := s.RestoreSource(id, false)
	outside := filepath.Join(t.TempDir(), "secret")
	mustWrite(t, outside, []byte("secret"))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "chunk.000001")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "chunk.000002"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "chunk.000003"), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"chunk.000001", "chunk.000002", "chunk.000003"} {
		_, err := src.Open(context.Background(), archive.Fragment{Name: name})
		if !errors.Is(err, spool.ErrNotRegular) || !strings.Contains(err.Error(), name) {
			t.Errorf("Open(%s) = %v, want ErrNotRegular naming it", name, err)
		}
	}

	// Cancelled while waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := src.Open(ctx, archive.Fragment{Name: "chunk.000004"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open with expired ctx = %v, want DeadlineExceeded", err)
	}

	// Check ends the wait with thaw's verdict.
	src.Check = func() error { return fmt.Errorf("thaw: %w: gone from the vault", fs.ErrNotExist) }
	if _, err := src.Open(context.Background(), archive.Fragment{Name: "chunk.000005"}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "chunk.000005") {
		t.Errorf("Open with failing Check = %v, want fs.ErrNotExist naming the fragment", err)
	}
}

func TestWaitManifest(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "host")
	m := manifestFor(id, []byte("x"))
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		gm, err := s.WaitManifest(context.Background(), spool.QueueRestore, id)
		if err == nil && gm.BackupID != id.String() {
			err = errors.New("wrong manifest " + gm.BackupID)
		}
		got <- err
	}()
	dir := s.Dir(spool.QueueRestore, id)
	eventually(t, "the restore directory", func() bool { return exists(dir) })
	if err := spool.PublishBytes(thawStaging(t, s), dir, archive.ManifestName, b); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	// Waiting in freeze/ does not create the directory: that would take
	// the backup ID.
	id3 := newID(t, "host")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitManifest(ctx, spool.QueueFreeze, id3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitManifest(freeze, missing) = %v, want DeadlineExceeded", err)
	}
	if exists(s.Dir(spool.QueueFreeze, id3)) {
		t.Errorf("WaitManifest created %s", s.Dir(spool.QueueFreeze, id3))
	}

	// A corrupt manifest is an error wrapping archive.ErrCorrupt.
	id2 := newID(t, "host")
	mustWrite(t, filepath.Join(s.Dir(spool.QueueRestore, id2), archive.ManifestName), []byte("{"))
	if _, err := s.WaitManifest(context.Background(), spool.QueueRestore, id2); !errors.Is(err, archive.ErrCorrupt) {
		t.Errorf("WaitManifest(corrupt) = %v, want ErrCorrupt", err)
	}
}
