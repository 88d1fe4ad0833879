package archive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/cryophile/cryophile/archive"
	"github.com/google/uuid"
)

// memSink keeps fragments in memory.
type memSink struct {
	mu        sync.Mutex
	committed map[string][]byte
	aborted   []string
	order     []string
	failAt    string // Create of this fragment fails
}

func newMemSink() *memSink { return &memSink{committed: map[string][]byte{}} }

func (s *memSink) Create(name string) (archive.FragmentFile, error) {
	if name == s.failAt {
		return nil, fmt.Errorf("sink full")
	}
	return &memFile{s: s, name: name}, nil
}

// concat returns the committed fragments joined in order.
func (s *memSink) concat() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, n := range s.order {
		b = append(b, s.committed[n]...)
	}
	return b
}

type memFile struct {
	s    *memSink
	name string
	buf  bytes.Buffer
	done bool
}

func (f *memFile) Write(p []byte) (int, error) {
	if f.done {
		return 0, errors.New("write after commit/abort")
	}
	return f.buf.Write(p)
}

func (f *memFile) Commit() error {
	if f.done {
		return errors.New("double commit")
	}
	f.done = true
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.committed[f.name] = bytes.Clone(f.buf.Bytes())
	f.s.order = append(f.s.order, f.name)
	return nil
}

func (f *memFile) Abort() error {
	f.done = true
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.aborted = append(f.s.aborted, f.name)
	return nil
}

// memSource serves fragments from memory and records what happens.
type memSource struct {
	mu    sync.Mutex
	frags map[string][]byte
	done  []string
	open  int // currently open
}

func newMemSource(frags map[string][]byte) *memSource {
	m := map[string][]byte{}
	for k, v := range frags {
		m[k] = bytes.Clone(v)
	}
	return &memSource{frags: m}
}

func (s *memSource) Open(ctx context.Context, f archive.Fragment) (io.ReadSeekCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.frags[f.Name]
	if !ok {
		return nil, fmt.Errorf("fragment %s: %w", f.Name, fs.ErrNotExist)
	}
	s.open++
	return &memReader{Reader: bytes.NewReader(b), s: s}, nil
}

func (s *memSource) Done(f archive.Fragment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = append(s.done, f.Name)
	return nil
}

func (s *memSource) doneList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.done...)
}

func (s *memSource) openCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

type memReader struct {
	*bytes.Reader
	s      *memSource
	closed bool
}

func (r *memReader) Close() error {
	if !r.closed {
		r.closed = true
		r.s.mu.Lock()
		r.s.open--
		r.s.mu.Unlock()
	}
	return nil
}

// testKey is a generated key: its secret part and its certificate as a
// backup host would load it.
type testKey struct {
	secret               openpgp.EntityList
	cert                 openpgp.EntityList
	certFile, secretFile string
}

var keyCache sync.Map

func newKey(t testing.TB, name string) *testKey {
	t.Helper()
	if k, ok := keyCache.Load(name); ok {
		return k.(*testKey)
	}
	e, err := archive.GenerateKey(name, name+"@example.org")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cryophile-key")
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{certFile: filepath.Join(dir, "cert.asc"), secretFile: filepath.Join(dir, "secret.asc")}
	var pub, sec bytes.Buffer
	if err := archive.WritePublicKey(&pub, e); err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteSecretKey(&sec, e, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.certFile, pub.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.secretFile, sec.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if k.cert, err = archive.LoadRecipients(k.certFile); err != nil {
		t.Fatal(err)
	}
	if k.secret, err = archive.LoadSecretKeys(k.secretFile, nil); err != nil {
		t.Fatal(err)
	}
	keyCache.Store(name, k)
	return k
}

func testID(t testing.TB) archive.ID {
	t.Helper()
	id, err := archive.NewID(uuid.MustParse("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"), "host/pool", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// backup writes data as an archive to a memSink.
func backup(t testing.TB, data []byte, opts archive.WriterOptions) (*archive.Manifest, *memSink) {
	t.Helper()
	if opts.ID == (archive.ID{}) {
		opts.ID = testID(t)
	}
	if opts.FragmentSize == 0 {
		opts.FragmentSize = archive.MinFragmentSize
	}
	sink := newMemSink()
	w, err := archive.NewWriter(sink, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes exercise the hand-off's coalescing.
	for p := data; len(p) > 0; {
		n := min(len(p), 100_003)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m := w.Manifest()
	// The manifest must survive a JSON round trip.
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := archive.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m2, sink
}

// restore reads the archive back.
func restore(src archive.Source, m *archive.Manifest, keys openpgp.EntityList) ([]byte, error) {
	r, err := archive.NewReader(context.Background(), src, m, keys)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// compressible returns n bytes of text-like data.
func compressible(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"cryophile ", "glacier ", "zfs send ", "snapshot ", "tank/home ", "\n", "0123 ", "backup "}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
		if rng.IntN(7) == 0 {
			b = append(b, byte(rng.Uint32()))
		}
	}
	return b[:n]
}

// random returns n incompressible bytes.
func random(n int) []byte {
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}
