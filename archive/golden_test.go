package archive_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/cryophile/cryophile/archive"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden archives in testdata/")

// The golden archives hold compressible(100_000) as generated when they
// were written; .plaintext.sha256 records its digest, so the test does not
// depend on that generator staying the same.

// TestGoldenArchives reads archives written by an earlier version of this
// package (testdata/golden-*): cold storage is read back years later, so
// every change must still read them. go test -update rewrites them, which
// is only right when the format version changes.
func TestGoldenArchives(t *testing.T) {
	for _, tt := range []struct {
		dir         string
		compression string
		aead        bool
	}{
		{"golden-zstd-seipdv1", archive.CompressionZstd, false},
		{"golden-lz4-seipdv2", archive.CompressionLZ4, true},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", tt.dir)
			if *update {
				writeGolden(t, dir, tt.compression, tt.aead)
			}
			keys, err := archive.LoadSecretKeys(filepath.Join(dir, ".key.asc"), func() ([]byte, error) { return []byte("golden"), nil })
			if err != nil {
				t.Fatal(err)
			}
			m, err := archive.ReadManifestFile(filepath.Join(dir, archive.ManifestName))
			if err != nil {
				t.Fatal(err)
			}
			if err := archive.CheckDir(dir, m); err != nil {
				t.Fatal(err)
			}
			got, err := restore(archive.NewDirSource(dir), m, keys)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, ".plaintext.sha256"))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(got)
			if got := hex.EncodeToString(sum[:]) + "\n"; got != string(want) {
				t.Fatalf("restored plaintext has sha256 %s, want %s", got, want)
			}
		})
	}
}

func writeGolden(t *testing.T, dir, compression string, aead bool) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := archive.GenerateKey("Golden", "golden@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var sec bytes.Buffer
	if err := archive.WriteSecretKey(&sec, e, []byte("golden")); err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, filepath.Join(dir, ".key.asc"), sec.Bytes())
	id, err := archive.NewID(uuid.MustParse("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"), "golden", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	plain := compressible(100_000)
	sum := sha256.Sum256(plain)
	writeFileAt(t, filepath.Join(dir, ".plaintext.sha256"), []byte(hex.EncodeToString(sum[:])+"\n"))
	m, sink := backup(t, plain, archive.WriterOptions{
		ID: id, Recipients: openpgp.EntityList{e}, Compression: compression, AEAD: aead,
		Host: "golden-host", Label: "golden", Created: id.Time(),
	})
	for name, b := range sink.committed {
		writeFileAt(t, filepath.Join(dir, name), b)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, filepath.Join(dir, archive.ManifestName), b)
}
