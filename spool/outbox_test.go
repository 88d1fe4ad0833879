package spool_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

func TestOutboxPublishes(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "host/pool")
	o := newOutbox(t, s, id, spool.Budget{})
	if !s.LiveWriter(id) {
		t.Errorf("LiveWriter = false while the outbox is open")
	}
	frags := [][]byte{[]byte("one"), []byte("two"), []byte("3")}
	freeze := s.Dir(spool.QueueFreeze, id)
	for i, b := range frags {
		f, err := o.Create(archive.FragmentName(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
		if exists(filepath.Join(freeze, archive.FragmentName(i+1))) {
			t.Fatalf("%s visible before Commit", archive.FragmentName(i+1))
		}
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.PublishManifest(manifestFor(id, frags[0])); err == nil {
		t.Fatalf("PublishManifest accepted a manifest that lists one fragment of three")
	}
	if err := o.PublishManifest(manifestFor(id, append(slices.Clone(frags), []byte("never"))...)); err == nil {
		t.Fatalf("PublishManifest accepted a fragment never committed")
	}
	if err := o.PublishManifest(manifestFor(id, frags...)); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, freeze), []string{"chunk.000001", "chunk.000002", "chunk.000003", archive.ManifestName}; !slices.Equal(got, want) {
		t.Errorf("freeze holds %v, want %v", got, want)
	}
	m, err := s.WaitManifest(context.Background(), spool.QueueFreeze, id)
	if err != nil || m.BackupID != id.String() {
		t.Fatalf("WaitManifest = %v, %v", m, err)
	}
	if got := names(t, filepath.Join(s.Root(), spool.QueueBackup)); len(got) != 0 {
		t.Errorf("backup/ holds %v after Close", got)
	}
	if s.LiveWriter(id) {
		t.Errorf("LiveWriter = true after Close")
	}
	if err := o.Abort(); err != nil {
		t.Errorf("Abort after Close = %v", err)
	}
	if !exists(filepath.Join(freeze, archive.ManifestName)) {
		t.Errorf("Abort after Close took back a complete archive")
	}
}

func TestOutboxExclusive(t *testing.T) {
	tests := []struct {
		name  string
		queue string // where the ID already exists
	}{
		{"backup", spool.QueueBackup},
		{"freeze", spool.QueueFreeze},
		{"restore", spool.QueueRestore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t)
			id := newID(t, "p")
			if err := os.MkdirAll(s.Dir(tt.queue, id), 0o750); err != nil {
				t.Fatal(err)
			}
			_, err := s.NewOutbox(context.Background(), id, spool.Budget{})
			if !errors.Is(err, spool.ErrExist) || !strings.Contains(err.Error(), id.String()) {
				t.Fatalf("NewOutbox = %v, want ErrExist naming %s", err, id)
			}
			if tt.queue != spool.QueueBackup && exists(s.Dir(spool.QueueBackup, id)) {
				t.Errorf("refused outbox left its staging directory")
			}
		})
	}
	t.Run("twice", func(t *testing.T) {
		s := openSpool(t)
		id := newID(t, "p")
		newOutbox(t, s, id, spool.Budget{})
		if _, err := s.NewOutbox(context.Background(), id, spool.Budget{}); !errors.Is(err, spool.ErrExist) {
			t.Fatalf("second NewOutbox = %v, want ErrExist", err)
		}
	})
}

func TestOutboxAbort(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "host/pool")
	o := newOutbox(t, s, id, spool.Budget{})
	writeFragment(t, o, 1, []byte("one"))
	writeFragment(t, o, 2, []byte("two"))
	open, err := o.Create(archive.FragmentName(3))
	if err != nil {
		t.Fatal(err)
	}
	open.Write([]byte("thr"))
	if err := o.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := open.Commit(); err == nil {
		t.Errorf("Commit after Abort succeeded")
	}
	for _, q := range []string{spool.QueueBackup, spool.QueueFreeze} {
		if got := names(t, filepath.Join(s.Root(), q)); len(got) != 0 {
			t.Errorf("%s/ holds %v after Abort", q, got)
		}
	}
	if err := o.Abort(); err != nil {
		t.Errorf("second Abort = %v", err)
	}
	if _, err := o.Create(archive.FragmentName(3)); err == nil {
		t.Errorf("Create after Abort succeeded")
	}
	if err := o.Close(); err == nil {
		t.Errorf("Close after Abort succeeded")
	}
	if s.LiveWriter(id) {
		t.Errorf("LiveWriter = true after Abort")
	}
}

func TestOutboxAbortKeepsOthers(t *testing.T) {
	// Abort takes back only the outbox's own archive; a sibling archive of
	// the same prefix keeps its directories.
	s := openSpool(t)
	a := newID(t, "host/pool")
	b := newID(t, "host/pool")
	b.Vault = a.Vault
	oa := newOutbox(t, s, a, spool.Budget{})
	ob := newOutbox(t, s, b, spool.Budget{})
	writeFragment(t, oa, 1, []byte("a"))
	writeFragment(t, ob, 1, []byte("b"))
	if err := oa.Abort(); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(s.Dir(spool.QueueFreeze, b), "chunk.000001")) || !s.LiveWriter(b) {
		t.Fatalf("Abort of %s disturbed %s", a, b)
	}
	ob.Abort()
}

func TestOutboxCloseWithoutManifest(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "")
	o := newOutbox(t, s, id, spool.Budget{})
	writeFragment(t, o, 1, []byte("a"))
	if err := o.Close(); err == nil {
		t.Fatalf("Close without manifest succeeded")
	}
	if exists(s.Dir(spool.QueueFreeze, id)) {
		t.Errorf("Close without manifest left %s", s.Dir(spool.QueueFreeze, id))
	}
}

