//go:build reliability

package reliability_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryophile/cryophile/archive"
)

// plainArchive is an archive copied out of freeze/ into a plain directory
// (as a USB copy would be), with the plaintext it holds.
type plainArchive struct {
	dir   string
	m     *archive.Manifest
	plain []byte
	frags [][]byte
}

// archiveDir backs plain up and copies the result into a new directory.
func (e *env) archiveDir(plain []byte, args ...string) *plainArchive {
	e.t.Helper()
	id := e.backup(bytes.NewReader(plain), args...)
	src := filepath.Join(e.spool, "freeze", id.Dir())
	m, err := archive.ReadManifestFile(filepath.Join(src, archive.ManifestName))
	if err != nil {
		e.t.Fatal(err)
	}
	a := &plainArchive{dir: e.scratch(), m: m, plain: plain}
	for _, f := range m.Fragments {
		b, err := os.ReadFile(filepath.Join(src, f.Name))
		if err != nil {
			e.t.Fatal(err)
		}
		a.frags = append(a.frags, b)
	}
	a.write(m, a.frags)
	return a
}

// write replaces the directory's content by m and frags.
func (a *plainArchive) write(m *archive.Manifest, frags [][]byte) {
	ents, _ := os.ReadDir(a.dir)
	for _, e := range ents {
		os.Remove(filepath.Join(a.dir, e.Name()))
	}
	for i, f := range frags {
		os.WriteFile(filepath.Join(a.dir, archive.FragmentName(i+1)), f, 0o600)
	}
	b, err := marshal(m)
	if err != nil {
		panic(err)
	}
	os.WriteFile(filepath.Join(a.dir, archive.ManifestName), b, 0o600)
}

// marshal marshals m without validating it (a forger does not validate).
func marshal(m *archive.Manifest) ([]byte, error) {
	c := *m
	return c.Marshal()
}

// forge returns a copy of m whose fragment list matches frags (sizes,
// SHA-256s, ciphertext_bytes): what someone who controls the vault can do.
func forge(m *archive.Manifest, frags [][]byte) *archive.Manifest {
	c := *m
	c.Fragments = nil
	c.CiphertextBytes = 0
	for i, f := range frags {
		s := sha256.Sum256(f)
		c.Fragments = append(c.Fragments, archive.Fragment{Name: archive.FragmentName(i + 1), Size: int64(len(f)), SHA256: hex.EncodeToString(s[:])})
		c.CiphertextBytes += int64(len(f))
	}
	return &c
}

// restoreFrom runs restore --from dir to stdout and to --output; it returns
// both results, stdout's bytes and whether the --output file exists.
func (e *env) restoreFrom(dir, key string) (toStdout result, toFile result, outputLeft bool) {
	e.t.Helper()
	toStdout = e.run(nil, "cryophile-restore", "--from", dir, "--key", key)
	out := filepath.Join(e.scratch(), "out")
	toFile = e.run(nil, "cryophile-restore", "--from", dir, "--key", key, "--output", out)
	_, err := os.Stat(out)
	return toStdout, toFile, err == nil
}

