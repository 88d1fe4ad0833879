package freeze_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/freeze"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

func TestOnceRoundTrip(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	b1, m1 := e.publishArchive(v, "host/pool/data", 3, 10_000)
	b2, m2 := e.publishArchive(v, "", 1, 5_000)
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once: %v\nlogs:\n%s", err, e.logs)
	}
	checkInVault(t, e.vaults[v], b1, m1)
	checkInVault(t, e.vaults[v], b2, m2)
	if got, want := len(vaultKeys(t, e.vaults[v])), 3+1+1+1; got != want {
		t.Errorf("vault holds %d objects, want %d: %q", got, want, vaultKeys(t, e.vaults[v]))
	}
	if left := spoolFiles(t, e.sp); len(left) != 0 {
		t.Errorf("freeze/ still holds %q", left)
	}
}

func TestOnceEmptySpool(t *testing.T) {
	e := newEnv(t, 1)
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once on an empty spool: %v", err)
	}
}

// TestStreaming publishes fragments one by one while the daemon runs; each
// must reach the vault and leave the spool before the next is published.
func TestStreaming(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	st := e.vaults[v]
	o := e.options()
	ready := make(chan struct{})
	o.OnReady = func() { close(ready) }
	var mu sync.Mutex
	var statuses []freeze.Status
	o.OnStatus = func(s freeze.Status) {
		mu.Lock()
		statuses = append(statuses, s)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.freezer(o).Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no READY within 10 s")
	}

	b := e.newBackup(v, "streamed")
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	for range 4 {
		name := b.publish(fragmentData(t, 20_000))
		waitFor(t, name+" in the vault and gone from the spool", 10*time.Second, func() bool {
			_, err := st.Head(context.Background(), b.key(name))
			return err == nil && !exists(filepath.Join(dir, name))
		})
		if !exists(freeze.ReceiptPath(dir, name)) {
			t.Fatalf("no receipt for %s after its upload", name)
		}
	}
	if _, err := st.Head(context.Background(), b.key(archive.ManifestName)); err == nil {
		t.Fatal("manifest in the vault before it was published")
	}
	m := b.finish()
	waitFor(t, "the manifest in the vault and the archive gone from the spool", 10*time.Second, func() bool {
		_, err := st.Head(context.Background(), b.key(archive.ManifestName))
		return err == nil && !exists(dir)
	})
	checkInVault(t, st, b, m)
	waitFor(t, "a status with the archive completed", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(statuses) > 0 && statuses[len(statuses)-1].Completed == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	sawWaiting, sawUploading := false, false
	for _, s := range statuses {
		sawWaiting = sawWaiting || s.Waiting > 0
		sawUploading = sawUploading || s.Uploading > 0
	}
	if !sawWaiting || !sawUploading {
		t.Errorf("statuses %+v: want one with an archive waiting and one with an upload in flight", statuses)
	}
	if last := statuses[len(statuses)-1]; last.Completed != 1 || last.Uploaded != 4 || last.Pending+last.Uploading+last.Waiting != 0 {
		t.Errorf("last status %+v, want 1 archive and 4 fragments done, nothing queued", last)
	}
}

// TestRecovery covers a crash after the receipt (fragment still there), a
// crash after the upload (object there, no receipt), and a crash after
// the unlink.
func TestRecovery(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	st := e.vaults[v]
	b, m := e.publishArchive(v, "p", 4, 3_000)
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	ctx := context.Background()
	put := func(i int) {
		d := b.frags[i-1]
		s := sha256.Sum256(d)
		if err := st.Put(ctx, b.key(archive.FragmentName(i)), bytes.NewReader(d), int64(len(d)), storage.PutOptions{Class: storage.ClassGlacier, SHA256: s[:]}); err != nil {
			t.Fatal(err)
		}
	}
	receipt := func(i int) {
		d := b.frags[i-1]
		s := sha256.Sum256(d)
		r := freeze.Receipt{Key: b.key(archive.FragmentName(i)), Size: int64(len(d)), SHA256: hex.EncodeToString(s[:]), Class: storage.ClassGlacier}
		j, _ := json.Marshal(r)
		os.MkdirAll(filepath.Join(dir, freeze.ReceiptsDir), 0o750)
		if err := os.WriteFile(freeze.ReceiptPath(dir, archive.FragmentName(i)), j, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// chunk.1: uploaded and receipted, not yet unlinked.
	put(1)
	receipt(1)
	// chunk.2: uploaded, no receipt.
	put(2)
	// chunk.3: uploaded, receipted and unlinked.
	put(3)
	receipt(3)
	os.Remove(filepath.Join(dir, archive.FragmentName(3)))
	// A receipt a crashed freeze was staging.
	staging, err := e.sp.StagingDir(spool.QueueFreeze)
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(staging, ".chunk.000004.json.0123456789ab.tmp")
	if err := os.WriteFile(leftover, []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}

	if err := e.freezer(e.options()).Once(ctx); err != nil {
		t.Fatalf("Once: %v\nlogs:\n%s", err, e.logs)
	}
	checkInVault(t, st, b, m)
	if got, want := e.logs.keys("uploaded"), []string{b.key("chunk.000004"), b.key("manifest.json")}; !slices.Equal(got, want) {
		t.Errorf("uploaded %q, want %q", got, want)
	}
	if got, want := e.logs.keys("already in vault"), []string{b.key("chunk.000002")}; !slices.Equal(got, want) {
		t.Errorf("found already in the vault %q, want %q", got, want)
	}
	if left := spoolFiles(t, e.sp); len(left) != 0 {
		t.Errorf("freeze/ still holds %q", left)
	}
	if got := len(vaultKeys(t, st)); got != 5 {
		t.Errorf("vault holds %d objects, want 5", got)
	}
	if exists(leftover) {
		t.Errorf("staging leftover %s not removed", leftover)
	}
}

// TestConflict: the vault holds other bytes under a fragment's key. The
// archive stops; nothing is overwritten or deleted.
func TestConflict(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	st := e.vaults[v]
	b, _ := e.publishArchive(v, "p", 2, 3_000)
	other := fragmentData(t, 3_000)
	ctx := context.Background()
	if err := st.Put(ctx, b.key("chunk.000001"), bytes.NewReader(other), int64(len(other)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	err := e.freezer(e.options()).Once(ctx)
	if !errors.Is(err, freeze.ErrConflict) {
		t.Fatalf("Once: %v, want ErrConflict", err)
	}
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	if !exists(filepath.Join(dir, "chunk.000001")) || !exists(filepath.Join(dir, archive.ManifestName)) {
		t.Errorf("conflicting fragment or manifest removed from the spool: %q", spoolFiles(t, e.sp))
	}
	rc, err := st.Get(ctx, b.key("chunk.000001"), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(rc)
	rc.Close()
	if !bytes.Equal(got.Bytes(), other) {
		t.Error("the vault's object was overwritten")
	}
	if _, err := st.Head(ctx, b.key(archive.ManifestName)); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("manifest of a conflicting archive uploaded: %v", err)
	}
}

// TestUnknownVault: an archive for a vault not in the configuration is left
// alone and reported; the others are uploaded.
func TestUnknownVault(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	good, m := e.publishArchive(v, "", 1, 1000)
	stray, _ := e.publishArchive(uuid.NewString(), "", 1, 1000)
	err := e.freezer(e.options()).Once(context.Background())
	if !errors.Is(err, freeze.ErrUnknownVault) {
		t.Fatalf("Once: %v, want ErrUnknownVault", err)
	}
	checkInVault(t, e.vaults[v], good, m)
	dir := e.sp.Dir(spool.QueueFreeze, stray.id)
	if !exists(filepath.Join(dir, "chunk.000001")) || !exists(filepath.Join(dir, archive.ManifestName)) {
		t.Errorf("archive of an unknown vault touched: %q", spoolFiles(t, e.sp))
	}
	if len(e.logs.records("unknown vault")) != 1 {
		t.Errorf("want one \"unknown vault\" log record, got:\n%s", e.logs)
	}
}

// TestPermanentErrorStopsOnlyThatVault uses a real permanent error of the
// file vault (an invalid storage class).
func TestPermanentErrorStopsOnlyThatVault(t *testing.T) {
	e := newEnv(t, 2)
	ids := e.vaultIDs()
	bad, ok := ids[0], ids[1]
	b1, _ := e.publishArchive(bad, "", 2, 1000)
	b2, m2 := e.publishArchive(ok, "", 2, 1000)
	o := e.options()
	for i := range o.Vaults {
		if o.Vaults[i].ID == bad {
			o.Vaults[i].Class = "GLACIER_TYPO"
		}
	}
	err := e.freezer(o).Once(context.Background())
	if !errors.Is(err, storage.ErrPermanent) {
		t.Fatalf("Once: %v, want ErrPermanent", err)
	}
	checkInVault(t, e.vaults[ok], b2, m2)
	dir := e.sp.Dir(spool.QueueFreeze, b1.id)
	for _, n := range []string{"chunk.000001", "chunk.000002", archive.ManifestName} {
		if !exists(filepath.Join(dir, n)) {
			t.Errorf("%s of the stopped vault's archive is gone from the spool", n)
		}
	}
	if n := len(e.logs.records("vault stopped")); n != 1 {
		t.Errorf("%d \"vault stopped\" records, want 1:\n%s", n, e.logs)
	}
}

// TestBrokenArchiveQuarantined: the manifest lists a fragment that is
// neither in the spool nor receipted.
func TestBrokenArchiveQuarantined(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	b, _ := e.publishArchive(v, "a/b", 3, 1000)
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	if err := os.Remove(filepath.Join(dir, "chunk.000002")); err != nil {
		t.Fatal(err)
	}
	err := e.freezer(e.options()).Once(context.Background())
	if !errors.Is(err, freeze.ErrBroken) {
		t.Fatalf("Once: %v, want ErrBroken", err)
	}
	q := filepath.Join(e.sp.Dir(spool.QueueFreeze, archive.ID{}), freeze.QuarantineDir, filepath.FromSlash(b.id.Dir()))
	for _, p := range []string{filepath.Join(q, archive.ManifestName), freeze.ReceiptPath(q, "chunk.000001"), freeze.ReceiptPath(q, "chunk.000003")} {
		if !exists(p) {
			t.Errorf("%s missing from the quarantine", p)
		}
	}
	if exists(dir) {
		t.Errorf("%s still in the queue", dir)
	}
	if _, err := e.vaults[v].Head(context.Background(), b.key(archive.ManifestName)); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("manifest of a broken archive uploaded: %v", err)
	}
	// A second run finds nothing to do.
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Errorf("second Once: %v", err)
	}
}

// TestAbandoned: a backup that gave up after freeze uploaded some of its
// fragments leaves a directory of receipts; freeze removes it. A dead
// writer's fragments are not uploaded.
func TestAbandoned(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	b := e.newBackup(v, "")
	b.publish(fragmentData(t, 1000))
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once: %v", err)
	}
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	if !exists(freeze.ReceiptPath(dir, "chunk.000001")) {
		t.Fatalf("no receipt for the live backup's fragment: %q\n%s", spoolFiles(t, e.sp), e.logs)
	}
	if err := b.out.Abort(); err != nil {
		t.Fatal(err)
	}
	if !exists(dir) {
		t.Fatal("Abort removed freeze's receipts (test premise)")
	}
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if left := spoolFiles(t, e.sp); len(left) != 0 {
		t.Errorf("freeze/ still holds %q", left)
	}
}

func TestSecondInstanceLocked(t *testing.T) {
	e := newEnv(t, 1)
	o := e.options()
	ready := make(chan struct{})
	o.OnReady = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.freezer(o).Run(ctx) }()
	<-ready
	err := e.freezer(e.options()).Once(context.Background())
	if !errors.Is(err, spool.ErrLocked) {
		t.Errorf("second instance: %v, want ErrLocked", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestStreamingBackupBudget runs the real archive writer into an outbox
// whose budget holds three fragments while the daemon runs: backup can only
// finish because freeze uploads and deletes fragments as they come, and the
// spool never holds more than the budget.
func TestStreamingBackupBudget(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	st := e.vaults[v]
	key, err := archive.GenerateKey("freeze test", "freeze@example.org")
	if err != nil {
		t.Fatal(err)
	}
	o := e.options()
	o.Concurrency = 2
	ready := make(chan struct{})
	o.OnReady = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.freezer(o).Run(ctx) }()
	<-ready

	const fragment = archive.MinFragmentSize
	budget := spool.Budget{MaxBytes: 3 * fragment, FragmentSize: fragment}
	id, err := archive.NewID(uuid.MustParse(v), "budget", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.sp.NewOutbox(ctx, id, budget)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := archive.NewWriter(out, archive.WriterOptions{ID: id, Recipients: openpgp.EntityList{key},
		Compression: archive.CompressionNone, FragmentSize: fragment})
	if err != nil {
		t.Fatal(err)
	}

	// Sample the spool while backup writes. Fragments move from backup/ to
	// freeze/: walking freeze/ first never counts one twice.
	stop := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if u, err := e.sp.Usage(spool.QueueFreeze, spool.QueueBackup); err == nil && u > peak {
				peak = u
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	if _, err := w.Write(fragmentData(t, 8*int(fragment))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	m := w.Manifest()
	n := len(m.Fragments)
	// Receipts are a few hundred bytes each.
	if slack := int64(n) * 1024; peak > budget.MaxBytes+slack {
		t.Errorf("spool peaked at %d bytes, budget %d", peak, budget.MaxBytes)
	}
	uploaded := 0
	for _, f := range m.Fragments {
		if _, err := st.Head(ctx, id.Key()+"/"+f.Name); err == nil {
			uploaded++
		}
	}
	if uploaded < n-3 {
		t.Errorf("%d of %d fragments in the vault when backup ended, want at least %d", uploaded, n, n-3)
	}
	if err := out.PublishManifest(m); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	dir := e.sp.Dir(spool.QueueFreeze, id)
	waitFor(t, "the archive complete", 20*time.Second, func() bool { return !exists(dir) })
	if _, err := st.Head(ctx, id.Key()+"/"+archive.ManifestName); err != nil {
		t.Errorf("manifest: %v", err)
	}
	for _, f := range m.Fragments {
		info, err := st.Head(ctx, id.Key()+"/"+f.Name)
		if err != nil || info.Size != f.Size || hex.EncodeToString(info.SHA256) != f.SHA256 {
			t.Errorf("%s in the vault: %+v, %v; want %d bytes, %s", f.Name, info, err, f.Size, f.SHA256)
		}
	}
	t.Logf("%d fragments, spool peak %d bytes (budget %d)", n, peak, budget.MaxBytes)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
