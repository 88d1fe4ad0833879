package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cryophile/cryophile/storage"
)

// Options describe the backend under test.
type Options struct {
	// RestoreTimeout bounds how long the suite polls Head for a requested
	// restore to complete; default one minute. A backend must not complete
	// a restore instantly: the suite checks that a restore is first seen
	// in progress.
	RestoreTimeout time.Duration
	// FinishRestores, if not nil, makes every restore requested from s
	// complete now, e.g. by advancing the fake clock s was made with. The
	// suite calls it once it has seen a restore in progress, then polls
	// Head as without it.
	FinishRestores func(t *testing.T, s storage.Store)
	// Tier is the tier the suite restores GLACIER objects with; default
	// storage.TierExpedited, the fastest. DEEP_ARCHIVE objects are
	// restored with storage.TierStandard (AWS has no Expedited for them).
	Tier string
	// IfNoneMatch says the backend supports conditional puts
	// (PutOptions.IfNoneMatch); without it that test is skipped.
	IfNoneMatch bool
	// LargeSize is the size of the large object, big enough for a backend
	// to switch to multipart uploads; default 20 MiB.
	LargeSize int64
	// Concurrency is how many puts of different keys run at once in the
	// concurrency test; default 8.
	Concurrency int
}

// Run runs the conformance suite against the stores newStore makes. Every
// subtest calls newStore for a fresh, empty store, and subtests run in
// parallel.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store, opts Options) {
	if opts.RestoreTimeout <= 0 {
		opts.RestoreTimeout = time.Minute
	}
	if opts.Tier == "" {
		opts.Tier = storage.TierExpedited
	}
	if opts.LargeSize <= 0 {
		opts.LargeSize = 20 << 20
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	s := &suite{opts: opts, newStore: newStore}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"DefaultClass", s.testDefaultClass},
		{"Empty", s.testEmpty},
		{"Overwrite", s.testOverwrite},
		{"ChecksumMismatch", s.testChecksumMismatch},
		{"ShortReader", s.testShortReader},
		{"CanceledPut", s.testCanceledPut},
		{"UnseekableReader", s.testUnseekableReader},
		{"Ranges", s.testRanges},
		{"NotExist", s.testNotExist},
		{"Archived", s.testArchived},
		{"Restore", s.testRestore},
		{"RestoreDeepArchive", s.testRestoreDeepArchive},
		{"RestoreNotNeeded", s.testRestoreNotNeeded},
		{"List", s.testList},
		{"ListStop", s.testListStop},
		{"Delete", s.testDelete},
		{"IfNoneMatch", s.testIfNoneMatch},
		{"Large", s.testLarge},
		{"ConcurrentPuts", s.testConcurrentPuts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

type suite struct {
	opts     Options
	newStore func(t *testing.T) storage.Store
}

// content returns n deterministic pseudo-random bytes, different per seed.
func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seedBytes(seed)).Read(b)
	return b
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

func sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// put stores b under key with class and b's SHA-256, failing the test on error.
func put(t *testing.T, s storage.Store, key string, b []byte, class string) {
	t.Helper()
	err := s.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: class, SHA256: sum(b)})
	if err != nil {
		t.Fatalf("Put(%s, %s): %v", key, class, err)
	}
}

// get reads key from offset for length bytes.
func get(s storage.Store, key string, offset, length int64) ([]byte, error) {
	rc, err := s.Get(context.Background(), key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, rc.Close()
}

// mustGet reads all of key and compares it with want.
func mustGet(t *testing.T, s storage.Store, key string, want []byte) {
	t.Helper()
	got, err := get(s, key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s) = %d bytes (SHA-256 %x), want %d bytes (SHA-256 %x)", key, len(got), sum(got), len(want), sum(want))
	}
}

func head(t *testing.T, s storage.Store, key string) storage.ObjectInfo {
	t.Helper()
	info, err := s.Head(context.Background(), key)
	if err != nil {
		t.Fatalf("Head(%s): %v", key, err)
	}
	return info
}

// checkInfo compares what Head said about key with what was put.
func checkInfo(t *testing.T, info storage.ObjectInfo, key string, b []byte, class string) {
	t.Helper()
	checkListed(t, info, key, b, class)
	if !bytes.Equal(info.SHA256, sum(b)) {
		t.Errorf("%s: SHA256 = %x, want %x", key, info.SHA256, sum(b))
	}
}

