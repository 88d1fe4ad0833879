package file_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
	"github.com/cryophile/cryophile/storage/storagetest"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newStore(t *testing.T, root string, opts file.Options) *file.Store {
	t.Helper()
	s, err := file.New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformanceFakeClock runs the suite with a restore delay of an hour
// on a fake clock that FinishRestores moves past it.
func TestConformanceFakeClock(t *testing.T) {
	const delay = time.Hour
	var mu sync.Mutex
	clocks := map[storage.Store]*clock{}
	storagetest.Run(t, func(t *testing.T) storage.Store {
		c := newClock()
		s := newStore(t, t.TempDir(), file.Options{RestoreDelay: delay, Now: c.Now})
		mu.Lock()
		clocks[s] = c
		mu.Unlock()
		return s
	}, storagetest.Options{
		IfNoneMatch:    true,
		RestoreTimeout: 10 * time.Second,
		FinishRestores: func(t *testing.T, s storage.Store) {
			mu.Lock()
			c := clocks[s]
			mu.Unlock()
			c.Advance(delay)
		},
	})
}

// TestConformanceRealClock runs the suite with a short real restore delay,
// so the suite's polling path is exercised too.
func TestConformanceRealClock(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return newStore(t, t.TempDir(), file.Options{RestoreDelay: time.Second})
	}, storagetest.Options{IfNoneMatch: true, RestoreTimeout: 10 * time.Second, LargeSize: 6 << 20})
}

func put(t *testing.T, s *file.Store, key string, b []byte, class string) {
	t.Helper()
	h := sha256.Sum256(b)
	if err := s.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: class, SHA256: h[:]}); err != nil {
		t.Fatal(err)
	}
}

