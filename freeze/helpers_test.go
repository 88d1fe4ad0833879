package freeze_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/freeze"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
)

// logBuffer collects JSON log records for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the log records whose msg is msg.
func (l *logBuffer) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// keys returns the "key" attributes of the records whose msg is msg.
func (l *logBuffer) keys(msg string) []string {
	var out []string
	for _, r := range l.records(msg) {
		if k, ok := r["key"].(string); ok {
			out = append(out, k)
		}
	}
	return out
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a spool and file vaults for one test.
type env struct {
	t      testing.TB
	sp     *spool.Spool
	vaults map[string]storage.Store // by vault ID
	logs   *logBuffer
}

func newEnv(t testing.TB, nVaults int) *env {
	t.Helper()
	sp, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sp: sp, vaults: map[string]storage.Store{}, logs: &logBuffer{}}
	for range nVaults {
		st, err := file.New(t.TempDir(), file.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.vaults[uuid.NewString()] = st
	}
	return e
}

// vaultIDs returns the vault IDs in a stable order.
func (e *env) vaultIDs() []string {
	var ids []string
	for id := range e.vaults {
		ids = append(ids, id)
	}
	if len(ids) > 1 && ids[0] > ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}
	return ids
}

// options returns Freezer options for all the env's vaults, with fast
// retries.
func (e *env) options() freeze.Options {
	o := freeze.Options{
		Spool:    e.sp,
		RetryMin: time.Millisecond,
		RetryMax: 10 * time.Millisecond,
		Attempts: 3,
		Rescan:   time.Hour,
		Logger:   slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for id, st := range e.vaults {
		o.Vaults = append(o.Vaults, freeze.Vault{ID: id, Store: st})
	}
	return o
}

func (e *env) freezer(o freeze.Options) *freeze.Freezer {
	e.t.Helper()
	f, err := freeze.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// fragmentData is a fragment's content.
func fragmentData(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// backup is an archive being published through a real outbox.
type backup struct {
	t     testing.TB
	out   *spool.Outbox
	id    archive.ID
	frags [][]byte
}

func (e *env) newBackup(vault, prefix string) *backup {
	e.t.Helper()
	id, err := archive.NewID(uuid.MustParse(vault), prefix, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := e.sp.NewOutbox(context.Background(), id, spool.Budget{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { out.Close() })
	return &backup{t: e.t, out: out, id: id}
}

// publish publishes the next fragment.
func (b *backup) publish(data []byte) string {
	b.t.Helper()
	name := archive.FragmentName(len(b.frags) + 1)
	w, err := b.out.Create(name)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		b.t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		b.t.Fatal(err)
	}
	b.frags = append(b.frags, data)
	return name
}

// manifest returns the archive's manifest.
func (b *backup) manifest() *archive.Manifest {
	m := &archive.Manifest{
		Format:      archive.FormatVersion,
		BackupID:    b.id.String(),
		Created:     time.Now().UTC().Truncate(time.Second),
		Compression: archive.CompressionNone,
		Encryption:  archive.Encryption{Mode: archive.ModeSEIPDv1, Recipients: []string{"0123456789ABCDEF"}},
	}
	for i, d := range b.frags {
		s := sha256.Sum256(d)
		m.Fragments = append(m.Fragments, archive.Fragment{Name: archive.FragmentName(i + 1), Size: int64(len(d)), SHA256: hex.EncodeToString(s[:])})
		m.CiphertextBytes += int64(len(d))
		m.FragmentSize = max(m.FragmentSize, int64(len(d)))
	}
	m.PlaintextBytes = m.CiphertextBytes
	return m
}

// finish publishes the manifest and closes the outbox; it returns the
// manifest's bytes.
func (b *backup) finish() []byte {
	b.t.Helper()
	m := b.manifest()
	if err := b.out.PublishManifest(m); err != nil {
		b.t.Fatal(err)
	}
	if err := b.out.Close(); err != nil {
		b.t.Fatal(err)
	}
	mb, err := m.Marshal()
	if err != nil {
		b.t.Fatal(err)
	}
	return mb
}

// publishArchive publishes a complete archive of n fragments of size bytes.
func (e *env) publishArchive(vault, prefix string, n, size int) (*backup, []byte) {
	e.t.Helper()
	b := e.newBackup(vault, prefix)
	for range n {
		b.publish(fragmentData(e.t, size))
	}
	return b, b.finish()
}

// key returns the vault key of name in b's archive.
func (b *backup) key(name string) string { return b.id.Key() + "/" + name }

// checkInVault checks that b's fragments and manifest are in st with the
// right classes, sizes, digests and bytes.
func checkInVault(t *testing.T, st storage.Store, b *backup, manifest []byte) {
	t.Helper()
	checkInVaultSums(t, st, b, manifest, false)
}

// checkInVaultSums is checkInVault; partial accepts objects for which the
// store reports no SHA-256 (S3 multipart uploads).
func checkInVaultSums(t *testing.T, st storage.Store, b *backup, manifest []byte, partial bool) {
	t.Helper()
	ctx := context.Background()
	for i, d := range b.frags {
		key := b.key(archive.FragmentName(i + 1))
		info, err := st.Head(ctx, key)
		if err != nil {
			t.Fatalf("Head(%s): %v", key, err)
		}
		sum := sha256.Sum256(d)
		if info.Class != storage.ClassGlacier || info.Size != int64(len(d)) || (info.SHA256 != nil || !partial) && !bytes.Equal(info.SHA256, sum[:]) {
			t.Errorf("%s: class %s, size %d, sha256 %x; want GLACIER, %d, %x", key, info.Class, info.Size, info.SHA256, len(d), sum)
		}
	}
	key := b.key(archive.ManifestName)
	info, err := st.Head(ctx, key)
	if err != nil {
		t.Fatalf("Head(%s): %v", key, err)
	}
	if info.Class != storage.ClassStandard {
		t.Errorf("%s: class %s, want STANDARD", key, info.Class)
	}
	rc, err := st.Get(ctx, key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, manifest) {
		t.Errorf("%s in the vault differs from the published manifest", key)
	}
}

// vaultKeys lists every key in st.
func vaultKeys(t *testing.T, st storage.Store) []string {
	t.Helper()
	var keys []string
	err := st.List(context.Background(), "", func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// spoolFiles lists the files left below freeze/, staging excluded.
func spoolFiles(t *testing.T, sp *spool.Spool) []string {
	t.Helper()
	root := sp.Dir(spool.QueueFreeze, archive.ID{})
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == spool.StagingName {
			return fs.SkipDir
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
