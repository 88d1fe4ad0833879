package spool_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		wantErr []error
	}{
		{"fresh directory", func(t *testing.T) string { return t.TempDir() }, nil},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, []error{spool.ErrSpool, fs.ErrNotExist}},
		{"a file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "f")
			mustWrite(t, p, nil)
			return p
		}, []error{spool.ErrSpool}},
		{"queue is a symlink", func(t *testing.T) string {
			root := t.TempDir()
			if err := os.Symlink(t.TempDir(), filepath.Join(root, spool.QueueFreeze)); err != nil {
				t.Fatal(err)
			}
			return root
		}, []error{spool.ErrSpool}},
		{"queue is a file", func(t *testing.T) string {
			root := t.TempDir()
			mustWrite(t, filepath.Join(root, spool.QueueThaw), nil)
			return root
		}, []error{spool.ErrSpool}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tt.setup(t)
			s, err := spool.Open(root)
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Fatalf("Open(%s) = %v, want an error wrapping %v", root, err, want)
				}
			}
			if len(tt.wantErr) > 0 {
				if !bytes.Contains([]byte(err.Error()), []byte(root)) {
					t.Errorf("error %q does not name %s", err, root)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Root(); got != root {
				t.Errorf("Root() = %q, want %q", got, root)
			}
			for _, q := range spool.Queues {
				fi, err := os.Lstat(filepath.Join(root, q))
				if err != nil || !fi.IsDir() {
					t.Fatalf("queue %s: %v, %v", q, fi, err)
				}
				if fi.Mode().Perm()&0o007 != 0 {
					t.Errorf("queue %s mode %v, want no access for others", q, fi.Mode())
				}
			}
		})
	}
}

func TestOpenReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere")
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(root, 0o700)
	if _, err := spool.Open(root); !errors.Is(err, spool.ErrSpool) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Open(read-only) = %v, want ErrSpool and ErrPermission", err)
	}
}

func TestDir(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "host/pool")
	if got, want := s.Dir(spool.QueueFreeze, id), filepath.Join(s.Root(), "freeze", id.Vault.String(), "host", "pool", id.ULID.String()); got != want {
		t.Errorf("Dir = %s, want %s", got, want)
	}
	if got, want := s.Dir(spool.QueueRestore, archive.ID{}), filepath.Join(s.Root(), "restore"); got != want {
		t.Errorf("Dir(zero ID) = %s, want %s", got, want)
	}
}