// budgetCase drives one back-pressure scenario.
func TestBackPressure(t *testing.T) {
	const frag = 1000
	t.Run("max bytes, released by a consumer", func(t *testing.T) {
		s := openSpool(t)
		spool.SetFreeSpace(s, func(string) (int64, error) { return 1 << 50, nil })
		id := newID(t, "p")
		var mu sync.Mutex
		var msgs []string
		notify := func(m string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() }
		nmsgs := func() int { mu.Lock(); defer mu.Unlock(); return len(msgs) }
		o := newOutbox(t, s, id, spool.Budget{MaxBytes: 2 * frag, FragmentSize: frag, Notify: notify})
		writeFragment(t, o, 1, make([]byte, frag))
		writeFragment(t, o, 2, make([]byte, frag))
		if nmsgs() != 0 {
			t.Fatalf("waited within budget: %v", msgs)
		}
		created := startCreate(o, 3)
		eventually(t, "the wait message", func() bool { return nmsgs() == 1 })
		select {
		case err := <-created:
			t.Fatalf("Create returned %v over budget", err)
		default:
		}
		// A consumer (freeze) deletes fragment 1.
		var consumer sync.WaitGroup
		consumer.Go(func() {
			os.Remove(filepath.Join(s.Dir(spool.QueueFreeze, id), "chunk.000001"))
		})
		consumer.Wait()
		select {
		case err := <-created:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Create still waiting after the consumer made room")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(msgs) != 2 || !strings.Contains(msgs[0], "waiting") || !strings.Contains(msgs[1], "resuming") {
			t.Errorf("messages %q, want a wait then a resume", msgs)
		}
	})
	t.Run("free-space reserve", func(t *testing.T) {
		s := openSpool(t)
		var free atomic.Int64
		free.Store(frag)
		spool.SetFreeSpace(s, func(string) (int64, error) { return free.Load(), nil })
		id := newID(t, "p")
		var waits atomic.Int32
		o := newOutbox(t, s, id, spool.Budget{Reserve: 5 * frag, FragmentSize: frag, Notify: func(string) { waits.Add(1) }})
		created := startCreate(o, 1)
		eventually(t, "the wait message", func() bool { return waits.Load() == 1 })
		free.Store(6*frag - 1)
		select {
		case err := <-created:
			t.Fatalf("Create returned %v below the reserve", err)
		case <-time.After(100 * time.Millisecond): // several polls
		}
		free.Store(6 * frag)
		if err := <-created; err != nil {
			t.Fatal(err)
		}
		if got := waits.Load(); got != 2 {
			t.Errorf("Notify called %d times, want 2", got)
		}
	})
	t.Run("context and abort end the wait", func(t *testing.T) {
		for _, how := range []string{"cancel", "abort"} {
			s := openSpool(t)
			spool.SetFreeSpace(s, func(string) (int64, error) { return 0, nil })
			ctx, cancel := context.WithCancel(context.Background())
			var waiting atomic.Bool
			o, err := s.NewOutbox(ctx, newID(t, "p"), spool.Budget{Reserve: 1, FragmentSize: frag, Notify: func(string) { waiting.Store(true) }})
			if err != nil {
				t.Fatal(err)
			}
			created := make(chan error, 1)
			go func() { _, err := o.Create(archive.FragmentName(1)); created <- err }()
			eventually(t, "the wait", waiting.Load)
			if how == "cancel" {
				cancel()
			} else {
				o.Abort()
			}
			if err := <-created; err == nil {
				t.Fatalf("%s: Create succeeded", how)
			}
			cancel()
			o.Abort()
		}
	})
	t.Run("empty spool is never waited for", func(t *testing.T) {
		s := openSpool(t)
		o := newOutbox(t, s, newID(t, "p"), spool.Budget{MaxBytes: frag / 2, FragmentSize: frag})
		writeFragment(t, o, 1, make([]byte, frag))
	})
}

func TestOutboxConcurrentPrune(t *testing.T) {
	// Outboxes sharing a vault and prefix come and go concurrently: one's
	// Abort prunes the empty VAULT/PREFIX directories another is about to
	// create its ULID directory in. Every outbox must still succeed.
	s := openSpool(t)
	base := newID(t, "host/pool/ds")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 8 {
		wg.Go(func() {
			for range 15 {
				id := newID(t, base.Prefix)
				id.Vault = base.Vault
				o, err := s.NewOutbox(context.Background(), id, spool.Budget{})
				if err != nil {
					errs <- err
					return
				}
				f, err := o.Create(archive.FragmentName(1))
				if err == nil {
					f.Write([]byte("x"))
					err = f.Commit()
				}
				if err != nil {
					errs <- err
				}
				if err := o.Abort(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, q := range []string{spool.QueueBackup, spool.QueueFreeze} {
		if got := names(t, filepath.Join(s.Root(), q)); len(got) != 0 {
			t.Errorf("%s/ holds %v", q, got)
		}
	}
}

// newOutbox opens an outbox that the test aborts when it ends (a no-op
// after Close or Abort).
func newOutbox(t *testing.T, s *spool.Spool, id archive.ID, b spool.Budget) *spool.Outbox {
	t.Helper()
	o, err := s.NewOutbox(context.Background(), id, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Abort() })
	return o
}

// startCreate starts fragment n in the background and reports Create's
// error; a fragment it gets is aborted at once.
func startCreate(o *spool.Outbox, n int) <-chan error {
	created := make(chan error, 1)
	go func() {
		f, err := o.Create(archive.FragmentName(n))
		if err == nil {
			f.Abort()
		}
		created <- err
	}()
	return created
}