// checkListed compares what List said about key with what was put. List
// need not know digests (S3's ListObjectsV2 does not return them), but one
// it gives must be right.
func checkListed(t *testing.T, info storage.ObjectInfo, key string, b []byte, class string) {
	t.Helper()
	if info.Key != key {
		t.Errorf("Key = %q, want %q", info.Key, key)
	}
	if got, want := info.Size, int64(len(b)); got != want {
		t.Errorf("%s: Size = %d, want %d", key, got, want)
	}
	if info.Class != class {
		t.Errorf("%s: Class = %q, want %q", key, info.Class, class)
	}
	if info.SHA256 != nil && !bytes.Equal(info.SHA256, sum(b)) {
		t.Errorf("%s: SHA256 = %x, want %x", key, info.SHA256, sum(b))
	}
	if d := time.Since(info.Modified); d < -5*time.Minute || d > 5*time.Minute {
		t.Errorf("%s: Modified = %v, want about now", key, info.Modified)
	}
}

// checkNotExist checks that key is absent for Head and Get.
func checkNotExist(t *testing.T, s storage.Store, key string) {
	t.Helper()
	if _, err := s.Head(context.Background(), key); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Head(%s) error = %v, want ErrNotExist", key, err)
	}
	if _, err := get(s, key, 0, -1); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get(%s) error = %v, want ErrNotExist", key, err)
	}
}