// TestCrypto: bit flips at the start, middle and end of the message (with
// and without a forged manifest), a truncated message, swapped fragments of
// two archives under a forged manifest, a key that is not a recipient: each
// is refused with exit 65 and a message naming the fragment or key; no
// --output file is left; stdout never holds bytes that are not a prefix of
// the real plaintext when the manifest was not forged (or with --aead), and
// never the whole plaintext.
func TestCrypto(t *testing.T) {
	sc := begin(t, "7 crypto tampering")
	e := newEnv(t, "", "")
	_, mallory := e.key("mallory", nil)
	for _, mode := range []struct {
		name string
		args []string
	}{{"seipdv1", nil}, {"aead", []string{"--aead"}}} {
		plain, _ := data(3*mib+12345, 7)
		otherPlain, _ := data(3*mib+12345, 8)
		base := []string{"--size", "1M", "--compression", "none"}
		a := e.archiveDir(plain, append(base, mode.args...)...)
		b := e.archiveDir(otherPlain, append(base, mode.args...)...)
		if len(a.frags) < 3 {
			t.Fatalf("%d fragments, want ≥ 3", len(a.frags))
		}
		// The untouched archive restores.
		{
			run := sc.run()
			r := e.run(nil, "cryophile-restore", "--from", a.dir, "--key", e.secret)
			if r.code != 0 || r.stdout != string(plain) {
				run.errorf("%s: untouched archive: exit %d, %d bytes\n%s", mode.name, r.code, len(r.stdout), r.stderr)
			}
			sc.checked(int64(len(plain)))
		}
		total := a.m.CiphertextBytes
		flip := func(off int64) [][]byte {
			fr := make([][]byte, len(a.frags))
			for i := range a.frags {
				fr[i] = bytes.Clone(a.frags[i])
			}
			for i := range fr {
				if off < int64(len(fr[i])) {
					fr[i][off] ^= 0x01
					break
				}
				off -= int64(len(fr[i]))
			}
			return fr
		}
		last := len(a.frags) - 1
		cases := []struct {
			name    string
			m       func() (*archive.Manifest, [][]byte)
			forged  bool
			mention string
		}{
			{"flip start", func() (*archive.Manifest, [][]byte) { return a.m, flip(40) }, false, "chunk.000001"},
			{"flip middle", func() (*archive.Manifest, [][]byte) { return a.m, flip(total / 2) }, false, "chunk.000002"},
			{"flip end", func() (*archive.Manifest, [][]byte) { return a.m, flip(total - 3) }, false, archive.FragmentName(last + 1)},
			// Byte 40 is in the session key packet: damage, named as such.
			{"forged flip start", func() (*archive.Manifest, [][]byte) { f := flip(40); return forge(a.m, f), f }, true, "chunk.000001"},
			{"forged flip middle", func() (*archive.Manifest, [][]byte) { f := flip(total / 2); return forge(a.m, f), f }, true, ""},
			{"forged flip end", func() (*archive.Manifest, [][]byte) { f := flip(total - 3); return forge(a.m, f), f }, true, ""},
			{"truncated", func() (*archive.Manifest, [][]byte) {
				f := append([][]byte(nil), a.frags...)
				f[last] = a.frags[last][:len(a.frags[last])/2]
				return forge(a.m, f), f
			}, true, ""},
			{"last fragment dropped", func() (*archive.Manifest, [][]byte) {
				f := append([][]byte(nil), a.frags[:last]...)
				return forge(a.m, f), f
			}, true, ""},
			{"swapped with another archive", func() (*archive.Manifest, [][]byte) {
				f := append([][]byte(nil), a.frags...)
				f[1] = b.frags[1]
				return forge(a.m, f), f
			}, true, ""},
		}
		for _, c := range cases {
			run := sc.run()
			m, frags := c.m()
			a.write(m, frags)
			std, file, left := e.restoreFrom(a.dir, e.secret)
			for _, r := range []result{std, file} {
				if r.code != exitData {
					run.errorf("%s/%s: exit %d, want %d\n%s", mode.name, c.name, r.code, exitData, r.stderr)
				}
				if c.mention != "" && !strings.Contains(r.stderr, c.mention) {
					run.errorf("%s/%s: message does not name %s: %s", mode.name, c.name, c.mention, r.stderr)
				}
			}
			if left {
				run.errorf("%s/%s: --output file left after a failed restore", mode.name, c.name)
			}
			out := []byte(std.stdout)
			// SEIPDv2's final tag (the flip at the very end) authenticates
			// the chunk count: every chunk before it was authenticated, so
			// all of the plaintext may be out when it fails.
			if bytes.Equal(out, plain) && !(mode.name == "aead" && c.name == "forged flip end") {
				run.errorf("%s/%s: the whole plaintext was written although restore failed", mode.name, c.name)
			}
			// What may have been written: with --aead, only authenticated
			// bytes; with SEIPDv1 and an honest manifest, only bytes of
			// fragments that matched their SHA-256.
			if (!c.forged || mode.name == "aead") && !bytes.HasPrefix(plain, out) {
				run.errorf("%s/%s: stdout holds %d bytes that are not a prefix of the plaintext", mode.name, c.name, len(out))
			}
			t.Logf("%s/%s: exit %d, %d bytes on stdout before the error: %s", mode.name, c.name, std.code, len(out), strings.TrimSpace(std.stderr))
			sc.checked(int64(len(out)))
		}
		// Not a recipient.
		run := sc.run()
		a.write(a.m, a.frags)
		std, file, left := e.restoreFrom(a.dir, mallory)
		for _, r := range []result{std, file} {
			if r.code != exitData || len(r.stdout) != 0 || !strings.Contains(r.stderr, "mallory") && !strings.Contains(r.stderr, "recipient") {
				run.errorf("%s/not a recipient: exit %d, %d bytes, want %d naming the key\n%s", mode.name, r.code, len(r.stdout), exitData, r.stderr)
			}
		}
		if left {
			run.errorf("%s/not a recipient: --output left", mode.name)
		}
	}
	// gpg agrees on the forged SEIPDv1 flip (MDC), when it is installed.
	if _, err := exec.LookPath("gpg"); err == nil {
		sc.note("gpg present: interoperability is checked by archive/gpg_test.go")
	}
}
