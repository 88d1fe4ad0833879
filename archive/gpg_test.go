package archive_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
)

// gpgHome is a throw-away GnuPG home.
type gpgHome struct {
	t   *testing.T
	dir string
}

func newGPG(t *testing.T) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not on PATH")
	}
	// Short path: gpg-agent's socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", dir, "--kill", "all").Run()
		os.RemoveAll(dir)
	})
	return g
}

// run runs gpg with stdin and returns stdout.
func (g *gpgHome) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	return g.runPass("", stdin, args...)
}

// runPass runs gpg with a passphrase for the keys.
func (g *gpgHome) runPass(pass string, stdin []byte, args ...string) []byte {
	g.t.Helper()
	args = append([]string{"--homedir", g.dir, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", pass}, args...)
	cmd := exec.Command("gpg", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes()
}

func pipe(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not on PATH", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	return out
}

var decompressCmd = map[string][]string{
	archive.CompressionZstd: {"zstd", "-d", "-c"},
	archive.CompressionLZ4:  {"lz4", "-d", "-c"},
	archive.CompressionNone: {"cat"},
}

// TestGPGDecryptsOurArchives: `cat chunk.* | gpg --decrypt | zstd -d`
// recovers the stream, with a gpg-made key and with one of ours.
func TestGPGDecryptsOurArchives(t *testing.T) {
	t.Parallel() // mostly waiting for gpg or sq; runs after the goroutine-counting tests
	g := newGPG(t)
	// future-default: ed25519 + cv25519 on gpg 2.2 too (its default is RSA).
	g.run(nil, "--quick-gen-key", "x <x@example>", "future-default", "default", "never")
	gpgCert := writeFile(t, "gpg.pgp", g.run(nil, "--export", "x@example"))

	ours := newKey(t, "alice")
	b, _ := os.ReadFile(ours.secretFile)
	g.run(b, "--import")

	data := compressible(3<<20 + 777)
	t.Run("sizes", func(t *testing.T) {
		cert, err := archive.LoadRecipients(gpgCert)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 170, 200, 8300, 9000, 1<<20 - 30, 1 << 20} {
			_, sink := backup(t, data[:n], archive.WriterOptions{Recipients: cert, Compression: archive.CompressionNone})
			if got := g.run(sink.concat(), "--decrypt"); !bytes.Equal(got, data[:n]) {
				t.Fatalf("%d bytes: gpg gave %d bytes, differ", n, len(got))
			}
		}
	})
	for _, key := range []struct{ name, file string }{{"gpg key", gpgCert}, {"GenerateKey key", ours.certFile}} {
		cert, err := archive.LoadRecipients(key.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{archive.CompressionZstd, archive.CompressionLZ4, archive.CompressionNone} {
			t.Run(key.name+"/"+c, func(t *testing.T) {
				_, sink := backup(t, data, archive.WriterOptions{Recipients: cert, Compression: c})
				dec := g.run(sink.concat(), "--decrypt")
				got := pipe(t, dec, decompressCmd[c][0], decompressCmd[c][1:]...)
				if !bytes.Equal(got, data) {
					t.Fatalf("gpg | %s gave %d bytes, differ from the %d written", c, len(got), len(data))
				}
			})
		}
	}
}

// TestReadGPGMessage: a message gpg wrote, cut into fragments, with a
// manifest made here, is restored by our Reader with the key gpg made
// (gpg's default algorithm, RSA on 2.2), passphrase-protected.
func TestReadGPGMessage(t *testing.T) {
	t.Parallel() // mostly waiting for gpg or sq; runs after the goroutine-counting tests
	g := newGPG(t)
	g.runPass("pw", nil, "--quick-gen-key", "x <x@example>", "default", "default", "never")
	cert, err := archive.LoadRecipients(writeFile(t, "gpg.asc", g.run(nil, "--export", "--armor", "x@example")))
	if err != nil {
		t.Fatal(err)
	}
	secretFile := writeFile(t, "gpg-secret.pgp", g.runPass("pw", nil, "--export-secret-keys", "x@example"))
	if _, err := archive.LoadSecretKeys(secretFile, func() ([]byte, error) { return []byte("wrong"), nil }); !errors.Is(err, archive.ErrBadPassphrase) {
		t.Fatalf("LoadSecretKeys(wrong passphrase) = %v, want ErrBadPassphrase", err)
	}
	secret, err := archive.LoadSecretKeys(secretFile, func() ([]byte, error) { return []byte("pw"), nil })
	if err != nil {
		t.Fatal(err)
	}

	var dir string
	data := compressible(2<<20 + 99)
	compressed := pipe(t, data, "zstd", "-1", "-c")
	for _, algo := range []string{"none", "zlib"} {
		msg := g.run(compressed, "--encrypt", "--compress-algo", algo, "--trust-model", "always", "-r", "x@example")

		m, frags := splitMessage(t, msg, int64(len(data)), archive.CompressionZstd, archive.Fingerprints(cert))
		dir = writeDir(t, m, frags)
		got, err := restore(archive.NewDirSource(dir), m, secret)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("restored %d bytes, differ from the %d gpg encrypted", len(got), len(data))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "chunk.000001")); err != nil {
		t.Fatal(err)
	}
}

// splitMessage cuts an OpenPGP message made by another program into
// fragments and makes the manifest that describes them.
func splitMessage(t *testing.T, msg []byte, plaintext int64, compression string, recipients []string) (*archive.Manifest, map[string][]byte) {
	t.Helper()
	m := &archive.Manifest{
		Format:          archive.FormatVersion,
		BackupID:        testID(t).String(),
		Created:         time.Now().UTC(),
		Compression:     compression,
		Encryption:      archive.Encryption{Mode: archive.ModeSEIPDv1, Recipients: recipients},
		PlaintextBytes:  plaintext,
		CiphertextBytes: int64(len(msg)),
		FragmentSize:    100_000,
	}
	frags := map[string][]byte{}
	for i, rest := 1, msg; len(rest) > 0; i++ {
		n := min(len(rest), int(m.FragmentSize))
		name := archive.FragmentName(i)
		frags[name] = rest[:n]
		sum := sha256.Sum256(rest[:n])
		m.Fragments = append(m.Fragments, archive.Fragment{Name: name, Size: int64(n), SHA256: hex.EncodeToString(sum[:])})
		rest = rest[n:]
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m, frags
}

func writeFileAt(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
