package thaw_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
	"github.com/cryophile/cryophile/thaw"
)

// TestCycle: a request for an archive; the manifest is published first,
// then the fragments (in order when they are all readable at once, as
// with STANDARD); the consumer gets every byte; the request and thaw's
// private files are gone at the end.
func TestCycle(t *testing.T) {
	for _, class := range []string{storage.ClassStandard, storage.ClassGlacier} {
		t.Run(class, func(t *testing.T) { testCycle(t, class) })
	}
}

func testCycle(t *testing.T, class string) {
	e := newEnv(t, file.Options{RestoreDelay: 50 * time.Millisecond}, func(o *thaw.Options) {
		o.Concurrency = 1
		o.RestoreMaxBytes = 1 << 30 // nothing consumes while Once runs
	})
	id, _, frags := e.putArchive("host/pool", class, 5, 64<<10, true)
	dir := e.sp.Dir(spool.QueueRestore, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	names := make(chan string, 100)
	go func() {
		for ev := range w.Events {
			name := filepath.Base(ev.Name)
			if ev.Has(fsnotify.Create) && name != spool.StatusName && !strings.HasPrefix(name, ".") {
				names <- name
			}
		}
	}()
	e.request(id, "bulk", 7)
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	want := []string{archive.ManifestName}
	for i := range frags {
		want = append(want, archive.FragmentName(i+1))
	}
	var order []string
	timeout := time.After(10 * time.Second)
	for len(order) < len(want) {
		select {
		case n := <-names:
			order = append(order, n)
		case <-timeout:
			t.Fatalf("publications seen: %v, want %v", order, want)
		}
	}
	if class == storage.ClassStandard && !slices.Equal(order, want) {
		t.Errorf("publication order %v, want %v", order, want)
	}
	if order[0] != archive.ManifestName {
		t.Errorf("publication order %v: the manifest is not first", order)
	}
	sorted := slices.Clone(order)
	slices.Sort(sorted)
	if slices.Sort(want); !slices.Equal(sorted, want) {
		t.Errorf("published %v, want each of %v once", order, want)
	}
	st := e.status(id)
	if st == nil || !st.Complete || st.Failure != nil || st.Fragments.Published != len(frags) || st.Class != class || st.Tier != storage.TierBulk {
		t.Fatalf("status = %+v, want complete, %d published, %s, Bulk", st, len(frags), class)
	}
	wantRestores := 0
	if storage.NeedsRestore(class) {
		wantRestores = len(frags)
	}
	if st.Estimate == nil || st.Estimate.Requests != wantRestores || (st.TypicalWait == "") == (wantRestores > 0) {
		t.Errorf("status estimate %+v, typical wait %q: want %d requests", st.Estimate, st.TypicalWait, wantRestores)
	}
	if got := len(e.rec.calls(&e.rec.restores, "Bulk")); got != wantRestores {
		t.Errorf("%d Bulk restore requests, want %d", got, wantRestores)
	}
	e.consume(id, frags)
	if n := e.requests(); n != 0 {
		t.Errorf("%d requests left in thaw/", n)
	}
	if _, err := os.Stat(filepath.Join(e.sp.Dir(spool.QueueRestore, archive.ID{}), ".thaw", thaw.Key(id.String()))); !os.IsNotExist(err) {
		t.Errorf("thaw's job directory is still there (err %v)", err)
	}
}

// TestStreamingAndBackPressure: the daemon publishes no more than the
// budget allows while nothing is consumed, and the rest as restore/
// drains.
func TestStreamingAndBackPressure(t *testing.T) {
	const size = 32 << 10
	e := newEnv(t, file.Options{}, func(o *thaw.Options) { o.RestoreMaxBytes = 2*size + 8<<10 })
	id, _, frags := e.putArchive("", storage.ClassStandard, 6, size, true)
	e.request(id, "standard", 3)
	e.daemon()
	// Blocked by the budget: two published, the rest readable but held.
	waitFor(t, "two fragments published and the others held back", 10*time.Second, func() bool {
		st := e.status(id)
		return st != nil && st.Fragments.Published == 2 && st.Fragments.Ready == len(frags)-2
	})
	a, err := e.sp.Archives(spool.QueueRestore)
	if err != nil || len(a) != 1 || len(a[0].Fragments) != 2 {
		t.Fatalf("restore/ = %+v (%v), want one archive with two fragments", a, err)
	}
	e.consume(id, frags)
	waitFor(t, "request consumed", 10*time.Second, func() bool { return e.requests() == 0 })
	if st := e.status(id); st == nil || !st.Complete {
		t.Errorf("status %+v, want complete", st)
	}
}

// TestLukewarm: a fragment restored earlier but about to expire is
// restored again before it is downloaded; one with a long life is not.
func TestLukewarm(t *testing.T) {
	e := newEnv(t, file.Options{RestoreDelay: 20 * time.Millisecond, DayLength: time.Second}, func(o *thaw.Options) { o.Lukewarm = 3 * time.Second })
	id, _, frags := e.putArchive("p", storage.ClassGlacier, 3, 16<<10, true)
	ctx := context.Background()
	k1, k2 := id.Key()+"/chunk.000001", id.Key()+"/chunk.000002"
	if err := e.vault.Restore(ctx, k1, 1, storage.TierBulk); err != nil { // expires in ~1s: lukewarm
		t.Fatal(err)
	}
	if err := e.vault.Restore(ctx, k2, 30, storage.TierBulk); err != nil { // 30s: fine
		t.Fatal(err)
	}
	waitFor(t, "pre-restores done", 5*time.Second, func() bool {
		i1, _ := e.vault.Head(ctx, k1)
		i2, _ := e.vault.Head(ctx, k2)
		return i1.Readable() && i2.Readable()
	})
	e.request(id, "bulk", 7)
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.calls(&e.rec.restores, "chunk.000001"); len(got) != 1 {
		t.Errorf("restore requests for the lukewarm fragment: %v, want one", got)
	}
	if got := e.rec.calls(&e.rec.restores, "chunk.000002"); len(got) != 0 {
		t.Errorf("restore requests for the fragment with a long life: %v, want none", got)
	}
	e.consume(id, frags)
}

// TestDeepArchiveExpedited: Expedited is refused for DEEP_ARCHIVE; thaw
// uses Standard and says so.
func TestDeepArchiveExpedited(t *testing.T) {
	e := newEnv(t, file.Options{RestoreDelay: 20 * time.Millisecond}, nil)
	id, _, frags := e.putArchive("deep", storage.ClassDeepArchive, 3, 8<<10, true)
	e.request(id, "expedited", 1)
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.calls(&e.rec.restores, "Standard"); len(got) != len(frags) {
		t.Errorf("Standard restores %v, want %d", got, len(frags))
	}
	if got := e.rec.calls(&e.rec.restores, "Expedited"); len(got) != 0 {
		t.Errorf("Expedited restores %v, want none", got)
	}
	st := e.status(id)
	if st == nil || !strings.Contains(st.TierNote, "Standard") || st.Tier != storage.TierExpedited {
		t.Errorf("status tier %q note %q, want Expedited with a note naming Standard", st.Tier, st.TierNote)
	}
	if st.Estimate == nil || st.Estimate.Tier != storage.TierStandard || !st.Estimate.CostKnown {
		t.Errorf("estimate %+v, want Standard with a known cost", st.Estimate)
	}
	e.consume(id, frags)
}

// TestCorruptFragment: a fragment whose bytes in the vault do not match
// the manifest is downloaded VerifyAttempts times, then quarantined, and
// status.json names it.
func TestCorruptFragment(t *testing.T) {
	e := newEnv(t, file.Options{}, func(o *thaw.Options) { o.VerifyAttempts = 3 })
	id, _, frags := e.putArchive("c", storage.ClassGlacierIR, 4, 16<<10, true)
	p := filepath.Join(e.vault.Root(), filepath.FromSlash(id.Key()), "chunk.000002")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0x40
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	e.request(id, "bulk", 1)
	err = e.once()
	var fe *thaw.FailureError
	if !errors.As(err, &fe) || fe.Code != thaw.FailCorrupt || fe.Fragment != "chunk.000002" || !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("Once = %v, want a corrupt failure naming chunk.000002", err)
	}
	st := e.status(id)
	if st.Failure == nil || st.Failure.Code != thaw.FailCorrupt || !strings.Contains(st.Failure.Message, "chunk.000002") {
		t.Fatalf("status failure %+v, want corrupt naming chunk.000002", st.Failure)
	}
	if got := e.rec.calls(&e.rec.gets, "chunk.000002@0"); len(got) != 3 {
		t.Errorf("chunk.000002 downloaded %d times, want 3", len(got))
	}
	q, _ := os.ReadDir(thaw.QuarantineDir(e.sp, id))
	if len(q) != 1 || !strings.HasPrefix(q[0].Name(), "chunk.000002.") {
		t.Errorf("quarantine holds %v, want one copy of chunk.000002", q)
	}
	if e.requests() != 0 {
		t.Error("a failed request is still in thaw/")
	}
	// The fragments before it were published for restore to stream.
	if _, err := os.Stat(filepath.Join(e.sp.Dir(spool.QueueRestore, id), "chunk.000001")); err != nil {
		t.Errorf("chunk.000001 not published: %v", err)
	}
	_ = frags
}

