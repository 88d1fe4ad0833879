package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/google/uuid"
)

// dirSink writes fragments straight into a directory (a real sink stages,
// fsyncs and renames: see package spool).
type dirSink string

type dirFile struct{ *os.File }

func (f dirFile) Commit() error { return f.Close() }
func (f dirFile) Abort() error  { f.Close(); return os.Remove(f.Name()) }

func (d dirSink) Create(name string) (archive.FragmentFile, error) {
	f, err := os.OpenFile(filepath.Join(string(d), name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	return dirFile{f}, err
}

// Example backs a stream up into a directory and restores it, as
// `cryophile-restore --from DIR` does.
func Example() {
	dir, err := os.MkdirTemp("", "archive-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The backup host holds only the certificate.
	key, err := archive.GenerateKey("Backup Key", "backup@example.org")
	if err != nil {
		log.Fatal(err)
	}
	var cert, secret bytes.Buffer
	archive.WritePublicKey(&cert, key)
	archive.WriteSecretKey(&secret, key, nil)
	os.WriteFile(filepath.Join(dir, ".cert.asc"), cert.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, ".secret.asc"), secret.Bytes(), 0o600)

	recipients, err := archive.LoadRecipients(filepath.Join(dir, ".cert.asc"))
	if err != nil {
		log.Fatal(err)
	}
	id, _ := archive.NewID(uuid.MustParse("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"), "host/tank", time.Now())
	w, err := archive.NewWriter(dirSink(dir), archive.WriterOptions{ID: id, Recipients: recipients})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader("a zfs send stream\n")); err != nil {
		w.Abort()
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	b, _ := w.Manifest().Marshal()
	os.WriteFile(filepath.Join(dir, archive.ManifestName), b, 0o600)

	// The restore host holds the secret key.
	keys, err := archive.LoadSecretKeys(filepath.Join(dir, ".secret.asc"), nil)
	if err != nil {
		log.Fatal(err)
	}
	m, err := archive.ReadManifestFile(filepath.Join(dir, archive.ManifestName))
	if err != nil {
		log.Fatal(err)
	}
	if err := archive.CheckDir(dir, m); err != nil {
		log.Fatal(err)
	}
	r, err := archive.NewReader(context.Background(), archive.NewDirSource(dir), m, keys)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if _, err := io.Copy(os.Stdout, r); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Compression, m.Encryption.Mode, len(m.Fragments), "fragment(s)")
	// Output:
	// a zfs send stream
	// zstd seipdv1 1 fragment(s)
}
