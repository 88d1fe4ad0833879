package archive_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/cryophile/cryophile/archive"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSecretKeys(t *testing.T) {
	e, err := archive.GenerateKey("dave", "dave@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var pub, sec, locked, binary bytes.Buffer
	if err := archive.WritePublicKey(&pub, e); err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteSecretKey(&sec, e, nil); err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteSecretKey(&locked, e, []byte("sesame")); err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(&binary, nil); err != nil {
		t.Fatal(err)
	}
	pubFile := writeFile(t, "pub.asc", pub.Bytes())
	secFile := writeFile(t, "sec.asc", sec.Bytes())
	lockedFile := writeFile(t, "locked.asc", locked.Bytes())
	binFile := writeFile(t, "sec.gpg", binary.Bytes())
	junkFile := writeFile(t, "junk", []byte("not a key"))

	// The key written must work: encrypt to the certificate, decrypt with
	// each form of the secret key.
	cert, err := archive.LoadRecipients(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	m, sink := backup(t, []byte("hello"), archive.WriterOptions{Recipients: cert})

	for _, tt := range []struct {
		name     string
		file     string
		pass     string
		wantErr  error
		want     string
		wantCall int
	}{
		{name: "armored", file: secFile},
		{name: "binary", file: binFile},
		{name: "protected", file: lockedFile, pass: "sesame", wantCall: 1},
		{name: "wrong passphrase", file: lockedFile, pass: "open", wantErr: archive.ErrBadPassphrase, want: lockedFile, wantCall: 1},
		{name: "public only", file: pubFile, wantErr: archive.ErrNoSecretKey, want: pubFile},
		{name: "not a key", file: junkFile, want: junkFile},
		{name: "missing", file: filepath.Join(t.TempDir(), "nope"), wantErr: os.ErrNotExist, want: "nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			keys, err := archive.LoadSecretKeys(tt.file, func() ([]byte, error) {
				calls++
				return []byte(tt.pass), nil
			})
			if got, want := calls, tt.wantCall; got != want {
				t.Errorf("passphrase called %d times, want %d", got, want)
			}
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("LoadSecretKeys = %v, want error %v containing %q", err, tt.wantErr, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := restore(newMemSource(sink.committed), m, keys)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "hello" {
				t.Fatalf("restored %q", got)
			}
		})
	}
}

func TestLoadRecipients(t *testing.T) {
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	pa, _ := os.ReadFile(alice.certFile)
	pb, _ := os.ReadFile(bob.certFile)
	both := writeFile(t, "both.asc", append(append([]byte("comment\n"), pa...), pb...))
	el, err := archive.LoadRecipients(both, alice.secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(el), 3; got != want {
		t.Fatalf("%d certificates, want %d", got, want)
	}
	fps := archive.Fingerprints(el)
	if got, want := len(fps), 3; got != want {
		t.Fatalf("%d fingerprints, want %d", got, want)
	}
	for _, fp := range fps {
		if len(fp) != 40 || strings.ToUpper(fp) != fp {
			t.Errorf("fingerprint %q is not 40 upper-case hex digits", fp)
		}
	}

	// A signing-only key cannot be a recipient.
	e, err := archive.GenerateKey("sign", "sign@example.org")
	if err != nil {
		t.Fatal(err)
	}
	e.Subkeys = nil
	var buf bytes.Buffer
	if err := archive.WritePublicKey(&buf, e); err != nil {
		t.Fatal(err)
	}
	signOnly := writeFile(t, "signonly.asc", buf.Bytes())
	_, err = archive.LoadRecipients(signOnly)
	if err == nil || !strings.Contains(err.Error(), signOnly) || !strings.Contains(err.Error(), strings.ToUpper(fingerprintHex(e.PrimaryKey))) {
		t.Fatalf("LoadRecipients(sign-only) = %v, want error naming file and key", err)
	}

	// An expired key neither.
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: 1, Time: func() time.Time { return time.Now().Add(-time.Hour) }}
	old, err := openpgp.NewEntity("old", "", "old@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := archive.WritePublicKey(&buf, old); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.LoadRecipients(writeFile(t, "old.asc", buf.Bytes())); err == nil || !strings.Contains(err.Error(), "old.asc") {
		t.Fatalf("LoadRecipients(expired) = %v, want error naming the file", err)
	}

	if _, err := archive.LoadRecipients(filepath.Join(t.TempDir(), "missing.asc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadRecipients(missing) = %v, want ErrNotExist", err)
	}
}

func fingerprintHex(pk *packet.PublicKey) string {
	const digits = "0123456789ABCDEF"
	var b []byte
	for _, c := range pk.Fingerprint {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}

// TestRestoreWithOldKey: an archive outlives its key's validity, and a
// decryption subkey flagged for storage only is still a decryption key.
func TestRestoreWithOldKey(t *testing.T) {
	for _, aead := range []bool{false, true} {
		lifetime := uint32(3 * 3600)
		cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: lifetime, Time: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
		e, err := openpgp.NewEntity("old", "", "old@example.org", cfg)
		if err != nil {
			t.Fatal(err)
		}
		m, sink := backup(t, []byte("old data"), archive.WriterOptions{Recipients: openpgp.EntityList{e}, AEAD: aead})

		// Years later: the key has expired, and its subkey is flagged for
		// storage only (as sq --can-encrypt=storage makes them).
		one := uint32(1)
		for _, id := range e.Identities {
			id.SelfSignature.KeyLifetimeSecs = &one
		}
		e.Subkeys[0].Sig.FlagEncryptCommunications = false
		e.Subkeys[0].Sig.FlagEncryptStorage = true
		if _, ok := e.EncryptionKey(time.Now()); ok {
			t.Fatal("test key still valid for encryption")
		}
		got, err := restore(newMemSource(sink.committed), m, openpgp.EntityList{e})
		if err != nil {
			t.Fatalf("aead %v: %v", aead, err)
		}
		if string(got) != "old data" {
			t.Fatalf("aead %v: restored %q", aead, got)
		}
	}
}