// TestMissingArchives: an archive that does not exist, and one whose
// manifest was never uploaded, fail permanently with different codes.
func TestMissingArchives(t *testing.T) {
	e := newEnv(t, file.Options{}, nil)
	incomplete, _, _ := e.putArchive("x", storage.ClassGlacier, 2, 4<<10, false)
	absent, err := archive.NewID(vaultID, "x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.request(incomplete, "bulk", 1)
	e.request(absent, "bulk", 1)
	if err := e.once(); err == nil {
		t.Fatal("Once succeeded")
	}
	for _, tc := range []struct {
		id   archive.ID
		code string
	}{{incomplete, thaw.FailIncomplete}, {absent, thaw.FailNotFound}} {
		st := e.status(tc.id)
		if st == nil || st.Failure == nil || st.Failure.Code != tc.code || !strings.Contains(st.Failure.Message, tc.id.String()) {
			t.Errorf("%s: status %+v, want failure %s naming the archive", tc.id, st, tc.code)
		}
	}
}

// TestResumePartial: a partial download left by a crash is resumed from
// its offset.
func TestResumePartial(t *testing.T) {
	e := newEnv(t, file.Options{}, nil)
	id, _, frags := e.putArchive("r", storage.ClassStandard, 2, 64<<10, true)
	dir := filepath.Join(e.sp.Dir(spool.QueueRestore, archive.ID{}), ".thaw", thaw.Key(id.String()))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chunk.000001.part"), frags[0][:40000], 0o640); err != nil {
		t.Fatal(err)
	}
	e.request(id, "bulk", 1)
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.calls(&e.rec.gets, "chunk.000001@"); !slices.Equal(got, []string{id.Key() + "/chunk.000001@40000"}) {
		t.Errorf("gets of chunk.000001: %v, want one from offset 40000", got)
	}
	e.consume(id, frags)
}

