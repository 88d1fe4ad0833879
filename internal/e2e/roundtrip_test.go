//go:build integration

package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const mib = 1 << 20

// TestRoundTrip backs up and restores through the spool, bit-identical, for
// every compression, for empty and 1-byte input, for ciphertexts of exactly
// one fragment and one byte either side of it, and for many fragments.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t, "")
	cert, secret := e.gpgKey("alice", "")
	restore := func(t *testing.T, id string, data []byte, name string) {
		t.Helper()
		e.thaw(id)
		out := filepath.Join(e.dir, "out-"+strings.NewReplacer("/", "_", " ", "_").Replace(name))
		r := e.run(nil, "cryophile-restore", "--vault", vaultID, "--prefix", "host/pool", "--ulid", filepath.Base(id), "--key", secret, "--output", out)
		if r.code != 0 {
			t.Fatalf("restore: exit %d\n%s", r.code, r.stderr)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(data) || sha(got) != sha(data) {
			t.Fatalf("restored %d bytes (sha256 %s), want %d (%s)", len(got), sha(got), len(data), sha(data))
		}
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("output mode = %v, want 0600", st.Mode().Perm())
		}
		if _, err := os.Stat(filepath.Join(e.spool, "restore", id)); !os.IsNotExist(err) {
			t.Errorf("restore/%s still exists after a restore without --keep (err %v)", id, err)
		}
	}
	backup := func(t *testing.T, data []byte, comp string) (string, manifest) {
		t.Helper()
		id := e.backup(data, "--recipient", cert, "--size", "1M", "--compression", comp, "--prefix", "host/pool")
		dir := filepath.Join(e.spool, "freeze", id)
		m := readManifest(t, filepath.Join(dir, "manifest.json"))
		if got, want := m.Compression, comp; got != want {
			t.Errorf("manifest compression = %q, want %q", got, want)
		}
		if got, want := m.PlaintextBytes, int64(len(data)); got != want {
			t.Errorf("manifest plaintext_bytes = %d, want %d", got, want)
		}
		if got, want := len(fragments(t, dir)), len(m.Fragments); got != want {
			t.Errorf("%d fragments in freeze/, manifest lists %d", got, want)
		}
		return id, m
	}
	for _, comp := range []string{"zstd", "lz4", "none"} {
		for i, n := range []int{0, 1, 5*mib + 12345} {
			name := fmt.Sprintf("%s/%d bytes", comp, n)
			t.Run(name, func(t *testing.T) {
				data := randomBytes(n, uint64(i))
				id, m := backup(t, data, comp)
				if n > 5*mib && len(m.Fragments) < 5 {
					t.Errorf("%d fragments for %d random bytes, want at least 5", len(m.Fragments), n)
				}
				restore(t, id, data, name)
			})
		}
	}
	// The ciphertext is the plaintext plus OpenPGP framing; find plaintext
	// sizes whose ciphertext is exactly one fragment, and one byte either
	// side, by measuring.
	for _, delta := range []int{-1, 0, +1} {
		name := fmt.Sprintf("ciphertext fragment%+d", delta)
		t.Run(name, func(t *testing.T) {
			target := int64(mib + delta)
			n := mib - 512
			for try := 0; ; try++ {
				data := randomBytes(n, 42)
				id, m := backup(t, data, "none")
				var c int64
				for _, f := range m.Fragments {
					c += f.Size
				}
				if c == target {
					if got, want := len(m.Fragments), 1+max(0, delta); got != want {
						t.Errorf("%d fragments for a %d-byte ciphertext, want %d", got, c, want)
					}
					restore(t, id, data, name)
					return
				}
				if try == 8 {
					t.Fatalf("could not hit a %d-byte ciphertext (last %d for %d bytes)", target, c, n)
				}
				n += int(target - c)
			}
		})
	}
}

// TestRecipients encrypts to three certificates; each secret key alone
// restores the archive.
func TestRecipients(t *testing.T) {
	e := newEnv(t, "")
	var certs, secrets []string
	for _, name := range []string{"alice", "bob", "carol"} {
		c, s := e.gpgKey(name, "")
		certs, secrets = append(certs, c), append(secrets, s)
	}
	data := testData(3*mib, 7)
	id := e.backup(data, "--recipient", certs[0], "--recipient", certs[1], "--recipient", certs[2], "--size", "1M")
	m := readManifest(t, filepath.Join(e.spool, "freeze", id, "manifest.json"))
	if got, want := len(m.Encryption.Recipients), 3; got != want {
		t.Errorf("manifest lists %d recipients, want %d", got, want)
	}
	src := filepath.Join(e.spool, "freeze", id)
	for i, secret := range secrets {
		out := filepath.Join(e.dir, "out", filepath.Base(secret))
		os.MkdirAll(filepath.Dir(out), 0o755)
		r := e.run(nil, "cryophile-restore", "--from", src, "--key", secret, "--output", out)
		if r.code != 0 {
			t.Fatalf("restore with key %d: exit %d\n%s", i, r.code, r.stderr)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, data) {
			t.Fatalf("restore with key %d: %d bytes differ from the %d backed up", i, len(got), len(data))
		}
	}
	// --from never deletes the user's files.
	if got := len(fragments(t, src)); got != len(m.Fragments) {
		t.Errorf("--from left %d fragments, want %d", got, len(m.Fragments))
	}
}

