package archive_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryophile/cryophile/archive"
)

// writeDir writes an archive as `cryophile-restore --from DIR` expects it.
func writeDir(t *testing.T, m *archive.Manifest, frags map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range frags {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, archive.ManifestName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDirSource(t *testing.T) {
	alice := newKey(t, "alice")
	data := compressible(3 << 20)
	m0, sink := backup(t, data, archive.WriterOptions{Recipients: alice.cert, Compression: archive.CompressionNone})
	dir := writeDir(t, m0, sink.committed)
	if err := os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	m, err := archive.ReadManifestFile(filepath.Join(dir, archive.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.CheckDir(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := restore(archive.NewDirSource(dir), m, alice.secret)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("restored data differs")
	}
	for _, f := range m.Fragments { // Done deletes nothing
		if _, err := os.Stat(filepath.Join(dir, f.Name)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("extra file", func(t *testing.T) {
		extra := filepath.Join(dir, "chunk.000099")
		os.WriteFile(extra, nil, 0o600)
		defer os.Remove(extra)
		err := archive.CheckDir(dir, m)
		if !errors.Is(err, archive.ErrCorrupt) || !strings.Contains(err.Error(), "chunk.000099") {
			t.Fatalf("CheckDir = %v, want ErrCorrupt naming chunk.000099", err)
		}
	})
	t.Run("missing fragment", func(t *testing.T) {
		last := m.Fragments[len(m.Fragments)-1].Name
		p := filepath.Join(dir, last)
		b, _ := os.ReadFile(p)
		os.Remove(p)
		defer os.WriteFile(p, b, 0o600)
		_, err := restore(archive.NewDirSource(dir), m, alice.secret)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), last) {
			t.Fatalf("restore = %v, want ErrNotExist naming %s", err, last)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		p := filepath.Join(dir, "chunk.000001")
		moved := filepath.Join(t.TempDir(), "real")
		if err := os.Rename(p, moved); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(moved, p)
		if err := os.Symlink(moved, p); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		_, err := restore(archive.NewDirSource(dir), m, alice.secret)
		if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), "chunk.000001") {
			t.Fatalf("restore = %v, want a refused symbolic link", err)
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		b, _ := os.ReadFile(filepath.Join(dir, archive.ManifestName))
		b = bytes.Replace(b, []byte(`"cryophile/1"`), []byte(`"cryophile/2"`), 1)
		p := writeFile(t, archive.ManifestName, b)
		_, err := archive.ReadManifestFile(p)
		if !errors.Is(err, archive.ErrUnknownFormat) || !strings.Contains(err.Error(), p) {
			t.Fatalf("ReadManifestFile = %v, want ErrUnknownFormat naming %s", err, p)
		}
	})
}