func TestPublishFile(t *testing.T) {
	root := t.TempDir()
	staging := filepath.Join(root, "staging")
	queue := filepath.Join(root, "queue")
	for _, d := range []string{staging, queue} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	content := bytes.Repeat([]byte("cryophile"), 100000)

	// Nothing is visible in the queue while the file is being written.
	err := spool.PublishFile(staging, queue, "chunk.000001", func(w io.Writer) error {
		for i := 0; i < len(content); i += 4096 {
			if _, err := w.Write(content[i:min(i+4096, len(content))]); err != nil {
				return err
			}
			if got := names(t, queue); len(got) != 0 {
				t.Fatalf("queue shows %v while the file is being written", got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(queue, "chunk.000001")
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("published file: %d bytes, %v; want %d bytes", len(got), err, len(content))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm()&0o027 != 0 {
		t.Errorf("published mode %v, want at most 0640", fi.Mode())
	}
	if got := names(t, staging); len(got) != 0 {
		t.Errorf("staging left %v", got)
	}

	tests := []struct {
		name  string
		queue string
		file  string
		write func(io.Writer) error
		want  error
	}{
		{"existing name is not replaced", queue, "chunk.000001", func(w io.Writer) error { _, err := w.Write([]byte("other")); return err }, fs.ErrExist},
		{"failed write publishes nothing", queue, "chunk.000002", func(w io.Writer) error { w.Write([]byte("half")); return io.ErrUnexpectedEOF }, io.ErrUnexpectedEOF},
		{"queue symlink is not followed", filepath.Join(root, "link"), "chunk.000003", func(w io.Writer) error { return nil }, spool.ErrSpool},
		{"path in name", queue, "../x", func(w io.Writer) error { return nil }, archive.ErrInvalidID},
		{"hidden name", queue, ".x", func(w io.Writer) error { return nil }, archive.ErrInvalidID},
	}
	if err := os.Symlink(queue, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := spool.PublishFile(staging, tt.queue, tt.file, tt.write)
			if !errors.Is(err, tt.want) {
				t.Fatalf("PublishFile = %v, want an error wrapping %v", err, tt.want)
			}
			if got := names(t, staging); len(got) != 0 {
				t.Errorf("staging left %v", got)
			}
			if got, want := names(t, queue), []string{"chunk.000001"}; !slices.Equal(got, want) {
				t.Errorf("queue holds %v, want %v", got, want)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
				t.Errorf("published file changed")
			}
		})
	}
}

func TestPublishBytes(t *testing.T) {
	root := t.TempDir()
	if err := spool.PublishBytes(root, root, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := spool.PublishBytes(root, root, "a", []byte("y")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second PublishBytes = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a")); string(b) != "x" {
		t.Fatalf("content %q, want x", b)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.lock")
	l, err := spool.Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spool.Lock(p); !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	l2, err := spool.Lock(p)
	if err != nil {
		t.Fatalf("Lock after Close = %v", err)
	}
	l2.Close()

	// Another process.
	holdLockInOtherProcess(t, p)
	if _, err := spool.Lock(p); !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("Lock held by another process = %v, want ErrLocked", err)
	}

	// A symlink is not followed.
	target := filepath.Join(dir, "target")
	mustWrite(t, target, nil)
	link := filepath.Join(dir, "link.lock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := spool.Lock(link); !errors.Is(err, spool.ErrNotRegular) {
		t.Fatalf("Lock(symlink) = %v, want ErrNotRegular", err)
	}
}

func TestLockDaemon(t *testing.T) {
	s := openSpool(t)
	l, err := s.LockDaemon("freeze")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := s.LockDaemon("freeze"); !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second LockDaemon = %v, want ErrLocked", err)
	}
	l2, err := s.LockDaemon("thaw")
	if err != nil {
		t.Fatalf("LockDaemon(thaw) = %v", err)
	}
	l2.Close()
}

func TestArchives(t *testing.T) {
	s := openSpool(t)
	a, b := newID(t, "host/pool"), newID(t, "")
	da, db := s.Dir(spool.QueueFreeze, a), s.Dir(spool.QueueFreeze, b)
	for _, n := range []string{"chunk.000010", "chunk.000002", "chunk.1000000", ".chunk.000003.tmp", "junk"} {
		mustWrite(t, filepath.Join(da, n), []byte(n))
	}
	outside := filepath.Join(t.TempDir(), "secret")
	mustWrite(t, outside, []byte("secret"))
	mustWrite(t, filepath.Join(db, "chunk.000001"), []byte("1"))
	if err := os.Symlink(outside, filepath.Join(db, "chunk.000002")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(db, archive.ManifestName)); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(da, archive.ManifestName), []byte("{}"))
	// Not archives: a non-UUID vault, a symlinked vault.
	mustWrite(t, filepath.Join(s.Root(), "freeze", "not-a-vault", a.ULID.String(), "chunk.000001"), nil)
	if err := os.Symlink(filepath.Dir(da), filepath.Join(s.Root(), "freeze", newID(t, "").Vault.String())); err != nil {
		t.Fatal(err)
	}

	got, err := s.Archives(spool.QueueFreeze)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]spool.ArchiveDir{
		a.String(): {ID: a, Path: da, Fragments: []string{"chunk.000002", "chunk.000010", "chunk.1000000"}, HasManifest: true, Other: []string{"junk"}},
		b.String(): {ID: b, Path: db, Fragments: []string{"chunk.000001"}, Other: []string{"chunk.000002", archive.ManifestName}},
	}
	if len(got) != len(want) {
		t.Fatalf("Archives = %+v, want %d archives", got, len(want))
	}
	for _, g := range got {
		w := want[g.ID.String()]
		if g.ID != w.ID || g.Path != w.Path || !slices.Equal(g.Fragments, w.Fragments) || g.HasManifest != w.HasManifest || !slices.Equal(g.Other, w.Other) {
			t.Errorf("archive %s = %+v, want %+v", g.ID, g, w)
		}
	}
}

func TestUsage(t *testing.T) {
	s := openSpool(t)
	id := newID(t, "p")
	mustWrite(t, filepath.Join(s.Dir(spool.QueueFreeze, id), "chunk.000001"), make([]byte, 1000))
	mustWrite(t, filepath.Join(s.Dir(spool.QueueRestore, id), "chunk.000001"), make([]byte, 300))
	mustWrite(t, filepath.Join(s.Root(), spool.QueueThaw, "r.json"), make([]byte, 7))
	if err := os.Symlink("/etc/passwd", filepath.Join(s.Root(), spool.QueueFreeze, "l")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		queues []string
		want   int64
	}{
		{[]string{spool.QueueFreeze}, 1000},
		{[]string{spool.QueueFreeze, spool.QueueRestore}, 1300},
		{nil, 1307},
	}
	for _, tt := range tests {
		got, err := s.Usage(tt.queues...)
		if err != nil || got != tt.want {
			t.Errorf("Usage(%v) = %d, %v; want %d", tt.queues, got, err, tt.want)
		}
	}
}

func TestRemoveArchive(t *testing.T) {
	s := openSpool(t)
	a, b := newID(t, "host/pool"), newID(t, "host/other")
	b.Vault = a.Vault
	mustWrite(t, filepath.Join(s.Dir(spool.QueueRestore, a), archive.ManifestName), nil)
	mustWrite(t, filepath.Join(s.Dir(spool.QueueRestore, b), archive.ManifestName), nil)
	if err := s.RemoveRestored(a); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Dir(s.Dir(spool.QueueRestore, a))) {
		t.Errorf("empty prefix directory %s left", filepath.Dir(s.Dir(spool.QueueRestore, a)))
	}
	if !exists(s.Dir(spool.QueueRestore, b)) {
		t.Errorf("another archive's directory removed")
	}
	if err := s.RemoveRestored(a); err != nil {
		t.Fatalf("second RemoveRestored = %v", err)
	}
	if err := s.RemoveRestored(b); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(s.Root(), spool.QueueRestore)); len(got) != 0 {
		t.Errorf("restore/ holds %v after removing everything", got)
	}
}

