package archive_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cryophile/cryophile/archive"
)

func sq(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	return pipe(t, stdin, "sq", args...)
}

// TestSQ: Sequoia's sq (0.27 here) generates keys and certificates in armor
// with comments, may flag encryption subkeys for storage only, decrypts
// what we write and writes what we read.
func TestSQ(t *testing.T) {
	t.Parallel() // mostly waiting for gpg or sq; runs after the goroutine-counting tests
	if _, err := exec.LookPath("sq"); err != nil {
		t.Skip("sq not on PATH")
	}
	data := compressible(1<<20 + 333)
	for _, purpose := range []string{"universal", "storage"} {
		t.Run(purpose, func(t *testing.T) {
			dir := t.TempDir()
			keyFile, certFile := filepath.Join(dir, "key.asc"), filepath.Join(dir, "cert.asc")
			sq(t, nil, "key", "generate", "--userid", "y <y@example>", "--can-encrypt", purpose, "--export", keyFile)
			cert := sq(t, nil, "key", "extract-cert", keyFile)
			writeFileAt(t, certFile, cert)

			recipients, err := archive.LoadRecipients(certFile)
			if err != nil {
				t.Fatal(err)
			}
			m, sink := backup(t, data, archive.WriterOptions{Recipients: recipients, Compression: archive.CompressionNone})
			if got := sq(t, sink.concat(), "decrypt", "--recipient-key", keyFile); !bytes.Equal(got, data) {
				t.Fatalf("sq decrypt gave %d bytes, differ from the %d written", len(got), len(data))
			}

			keys, err := archive.LoadSecretKeys(keyFile, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := restore(newMemSource(sink.committed), m, keys)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("restore: %v (%d bytes)", err, len(got))
			}

			msg := sq(t, data, "encrypt", "--binary", "--mode", "rest", "--compression", "none", "--recipient-cert", certFile)
			m, frags := splitMessage(t, msg, int64(len(data)), archive.CompressionNone, archive.Fingerprints(recipients))
			got, err = restore(newMemSource(frags), m, keys)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("restore of sq's message: %v (%d bytes)", err, len(got))
			}
		})
	}
}