// TestWithdraw: removing the request stops thaw and removes what it
// staged and published.
func TestWithdraw(t *testing.T) {
	e := newEnv(t, file.Options{RestoreDelay: time.Hour}, nil)
	id, _, _ := e.putArchive("w", storage.ClassGlacier, 3, 4<<10, true)
	e.request(id, "bulk", 1)
	e.daemon()
	waitFor(t, "fragments restoring", 10*time.Second, func() bool {
		st := e.status(id)
		return st != nil && st.Fragments.Restoring == 3
	})
	if n, err := thaw.Withdraw(e.sp, id); err != nil || n != 1 {
		t.Fatalf("Withdraw = %d, %v; want 1", n, err)
	}
	waitFor(t, "restore directory removed", 10*time.Second, func() bool {
		_, err := os.Stat(e.sp.Dir(spool.QueueRestore, id))
		return os.IsNotExist(err)
	})
	waitFor(t, "job directory removed", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.sp.Dir(spool.QueueRestore, archive.ID{}), ".thaw", thaw.Key(id.String())))
		return os.IsNotExist(err)
	})
}

// TestSupersede: a newer request for the same archive (a restore that
// restarted after consuming fragments) gets every fragment again.
func TestSupersede(t *testing.T) {
	e := newEnv(t, file.Options{}, nil)
	id, _, frags := e.putArchive("s", storage.ClassStandard, 3, 8<<10, true)
	e.request(id, "bulk", 1)
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	e.consume(id, frags[:2]) // restore interrupted after two fragments
	e.request(id, "bulk", 1)
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	e.consume(id, frags)
}

