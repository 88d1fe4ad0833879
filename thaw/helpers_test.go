package thaw_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
	"github.com/cryophile/cryophile/thaw"
)

var vaultID = uuid.MustParse("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00")

// recorder wraps a store and records restore requests and gets.
type recorder struct {
	storage.Store
	mu       sync.Mutex
	restores []string // key + " " + tier
	gets     []string // key + "@" + offset
	// fail, if set, may fail an operation (op "head" or "get") on key.
	fail func(op, key string) error
}

func (r *recorder) Head(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if r.fail != nil {
		if err := r.fail("head", key); err != nil {
			return storage.ObjectInfo{}, err
		}
	}
	return r.Store.Head(ctx, key)
}

func (r *recorder) Restore(ctx context.Context, key string, days int, tier string) error {
	r.mu.Lock()
	r.restores = append(r.restores, key+" "+tier)
	r.mu.Unlock()
	return r.Store.Restore(ctx, key, days, tier)
}

func (r *recorder) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r.mu.Lock()
	r.gets = append(r.gets, key+"@"+strconv.FormatInt(off, 10))
	r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail("get", key); err != nil {
			return nil, err
		}
	}
	return r.Store.Get(ctx, key, off, n)
}

func (r *recorder) calls(list *[]string, substr string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range *list {
		if bytes.Contains([]byte(s), []byte(substr)) {
			out = append(out, s)
		}
	}
	return out
}

// env is a spool and a file vault with a recording wrapper.
type env struct {
	t     *testing.T
	sp    *spool.Spool
	vault *file.Store
	rec   *recorder
	opts  thaw.Options
}

func newEnv(t *testing.T, fo file.Options, tweak func(*thaw.Options)) *env {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"spool", "vault"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := file.New(filepath.Join(dir, "vault"), fo)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sp: sp, vault: v, rec: &recorder{Store: v}}
	e.opts = thaw.Options{
		Spool: sp,
		OpenVault: func(_ context.Context, id uuid.UUID) (storage.Store, error) {
			if id != vaultID {
				return nil, config.ErrUnknownVault
			}
			return e.rec, nil
		},
		PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond,
		Concurrency: 2,
		Rescan:      20 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&e.opts)
	}
	return e
}

// putArchive stores an archive of n fragments of size bytes (the last
// one shorter) with fragments in class; with manifest false the manifest
// is left out (an incomplete archive).
func (e *env) putArchive(prefix, class string, n, size int, manifest bool) (archive.ID, *archive.Manifest, [][]byte) {
	e.t.Helper()
	id, err := archive.NewID(vaultID, prefix, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	m := &archive.Manifest{
		Format: archive.FormatVersion, BackupID: id.String(), Created: time.Now().UTC(),
		Compression: archive.CompressionNone, Encryption: archive.Encryption{Mode: archive.ModeSEIPDv1, Recipients: []string{"00"}},
		FragmentSize: int64(size),
	}
	r := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	var frags [][]byte
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		b := make([]byte, size)
		if i == n {
			b = b[:size/2+1]
		}
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		sum := sha256.Sum256(b)
		m.Fragments = append(m.Fragments, archive.Fragment{Name: archive.FragmentName(i), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		m.CiphertextBytes += int64(len(b))
		if err := e.vault.Put(ctx, id.Key()+"/"+archive.FragmentName(i), bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: class, SHA256: sum[:]}); err != nil {
			e.t.Fatal(err)
		}
		frags = append(frags, b)
	}
	if manifest {
		b, err := m.Marshal()
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.vault.Put(ctx, id.Key()+"/"+archive.ManifestName, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	return id, m, frags
}

func (e *env) request(id archive.ID, tier string, days int) *thaw.Request {
	e.t.Helper()
	r, err := thaw.NewRestoreRequest(id, tier, days)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := thaw.File(e.sp, r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// engine returns a new Thaw on the env.
func (e *env) engine() *thaw.Thaw {
	e.t.Helper()
	th, err := thaw.New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return th
}

// daemon runs a Thaw until the test ends.
func (e *env) daemon() {
	e.t.Helper()
	th := e.engine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- th.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
}

// once runs Thaw.Once with a deadline.
func (e *env) once() error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return e.engine().Once(ctx)
}

func (e *env) status(id archive.ID) *thaw.Status {
	e.t.Helper()
	st, err := thaw.ReadStatus(e.sp, id)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.t.Fatal(err)
	}
	return st
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

// consume reads the fragments of id from restore/ in order, as restore
// does, checks them against want and deletes each.
func (e *env) consume(id archive.ID, want [][]byte) {
	e.t.Helper()
	src := e.sp.RestoreSource(id, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, w := range want {
		f := archive.Fragment{Name: archive.FragmentName(i + 1)}
		r, err := src.Open(ctx, f)
		if err != nil {
			e.t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			e.t.Fatalf("%s: %d bytes differ from the %d in the vault", f.Name, len(got), len(w))
		}
		if err := src.Done(f); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) requests() int {
	e.t.Helper()
	reqs, _, err := thaw.Requests(e.sp)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(reqs)
}