func listAll(t *testing.T, s storage.Store, prefix string) []storage.ObjectInfo {
	t.Helper()
	var infos []storage.ObjectInfo
	err := s.List(context.Background(), prefix, func(info storage.ObjectInfo) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return infos
}

func keysOf(infos []storage.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

// restored waits until key is readable after a restore request seen in
// progress, calling FinishRestores first if there is one.
func (s *suite) restored(t *testing.T, st storage.Store, key string) storage.ObjectInfo {
	t.Helper()
	if s.opts.FinishRestores != nil {
		s.opts.FinishRestores(t, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RestoreTimeout)
	defer cancel()
	wait := 10 * time.Millisecond
	for {
		info := head(t, st, key)
		if info.Readable() {
			return info
		}
		if !info.Restore.Ongoing {
			t.Fatalf("Head(%s).Restore = %+v while waiting for a restore: neither ongoing nor done", key, info.Restore)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not restored within %v", key, s.opts.RestoreTimeout)
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

func (s *suite) testRoundTrip(t *testing.T) {
	st := s.newStore(t)
	for i, class := range []string{storage.ClassStandard, storage.ClassStandardIA, storage.ClassGlacierIR, storage.ClassGlacier, storage.ClassDeepArchive} {
		key := "p/q/01ROUNDTRIP/chunk." + class
		b := content(uint64(i), 1000+i)
		put(t, st, key, b, class)
		info := head(t, st, key)
		checkInfo(t, info, key, b, class)
		if got, want := info.Readable(), !storage.NeedsRestore(class); got != want {
			t.Errorf("Head(%s).Readable() = %v, want %v", key, got, want)
		}
		if info.Restore != (storage.RestoreStatus{}) {
			t.Errorf("Head(%s).Restore = %+v, want zero (never restored)", key, info.Restore)
		}
		if storage.NeedsRestore(class) {
			if _, err := get(st, key, 0, -1); !errors.Is(err, storage.ErrArchived) {
				t.Errorf("Get(%s) error = %v, want ErrArchived", key, err)
			}
			continue
		}
		mustGet(t, st, key, b)
	}
}

func (s *suite) testDefaultClass(t *testing.T) {
	st := s.newStore(t)
	b := content(1, 10)
	if err := st.Put(context.Background(), "k", bytes.NewReader(b), 10, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := head(t, st, "k").Class, storage.ClassStandard; got != want {
		t.Errorf("Class = %q, want %q", got, want)
	}
	mustGet(t, st, "k", b)
}

func (s *suite) testEmpty(t *testing.T) {
	st := s.newStore(t)
	put(t, st, "empty", nil, storage.ClassStandard)
	checkInfo(t, head(t, st, "empty"), "empty", nil, storage.ClassStandard)
	mustGet(t, st, "empty", nil)
}

func (s *suite) testOverwrite(t *testing.T) {
	st := s.newStore(t)
	put(t, st, "a/k", content(1, 100), storage.ClassGlacier)
	b := content(2, 200)
	put(t, st, "a/k", b, storage.ClassStandard)
	checkInfo(t, head(t, st, "a/k"), "a/k", b, storage.ClassStandard)
	mustGet(t, st, "a/k", b)
	if got := keysOf(listAll(t, st, "")); !slices.Equal(got, []string{"a/k"}) {
		t.Errorf("List = %q, want one key", got)
	}
}

func (s *suite) testChecksumMismatch(t *testing.T) {
	st := s.newStore(t)
	ctx := context.Background()
	b := content(1, 1000)
	bad := sum(content(2, 1000))
	for _, class := range []string{storage.ClassStandard, storage.ClassGlacier} {
		err := st.Put(ctx, "new-"+class, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: class, SHA256: bad})
		if !errors.Is(err, storage.ErrChecksum) {
			t.Errorf("Put(%s) with a wrong SHA-256: error = %v, want ErrChecksum", class, err)
		}
		checkNotExist(t, st, "new-"+class)
	}
	// A failed overwrite leaves the old object as it was.
	put(t, st, "old", b, storage.ClassStandard)
	err := st.Put(ctx, "old", bytes.NewReader(content(3, 500)), 500, storage.PutOptions{SHA256: bad})
	if !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("overwriting Put with a wrong SHA-256: error = %v, want ErrChecksum", err)
	}
	checkInfo(t, head(t, st, "old"), "old", b, storage.ClassStandard)
	mustGet(t, st, "old", b)
	if got := keysOf(listAll(t, st, "")); !slices.Equal(got, []string{"old"}) {
		t.Errorf("List = %q, want [old]", got)
	}
}

func (s *suite) testShortReader(t *testing.T) {
	st := s.newStore(t)
	err := st.Put(context.Background(), "short", bytes.NewReader(content(1, 5)), 10, storage.PutOptions{})
	if err == nil {
		t.Errorf("Put of 5 bytes announced as 10: no error")
	}
	checkNotExist(t, st, "short")
}

func (s *suite) testCanceledPut(t *testing.T) {
	st := s.newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := st.Put(ctx, "canceled", bytes.NewReader(content(1, 10)), 10, storage.PutOptions{})
	if err == nil {
		t.Errorf("Put with a canceled context: no error")
	}
	checkNotExist(t, st, "canceled")
}

// testUnseekableReader checks Put's contract that r is any io.Reader.
func (s *suite) testUnseekableReader(t *testing.T) {
	st := s.newStore(t)
	b := content(1, 5000)
	r := struct{ io.Reader }{bytes.NewReader(b)}
	if err := st.Put(context.Background(), "plain", r, int64(len(b)), storage.PutOptions{SHA256: sum(b)}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, st, "plain", b)
}

func (s *suite) testRanges(t *testing.T) {
	st := s.newStore(t)
	b := content(1, 1000)
	put(t, st, "r", b, storage.ClassStandard)
	for _, tt := range []struct {
		offset, length int64
		want           []byte
	}{
		{0, -1, b},
		{0, 1000, b},
		{0, 1, b[:1]},
		{10, 20, b[10:30]},
		{10, -1, b[10:]},
		{999, -1, b[999:]},
		{999, 1, b[999:]},
		{500, 0, nil},
		{0, 0, nil},
		{900, 5000, b[900:]}, // a length beyond the end stops there
	} {
		got, err := get(st, "r", tt.offset, tt.length)
		if err != nil {
			t.Errorf("Get(r, %d, %d): %v", tt.offset, tt.length, err)
			continue
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("Get(r, %d, %d) = %d bytes, want %d", tt.offset, tt.length, len(got), len(tt.want))
		}
	}
	for _, offset := range []int64{-1, 1001} {
		if _, err := get(st, "r", offset, -1); err == nil {
			t.Errorf("Get(r, %d, -1) on 1000 bytes: no error", offset)
		}
	}
}

func (s *suite) testNotExist(t *testing.T) {
	st := s.newStore(t)
	checkNotExist(t, st, "missing")
	checkNotExist(t, st, "p/q/01MISSING/chunk.000001")
	if err := st.Restore(context.Background(), "missing", 1, s.opts.Tier); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Restore(missing) error = %v, want ErrNotExist", err)
	}
	// A key that is only a prefix of another is not an object.
	put(t, st, "p/q/chunk", content(1, 10), storage.ClassStandard)
	checkNotExist(t, st, "p/q")
	checkNotExist(t, st, "p/q/chunk/x")
}

func (s *suite) testArchived(t *testing.T) {
	st := s.newStore(t)
	for _, class := range []string{storage.ClassGlacier, storage.ClassDeepArchive} {
		put(t, st, class, content(1, 100), class)
		for _, r := range [][2]int64{{0, -1}, {10, 10}} {
			if _, err := get(st, class, r[0], r[1]); !errors.Is(err, storage.ErrArchived) {
				t.Errorf("Get(%s, %d, %d) error = %v, want ErrArchived", class, r[0], r[1], err)
			}
		}
		info := head(t, st, class)
		if info.Readable() || info.Restore.Ongoing || !info.Restore.Expiry.IsZero() {
			t.Errorf("Head(%s) = %+v, want unreadable, never restored", class, info)
		}
	}
}

// requestRestore asks for a restore of key and checks what happens until
// it completes: in progress (a second request and Get refused), then
// readable with an expiry.
func (s *suite) requestRestore(t *testing.T, st storage.Store, key, tier string) storage.ObjectInfo {
	t.Helper()
	ctx := context.Background()
	if err := st.Restore(ctx, key, 1, tier); err != nil {
		t.Fatalf("Restore(%s, %s): %v", key, tier, err)
	}
	info := head(t, st, key)
	if !info.Restore.Ongoing || info.Readable() {
		t.Fatalf("Head(%s) just after Restore: Restore = %+v, readable %v; want ongoing (restores must take a moment)", key, info.Restore, info.Readable())
	}
	// The restore may complete at any moment: a refusal is only required
	// while Head still says ongoing.
	if _, err := get(st, key, 0, -1); !errors.Is(err, storage.ErrArchived) && !head(t, st, key).Readable() {
		t.Errorf("Get(%s) during restore: error = %v, want ErrArchived", key, err)
	}
	if err := st.Restore(ctx, key, 1, tier); !errors.Is(err, storage.ErrRestoreInProgress) && !head(t, st, key).Readable() {
		t.Errorf("second Restore(%s) during restore: error = %v, want ErrRestoreInProgress", key, err)
	}
	info = s.restored(t, st, key)
	if info.Restore.Ongoing || info.Restore.Expiry.IsZero() {
		t.Errorf("Head(%s) after restore: Restore = %+v, want done with an expiry", key, info.Restore)
	}
	return info
}

func (s *suite) testRestore(t *testing.T) {
	st := s.newStore(t)
	ctx := context.Background()
	b := content(1, 3000)
	key := "p/01RESTORE/chunk.000001"
	put(t, st, key, b, storage.ClassGlacier)
	info := s.requestRestore(t, st, key, s.opts.Tier)
	// The class stays GLACIER after a restore.
	checkInfo(t, info, key, b, storage.ClassGlacier)
	mustGet(t, st, key, b)
	if got, err := get(st, key, 100, 50); err != nil || !bytes.Equal(got, b[100:150]) {
		t.Errorf("Get(%s, 100, 50) after restore = %d bytes, %v; want b[100:150]", key, len(got), err)
	}
	// Asking again once restored extends the copy's life.
	if err := st.Restore(ctx, key, 3, s.opts.Tier); err != nil {
		t.Fatalf("Restore(%s) of a restored object: %v", key, err)
	}
	again := head(t, st, key)
	if !again.Readable() || !again.Restore.Expiry.After(info.Restore.Expiry) {
		t.Errorf("Head(%s) after a longer restore: Restore = %+v, want readable, expiry after %v", key, again.Restore, info.Restore.Expiry)
	}
	// The class stays GLACIER in listings too.
	infos := listAll(t, st, "p/")
	if len(infos) != 1 || infos[0].Class != storage.ClassGlacier {
		t.Errorf("List(p/) = %+v, want %s, GLACIER", infos, key)
	}
}

func (s *suite) testRestoreDeepArchive(t *testing.T) {
	st := s.newStore(t)
	b := content(1, 3000)
	put(t, st, "deep", b, storage.ClassDeepArchive)
	err := st.Restore(context.Background(), "deep", 1, storage.TierExpedited)
	if err == nil || errors.Is(err, storage.ErrRestoreInProgress) {
		t.Errorf("Restore(deep, Expedited) error = %v, want a refusal (no Expedited tier for DEEP_ARCHIVE)", err)
	}
	if info := head(t, st, "deep"); info.Restore.Ongoing || info.Readable() {
		t.Fatalf("Head(deep) after a refused restore: Restore = %+v, want none", info.Restore)
	}
	s.requestRestore(t, st, "deep", storage.TierStandard)
	mustGet(t, st, "deep", b)
}

func (s *suite) testRestoreNotNeeded(t *testing.T) {
	st := s.newStore(t)
	for _, class := range []string{storage.ClassStandard, storage.ClassStandardIA, storage.ClassGlacierIR} {
		b := content(1, 10)
		put(t, st, class, b, class)
		for range 2 { // and again: nothing is ever in progress
			if err := st.Restore(context.Background(), class, 1, s.opts.Tier); err != nil {
				t.Errorf("Restore(%s) of class %s: %v, want nil", class, class, err)
			}
		}
		info := head(t, st, class)
		if !info.Readable() || info.Restore.Ongoing {
			t.Errorf("Head(%s) after Restore = %+v, want readable, nothing ongoing", class, info)
		}
		mustGet(t, st, class, b)
	}
}

func (s *suite) testList(t *testing.T) {
	st := s.newStore(t)
	objects := map[string]string{ // key → class
		"a/b/1":  storage.ClassStandard,
		"a/b/2":  storage.ClassGlacier,
		"a/b.c":  storage.ClassDeepArchive,
		"a/bz/x": storage.ClassGlacierIR,
		"a/c":    storage.ClassStandardIA,
		"ab":     storage.ClassStandard,
		"b":      storage.ClassGlacier,
	}
	data := map[string][]byte{}
	i := 0
	for key, class := range objects { // map order: the store sorts, not us
		data[key] = content(uint64(i), 10+i)
		put(t, st, key, data[key], class)
		i++
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		// '.' < '/' < 'b' < 'z': key order, not directory-walk order.
		{"", []string{"a/b.c", "a/b/1", "a/b/2", "a/bz/x", "a/c", "ab", "b"}},
		{"a", []string{"a/b.c", "a/b/1", "a/b/2", "a/bz/x", "a/c", "ab"}},
		{"a/", []string{"a/b.c", "a/b/1", "a/b/2", "a/bz/x", "a/c"}},
		{"a/b", []string{"a/b.c", "a/b/1", "a/b/2", "a/bz/x"}},
		{"a/b/", []string{"a/b/1", "a/b/2"}},
		{"a/b/2", []string{"a/b/2"}},
		{"a/c/", nil},
		{"zzz", nil},
		{"zzz/", nil},
	} {
		infos := listAll(t, st, tt.prefix)
		if got := keysOf(infos); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			continue
		}
		for _, info := range infos {
			checkListed(t, info, info.Key, data[info.Key], objects[info.Key])
			if got, want := info.Readable(), !storage.NeedsRestore(info.Class); got != want {
				t.Errorf("List(%q): %s Readable() = %v, want %v", tt.prefix, info.Key, got, want)
			}
		}
	}
}

func (s *suite) testListStop(t *testing.T) {
	st := s.newStore(t)
	for _, key := range []string{"x/1", "x/2", "x/3"} {
		put(t, st, key, content(1, 1), storage.ClassStandard)
	}
	stop := errors.New("stop")
	var seen []string
	err := st.List(context.Background(), "x/", func(info storage.ObjectInfo) error {
		seen = append(seen, info.Key)
		return stop
	})
	if err != stop {
		t.Errorf("List error = %v, want fn's error as is", err)
	}
	if !slices.Equal(seen, []string{"x/1"}) {
		t.Errorf("List called fn for %q after it failed, want [x/1]", seen)
	}
}

func (s *suite) testDelete(t *testing.T) {
	st := s.newStore(t)
	ctx := context.Background()
	put(t, st, "d/1", content(1, 10), storage.ClassGlacier)
	put(t, st, "d/2", content(2, 10), storage.ClassStandard)
	for _, key := range []string{"d/1", "d/2"} {
		if err := st.Delete(ctx, key); err != nil {
			t.Fatalf("Delete(%s): %v", key, err)
		}
		checkNotExist(t, st, key)
	}
	if got := listAll(t, st, ""); len(got) != 0 {
		t.Errorf("List after deleting everything = %q, want none", keysOf(got))
	}
	for _, key := range []string{"d/1", "missing", "no/such/dir/key"} {
		if err := st.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%s) of a missing key: %v, want nil", key, err)
		}
	}
	// A deleted key can be stored again, with its new class.
	b := content(3, 10)
	put(t, st, "d/1", b, storage.ClassStandard)
	checkInfo(t, head(t, st, "d/1"), "d/1", b, storage.ClassStandard)
	mustGet(t, st, "d/1", b)
}

func (s *suite) testIfNoneMatch(t *testing.T) {
	if !s.opts.IfNoneMatch {
		t.Skip("backend has no conditional puts")
	}
	st := s.newStore(t)
	ctx := context.Background()
	b := content(1, 100)
	opts := storage.PutOptions{Class: storage.ClassGlacier, SHA256: sum(b), IfNoneMatch: true}
	if err := st.Put(ctx, "k", bytes.NewReader(b), int64(len(b)), opts); err != nil {
		t.Fatalf("conditional Put of a new key: %v", err)
	}
	other := content(2, 50)
	opts = storage.PutOptions{Class: storage.ClassStandard, SHA256: sum(other), IfNoneMatch: true}
	if err := st.Put(ctx, "k", bytes.NewReader(other), int64(len(other)), opts); !errors.Is(err, storage.ErrExist) {
		t.Errorf("conditional Put of an existing key: error = %v, want ErrExist", err)
	}
	checkInfo(t, head(t, st, "k"), "k", b, storage.ClassGlacier)
}

// testLarge streams an object from a file, as freeze does, big enough for
// multipart uploads.
func (s *suite) testLarge(t *testing.T) {
	st := s.newStore(t)
	ctx := context.Background()
	size := s.opts.LargeSize
	name := filepath.Join(t.TempDir(), "large")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.NewChaCha8(seedBytes(42)), size); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := st.Put(ctx, "large", f, size, storage.PutOptions{Class: storage.ClassStandard, SHA256: want}); err != nil {
		t.Fatalf("Put(large): %v", err)
	}
	info := head(t, st, "large")
	if info.Size != size {
		t.Errorf("Head(large).Size = %d, want %d", info.Size, size)
	}
	// A composite multipart checksum is not a full-object digest:
	// backends may leave SHA256 empty here, never wrong.
	if info.SHA256 != nil && !bytes.Equal(info.SHA256, want) {
		t.Errorf("Head(large).SHA256 = %x, want %x", info.SHA256, want)
	}
	rc, err := st.Get(ctx, "large", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h.Reset()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("read large: %v", err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Errorf("Get(large) = %d bytes (SHA-256 %x), want %d (%x)", n, h.Sum(nil), size, want)
	}
	// A range across what would be a part boundary.
	off := size/2 - 100
	got, err := get(st, "large", off, 200)
	if err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 200)
	if _, err := f.ReadAt(all, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Errorf("Get(large, %d, 200) differs from the file", off)
	}
}

func (s *suite) testConcurrentPuts(t *testing.T) {
	st := s.newStore(t)
	const perWorker = 4
	n := s.opts.Concurrency * perWorker
	var g errgroup.Group
	g.SetLimit(s.opts.Concurrency)
	var want []string
	for i := range n {
		key := fmt.Sprintf("c/%02d/chunk.%06d", i%3, i)
		want = append(want, key)
		g.Go(func() error {
			b := content(uint64(i), 10000+i)
			return st.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: storage.ClassStandard, SHA256: sum(b)})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if got := keysOf(listAll(t, st, "c/")); !slices.Equal(got, want) {
		t.Fatalf("List(c/) = %q, want %q", got, want)
	}
	for i := range n {
		mustGet(t, st, fmt.Sprintf("c/%02d/chunk.%06d", i%3, i), content(uint64(i), 10000+i))
	}
}