// TestListAndEstimate lists a vault with a complete and an incomplete
// archive and estimates a restore.
func TestListAndEstimate(t *testing.T) {
	e := newEnv(t, file.Options{}, nil)
	old, m, _ := e.putArchive("h/p", storage.ClassGlacier, 3, 4<<10, true)
	inc, _, _ := e.putArchive("h/p", storage.ClassGlacier, 2, 4<<10, false)
	other, _, _ := e.putArchive("h/p/sub", storage.ClassDeepArchive, 1, 4<<10, true)
	ctx := context.Background()
	list, err := thaw.List(ctx, e.vault, vaultID, "h/p")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("List = %+v, want 3 archives", list)
	}
	byID := map[string]thaw.Entry{}
	for _, en := range list {
		byID[en.BackupID] = en
	}
	if en := byID[old.String()]; en.Incomplete || en.Fragments != 3 || en.Bytes != m.CiphertextBytes || en.Class != storage.ClassGlacier {
		t.Errorf("complete archive listed as %+v", en)
	}
	if en := byID[inc.String()]; !en.Incomplete || en.Fragments != 2 {
		t.Errorf("incomplete archive listed as %+v", en)
	}
	if en := byID[other.String()]; en.Class != storage.ClassDeepArchive {
		t.Errorf("sub-prefix archive listed as %+v", en)
	}
	if got, ok := thaw.Latest(list, "h/p", time.Time{}); !ok || got != old {
		t.Errorf("Latest = %v %v, want %v (the incomplete one is newer but unusable)", got, ok, old)
	}
	if _, ok := thaw.Latest(list, "h/p", old.Time()); ok {
		t.Error("Latest before the oldest archive found one")
	}
	est, err := thaw.EstimateID(ctx, e.vault, old, storage.TierStandard, config.DefaultPrices())
	if err != nil {
		t.Fatal(err)
	}
	if est.Requests != 3 || est.Bytes != m.CiphertextBytes || !est.CostKnown || est.CostUSD <= 0 || est.Wait != "3-5 hours" {
		t.Errorf("estimate %+v, want 3 requests for %d bytes, a cost, 3-5 hours", est, m.CiphertextBytes)
	}
	est, err = thaw.EstimateID(ctx, e.vault, other, storage.TierExpedited, config.DefaultPrices())
	if err != nil || est.Tier != storage.TierStandard {
		t.Errorf("DEEP_ARCHIVE Expedited estimate %+v, %v; want tier Standard", est, err)
	}
}

// TestGiveUp: with GiveUpAfter (cryophile-thaw --once), transient vault
// errors that do not go away fail the request as unavailable; without it
// (the daemon) they are retried and reported in status.json.
func TestGiveUp(t *testing.T) {
	flaky := errors.New("connection reset by peer")
	for _, op := range []string{"head", "get"} {
		t.Run(op, func(t *testing.T) {
			e := newEnv(t, file.Options{}, func(o *thaw.Options) { o.GiveUpAfter = 3 })
			id, _, _ := e.putArchive("g", storage.ClassStandard, 2, 4<<10, true)
			e.rec.fail = func(o, key string) error {
				if o == op && strings.HasSuffix(key, "chunk.000002") {
					return flaky
				}
				return nil
			}
			e.request(id, "bulk", 1)
			err := e.once()
			var fe *thaw.FailureError
			if !errors.As(err, &fe) || fe.Code != thaw.FailUnavailable || fe.Fragment != "chunk.000002" || !strings.Contains(fe.Message, "connection reset") {
				t.Fatalf("Once = %v, want unavailable naming chunk.000002 and the error", err)
			}
		})
	}
	t.Run("daemon retries", func(t *testing.T) {
		e := newEnv(t, file.Options{}, nil)
		id, _, frags := e.putArchive("g", storage.ClassStandard, 2, 4<<10, true)
		var mu sync.Mutex
		failing := true
		e.rec.fail = func(o, key string) error {
			mu.Lock()
			defer mu.Unlock()
			if failing && strings.HasSuffix(key, "chunk.000002") {
				return flaky
			}
			return nil
		}
		e.request(id, "bulk", 1)
		e.daemon()
		waitFor(t, "the error in status.json", 10*time.Second, func() bool {
			st := e.status(id)
			return st != nil && len(st.Errors) > 0 && st.Errors[len(st.Errors)-1].Fragment == "chunk.000002"
		})
		mu.Lock()
		failing = false
		mu.Unlock()
		e.consume(id, frags)
	})
}