// TestStandardTools decrypts cryophile's fragments with cat | gpg | zstd/lz4.
func TestStandardTools(t *testing.T) {
	need(t, "gpg", "zstd", "lz4")
	e := newEnv(t, "")
	cert, _ := e.gpgKey("alice", "")
	for _, tc := range []struct{ comp, tool string }{{"zstd", "zstd"}, {"lz4", "lz4"}} {
		t.Run(tc.comp, func(t *testing.T) {
			data := testData(3*mib+17, 3)
			id := e.backup(append([]byte(nil), data...), "--recipient", cert, "--size", "1M", "--compression", tc.comp)
			dir := filepath.Join(e.spool, "freeze", id)
			sh := "cat " + dir + "/chunk.* | gpg --homedir " + filepath.Join(e.dir, "gnupg") +
				" --batch --quiet --pinentry-mode loopback --passphrase '' --decrypt | " + tc.tool + " -d -c"
			out, err := exec.Command("sh", "-c", sh).Output()
			if err != nil {
				t.Fatalf("%s: %v", sh, err)
			}
			if !bytes.Equal(out, data) {
				t.Fatalf("gpg | %s gave %d bytes, want the %d backed up", tc.tool, len(out), len(data))
			}
		})
	}
}

// TestRestoreReadsGPG restores what gpg itself encrypted and split, with a
// hand-written manifest.
func TestRestoreReadsGPG(t *testing.T) {
	need(t, "gpg", "zstd", "split")
	e := newEnv(t, "")
	_, secret := e.gpgKey("alice", "")
	data := testData(2*mib+99, 11)
	in := filepath.Join(e.dir, "plain")
	os.WriteFile(in, data, 0o600)
	dir := filepath.Join(e.dir, "fromgpg")
	os.Mkdir(dir, 0o755)
	sh := "zstd -q -c " + in + " | gpg --homedir " + filepath.Join(e.dir, "gnupg") +
		" --batch --quiet --trust-model always --compress-algo none -r alice@example.org --encrypt | split -b 1048576 -a 6 -d --numeric-suffixes=1 - " + dir + "/chunk."
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, out)
	}
	writeManifest(t, dir, int64(len(data)), "zstd")
	out := filepath.Join(e.dir, "restored")
	r := e.run(nil, "cryophile-restore", "--from", dir, "--key", secret, "--output", out)
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s", r.code, r.stderr)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes, want the %d gpg encrypted", len(got), len(data))
	}
}

// manifest is the part of manifest.json these tests look at.
type manifest struct {
	Format         string `json:"format"`
	BackupID       string `json:"backup_id"`
	Compression    string `json:"compression"`
	PlaintextBytes int64  `json:"plaintext_bytes"`
	Encryption     struct {
		Mode       string   `json:"mode"`
		Recipients []string `json:"recipients"`
	} `json:"encryption"`
	Fragments []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"fragments"`
}

func readManifest(t testing.TB, path string) manifest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// writeManifest writes a manifest for the chunk.* files of dir, as a user
// recovering a foreign archive would.
func writeManifest(t testing.TB, dir string, plain int64, comp string) {
	t.Helper()
	type frag struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	var frags []frag
	var total int64
	for _, p := range fragments(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		frags = append(frags, frag{filepath.Base(p), int64(len(b)), sha(b)})
		total += int64(len(b))
	}
	m := map[string]any{
		"format":           "cryophile/1",
		"backup_id":        vaultID + "/01KAZ3M5Q8Y2X7N4H0B6C9D1EF",
		"created":          "2026-11-25T03:00:00Z",
		"compression":      comp,
		"encryption":       map[string]any{"mode": "seipdv1", "recipients": []string{}},
		"plaintext_bytes":  plain,
		"ciphertext_bytes": total,
		"fragment_size":    1 << 20,
		"fragments":        frags,
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