func listKeys(t *testing.T, s *file.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(context.Background(), prefix, func(info storage.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestBadKeys(t *testing.T) {
	s := newStore(t, t.TempDir(), file.Options{})
	ctx := context.Background()
	for _, key := range []string{
		"", "/abs", "a//b", "a/", "./a", "a/./b", "..", "../escape", "a/../b", "a/..",
		"nul\x00", ".cryophile/meta/x", ".cryophile", strings.Repeat("k", 1025),
	} {
		errs := map[string]error{
			"Put":     s.Put(ctx, key, strings.NewReader("x"), 1, storage.PutOptions{}),
			"Delete":  s.Delete(ctx, key),
			"Restore": s.Restore(ctx, key, 1, storage.TierBulk),
		}
		_, errs["Head"] = s.Head(ctx, key)
		_, errs["Get"] = s.Get(ctx, key, 0, -1)
		for op, err := range errs {
			if err == nil || !errors.Is(err, storage.ErrPermanent) {
				t.Errorf("%s(%q) error = %v, want ErrPermanent", op, key, err)
				continue
			}
			if key != "" && len(key) < 100 && !strings.Contains(err.Error(), strings.ReplaceAll(key, "\x00", `\x00`)) {
				t.Errorf("%s(%q) error %q does not name the key", op, key, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.Root()), "escape")); err == nil {
		t.Errorf("a key escaped the root")
	}
	// Prefixes: the hidden directory is never listed; escaping is refused.
	put(t, s, "k", []byte("x"), storage.ClassStandard)
	for _, prefix := range []string{".cryophile/", ".cryophile/meta/", ".c"} {
		if got := listKeys(t, s, prefix); len(got) != 0 {
			t.Errorf("List(%q) = %q, want nothing", prefix, got)
		}
	}
	for _, prefix := range []string{"../", "/abs/", "a//"} {
		if err := s.List(ctx, prefix, func(storage.ObjectInfo) error { return nil }); !errors.Is(err, storage.ErrPermanent) {
			t.Errorf("List(%q) error = %v, want ErrPermanent", prefix, err)
		}
	}
}

func TestBadPutOptions(t *testing.T) {
	s := newStore(t, t.TempDir(), file.Options{})
	ctx := context.Background()
	for _, opts := range []storage.PutOptions{
		{Class: "GLACIER_DEEP"},
		{Class: "standard"},
		{SHA256: []byte{1, 2, 3}},
	} {
		if err := s.Put(ctx, "k", strings.NewReader("x"), 1, opts); err == nil {
			t.Errorf("Put with %+v: no error", opts)
		}
	}
	if err := s.Put(ctx, "k", strings.NewReader("x"), -1, storage.PutOptions{}); err == nil {
		t.Errorf("Put with size -1: no error")
	}
	put(t, s, "g", []byte("x"), storage.ClassGlacier)
	for _, days := range []int{0, -1} {
		if err := s.Restore(ctx, "g", days, storage.TierBulk); !errors.Is(err, storage.ErrPermanent) {
			t.Errorf("Restore(g, %d days) error = %v, want ErrPermanent", days, err)
		}
	}
	if err := s.Restore(ctx, "g", 1, "Fast"); !errors.Is(err, storage.ErrPermanent) {
		t.Errorf("Restore(g, tier Fast) error = %v, want ErrPermanent", err)
	}
}

func TestNewRefusesMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not-mounted")
	if _, err := file.New(root, file.Options{}); err == nil {
		t.Fatalf("New(%s) of a missing directory: no error", root)
	}
	if _, err := os.Stat(root); err == nil {
		t.Errorf("New created %s", root)
	}
}

// TestLayout checks that objects are plain files at their keys' paths, so
// standard tools can read a vault.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, file.Options{})
	put(t, s, "host/pool/01ABC/chunk.000001", []byte("one"), storage.ClassGlacier)
	b, err := os.ReadFile(filepath.Join(root, "host/pool/01ABC/chunk.000001"))
	if err != nil || string(b) != "one" {
		t.Fatalf("object file = %q, %v; want %q", b, err, "one")
	}
	if _, err := os.Stat(filepath.Join(root, ".cryophile/meta/host/pool/01ABC/chunk.000001")); err != nil {
		t.Errorf("sidecar: %v", err)
	}
	// Delete prunes emptied directories in both trees.
	if err := s.Delete(context.Background(), "host/pool/01ABC/chunk.000001"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"host", ".cryophile/meta/host"} {
		if _, err := os.Stat(filepath.Join(root, dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after deleting its only object: %v, want gone", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".cryophile/meta")); err != nil {
		t.Errorf(".cryophile/meta pruned: %v", err)
	}
}

// TestCrashLeftovers plays the states a crash can leave and checks that no
// partial object is ever visible.
func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, file.Options{})
	ctx := context.Background()
	tmp := filepath.Join(root, ".cryophile/tmp")

	// A crash while copying: a partial temporary file.
	partial := filepath.Join(tmp, "put-123")
	if err := os.WriteFile(partial, []byte("partial"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A crash after the sidecar was written but before the object's
	// rename: an orphan sidecar.
	orphan := filepath.Join(root, ".cryophile/meta/p/orphan")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte(`{"class":"GLACIER","size":7,"sha256":""}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
	if _, err := s.Head(ctx, "p/orphan"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Head(p/orphan) error = %v, want ErrNotExist", err)
	}
	// A later Put of the same key is not confused by the orphan.
	put(t, s, "p/orphan", []byte("fresh"), storage.ClassStandard)
	if info, err := s.Head(ctx, "p/orphan"); err != nil || info.Class != storage.ClassStandard || info.Size != 5 {
		t.Errorf("Head(p/orphan) = %+v, %v; want STANDARD, 5 bytes", info, err)
	}

	// Young temporary files survive a reopen (their Put may be running);
	// old unlocked ones are removed.
	newStore(t, root, file.Options{})
	if _, err := os.Stat(partial); err != nil {
		t.Errorf("young temporary file removed by New: %v", err)
	}
	old := time.Now().Add(-2 * staleAge)
	if err := os.Chtimes(partial, old, old); err != nil {
		t.Fatal(err)
	}
	newStore(t, root, file.Options{})
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file after New: %v, want removed", err)
	}
}

// TestCrashMidOverwrite plays a crash between writing a new sidecar and
// renaming the new bytes over an old object of another size: the stale
// sidecar is ignored rather than trusted.
func TestCrashMidOverwrite(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, file.Options{})
	put(t, s, "k", []byte("old bytes"), storage.ClassStandard)
	side := filepath.Join(root, ".cryophile/meta/k")
	if err := os.WriteFile(side, []byte(`{"class":"GLACIER","size":3,"sha256":"00"}`), 0o640); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if info.Class != storage.ClassStandard || info.SHA256 != nil || info.Size != 9 {
		t.Errorf("Head(k) with a stale sidecar = %+v, want STANDARD, no SHA-256, 9 bytes", info)
	}
	rc, err := s.Get(context.Background(), "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "old bytes" {
		t.Errorf("Get(k) = %q", b)
	}
}

// TestFailedPutLeavesNoTemp checks that a failed Put cleans up after itself.
func TestFailedPutLeavesNoTemp(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, file.Options{})
	ctx := context.Background()
	_ = s.Put(ctx, "a", strings.NewReader("short"), 10, storage.PutOptions{})
	_ = s.Put(ctx, "b", strings.NewReader("x"), 1, storage.PutOptions{SHA256: make([]byte, 32)})
	put(t, s, "c", []byte("x"), storage.ClassStandard)
	_ = s.Put(ctx, "c", strings.NewReader("y"), 1, storage.PutOptions{IfNoneMatch: true})
	entries, err := os.ReadDir(filepath.Join(root, ".cryophile/tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// TestRestoreSurvivesReopen checks that restore state is on disk: thaw
// and a later thaw run are different processes.
func TestRestoreSurvivesReopen(t *testing.T) {
	root := t.TempDir()
	c := newClock()
	opts := file.Options{RestoreDelay: time.Hour, Now: c.Now}
	ctx := context.Background()
	put(t, newStore(t, root, opts), "g", []byte("glacial"), storage.ClassGlacier)
	if err := newStore(t, root, opts).Restore(ctx, "g", 1, storage.TierBulk); err != nil {
		t.Fatal(err)
	}
	if err := newStore(t, root, opts).Restore(ctx, "g", 1, storage.TierBulk); !errors.Is(err, storage.ErrRestoreInProgress) {
		t.Errorf("Restore from a new Store during restore: %v, want ErrRestoreInProgress", err)
	}
	c.Advance(time.Hour)
	info, err := newStore(t, root, opts).Head(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Readable() {
		t.Errorf("Head from a new Store after the delay: %+v, want readable", info)
	}
}

// TestRestoreExpiry checks the restored copy's life with scaled days.
func TestRestoreExpiry(t *testing.T) {
	c := newClock()
	day := time.Minute
	s := newStore(t, t.TempDir(), file.Options{RestoreDelay: 10 * time.Second, Now: c.Now, DayLength: day})
	ctx := context.Background()
	put(t, s, "g", []byte("glacial"), storage.ClassGlacier)
	start := c.Now()
	if err := s.Restore(ctx, "g", 2, storage.TierStandard); err != nil {
		t.Fatal(err)
	}
	readable := func() bool {
		t.Helper()
		info, err := s.Head(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		_, gerr := s.Get(ctx, "g", 0, -1)
		if got, want := gerr == nil, info.Readable(); got != want {
			t.Fatalf("Get error %v but Head says readable %v", gerr, want)
		}
		if gerr != nil && !errors.Is(gerr, storage.ErrArchived) {
			t.Fatalf("Get error = %v, want ErrArchived", gerr)
		}
		return info.Readable()
	}
	c.Advance(9 * time.Second)
	if readable() {
		t.Errorf("readable before the restore delay")
	}
	c.Advance(time.Second)
	if !readable() {
		t.Fatalf("not readable after the restore delay")
	}
	info, _ := s.Head(ctx, "g")
	if want := start.Add(10*time.Second + 2*day); !info.Restore.Expiry.Equal(want) {
		t.Errorf("Expiry = %v, want %v (delay + 2 days)", info.Restore.Expiry, want)
	}
	c.Advance(2*day - time.Second)
	if !readable() {
		t.Errorf("not readable just before expiry")
	}
	// Extending while restored: one more day from now.
	if err := s.Restore(ctx, "g", 1, storage.TierBulk); err != nil {
		t.Fatal(err)
	}
	c.Advance(day - time.Second)
	if !readable() {
		t.Errorf("not readable within the extension")
	}
	c.Advance(time.Second)
	if readable() {
		t.Errorf("readable after expiry")
	}
	if info, _ := s.Head(ctx, "g"); info.Restore != (storage.RestoreStatus{}) {
		t.Errorf("Restore after expiry = %+v, want zero", info.Restore)
	}
	// After expiry a new request starts a new restore.
	if err := s.Restore(ctx, "g", 1, storage.TierBulk); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Head(ctx, "g"); !info.Restore.Ongoing {
		t.Errorf("Restore after expiry: %+v, want ongoing", info.Restore)
	}
}

// TestZeroDelay checks the default: archived objects become readable as
// soon as a restore is requested, and stay refused before.
func TestZeroDelay(t *testing.T) {
	s := newStore(t, t.TempDir(), file.Options{})
	ctx := context.Background()
	put(t, s, "g", []byte("glacial"), storage.ClassDeepArchive)
	if _, err := s.Get(ctx, "g", 0, -1); !errors.Is(err, storage.ErrArchived) {
		t.Fatalf("Get before restore: %v, want ErrArchived", err)
	}
	if err := s.Restore(ctx, "g", 1, storage.TierBulk); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "g", 0, -1)
	if err != nil {
		t.Fatalf("Get after a zero-delay restore: %v", err)
	}
	rc.Close()
}

// TestKeyPrefixClash checks that a key that is another key's directory is
// refused with an error naming it, not stored half-way.
func TestKeyPrefixClash(t *testing.T) {
	s := newStore(t, t.TempDir(), file.Options{})
	ctx := context.Background()
	put(t, s, "a/b", []byte("x"), storage.ClassStandard)
	if err := s.Put(ctx, "a", strings.NewReader("y"), 1, storage.PutOptions{}); err == nil || !strings.Contains(err.Error(), "a") {
		t.Errorf("Put(a) over directory a/: error = %v, want one naming a", err)
	}
	if err := s.Put(ctx, "a/b/c", strings.NewReader("y"), 1, storage.PutOptions{}); err == nil {
		t.Errorf("Put(a/b/c) under object a/b: no error")
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, []string{"a/b"}) {
		t.Errorf("List = %q, want [a/b]", got)
	}
}

// staleAge is how old the package waits for a temporary file to be before
// removing it (one hour, see the package doc).
const staleAge = time.Hour