func TestStagingDir(t *testing.T) {
	s := openSpool(t)
	dir, err := s.StagingDir(spool.QueueThaw)
	if err != nil {
		t.Fatal(err)
	}
	queue := s.Dir(spool.QueueThaw, archive.ID{})
	if err := spool.PublishBytes(dir, queue, "r.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crashed producer: one old, one fresh.
	oldTmp := filepath.Join(dir, ".r2.json.0123.tmp")
	newTmp := filepath.Join(dir, ".r3.json.4567.tmp")
	mustWrite(t, oldTmp, []byte("partial"))
	mustWrite(t, newTmp, []byte("partial"))
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(oldTmp, old, old)
	removed, err := s.CleanupStaging(24 * time.Hour)
	if err != nil || !slices.Equal(removed, []string{oldTmp}) {
		t.Fatalf("CleanupStaging = %v, %v; want [%s]", removed, err, oldTmp)
	}
	if !exists(newTmp) || !exists(filepath.Join(queue, "r.json")) {
		t.Errorf("CleanupStaging removed a fresh staging file or a published one")
	}
	// The staging directory is invisible to listings.
	if got, err := s.Archives(spool.QueueThaw); err != nil || len(got) != 0 {
		t.Errorf("Archives(thaw) = %v, %v", got, err)
	}
}
