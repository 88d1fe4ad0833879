package archive_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/cryophile/cryophile/archive"
)

// The fuzzers below are run for a fixed time by `make reliability`
// (scripts/reliability.sh); as plain tests they run their seeds and the
// crashers kept in testdata/fuzz/NAME/.

// FuzzParseManifest: any input either parses into a manifest that validates
// and survives a Marshal/Parse round trip unchanged, or fails with an error
// wrapping ErrCorrupt or ErrUnknownFormat. It never panics.
func FuzzParseManifest(f *testing.F) {
	for _, dir := range []string{"testdata/golden-zstd-seipdv1", "testdata/golden-lz4-seipdv2"} {
		m, err := archive.ReadManifestFile(dir + "/" + archive.ManifestName)
		if err != nil {
			f.Fatal(err)
		}
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(bytes.Replace(b, []byte("cryophile/1"), []byte("cryophile/2"), 1))
		f.Add(bytes.Replace(b, []byte("chunk.000001"), []byte("chunk.000002"), 1))
		f.Add(bytes.Replace(b, []byte(`"fragments"`), []byte(`"fragments_"`), 1))
	}
	f.Add([]byte(`{"format":"cryophile/1"}`))
	f.Add([]byte(`{"format":"cryophile/1.9","fragments":[{"name":"chunk.000001","size":-1}]}`))
	f.Add([]byte(`{"format":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := archive.ParseManifest(b)
		if err != nil {
			if !errors.Is(err, archive.ErrCorrupt) && !errors.Is(err, archive.ErrUnknownFormat) {
				t.Fatalf("ParseManifest: %v: wraps neither ErrCorrupt nor ErrUnknownFormat", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest does not validate: %v", err)
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		m2, err := archive.ParseManifest(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2, err := m2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip not stable (%v):\n%s\n%s", err, out, out2)
		}
		var sum int64
		for _, fr := range m.Fragments {
			if fr.Size < 0 {
				t.Fatalf("fragment %s has negative size %d", fr.Name, fr.Size)
			}
			sum += fr.Size
		}
		if sum != m.CiphertextBytes {
			t.Fatalf("fragment sizes add up to %d, ciphertext_bytes %d", sum, m.CiphertextBytes)
		}
	})
}

// FuzzParseFragmentName: ParseFragmentName accepts exactly the names
// FragmentName returns.
func FuzzParseFragmentName(f *testing.F) {
	for _, s := range []string{"chunk.000001", "chunk.999999", "chunk.1000000", "chunk.0000001",
		"chunk.000000", "chunk.-00001", "chunk.+00001", "chunk.00001", "chunk.999999999999",
		"chunk.9999999999999", "manifest.json", "chunk.00000١", "chunk.000001\x00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := archive.ParseFragmentName(s)
		if err != nil {
			if !errors.Is(err, archive.ErrInvalidID) {
				t.Fatalf("ParseFragmentName(%q): %v does not wrap ErrInvalidID", s, err)
			}
			return
		}
		if n < 1 {
			t.Fatalf("ParseFragmentName(%q) = %d, want ≥ 1", s, n)
		}
		if got := archive.FragmentName(n); got != s {
			t.Fatalf("ParseFragmentName(%q) = %d, but FragmentName(%d) = %q", s, n, n, got)
		}
	})
}

// FuzzParseID: a parsed ID's String parses back to the same ID, its prefix
// passes ValidatePrefix, and its key never escapes a directory (no "..", no
// leading "/", no NUL or newline).
func FuzzParseID(f *testing.F) {
	const v = "0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"
	const u = "01KAZ3M5Q8Y2X7N4H0B6C9D1EF"
	for _, s := range []string{v + "/" + u, v + "/host/pool/" + u, v + "/../" + u, v + "//" + u,
		v + "/a/./b/" + u, "/" + v + "/" + u, v + "/a\x00b/" + u, v + "/a\nb/" + u,
		v + "/" + strings.Repeat("x", 901) + "/" + u, v + "/" + u + "/", strings.ToUpper(v) + "/" + u,
		"{" + v + "}/" + u, v + "/" + strings.ToLower(u), v + "/7ZZZZZZZZZZZZZZZZZZZZZZZZZ", v + "/8ZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := archive.ParseID(s)
		if err != nil {
			return
		}
		// Case and an empty prefix ("VAULT//ULID") are normalised; the
		// normal form must parse back to the same ID.
		if id2, err := archive.ParseID(id.String()); err != nil || id2 != id {
			t.Fatalf("ParseID(%q) = %q, which parses back to %v, %v", s, id.String(), id2, err)
		}
		if err := archive.ValidatePrefix(id.Prefix); err != nil {
			t.Fatalf("ParseID(%q) accepted prefix %q: %v", s, id.Prefix, err)
		}
		for _, part := range strings.Split(id.Dir(), "/") {
			if part == "" || part == "." || part == ".." {
				t.Fatalf("ParseID(%q): directory %q has component %q", s, id.Dir(), part)
			}
		}
		if strings.ContainsAny(s, "\x00\n\r\\") {
			t.Fatalf("ParseID(%q) accepted a NUL, newline or backslash", s)
		}
	})
}

// FuzzReader: arbitrary bytes served as the fragment of an archive whose
// manifest is rewritten to match them (size and SHA-256, as a forger who
// controls the vault would) never make the Reader panic, and every failure
// wraps ErrCorrupt or ErrNotRecipient. Success is possible only for the
// original ciphertext.
func FuzzReader(f *testing.F) {
	k := newKey(f, "alice")
	plain := []byte(strings.Repeat("cryophile fuzz plaintext ", 200))
	type base struct {
		m    *archive.Manifest
		frag []byte
	}
	var bases []base
	for _, aead := range []bool{false, true} {
		m, sink := backup(f, plain, archive.WriterOptions{Recipients: k.cert, Compression: archive.CompressionZstd, AEAD: aead})
		frag := sink.concat()
		bases = append(bases, base{m, frag})
		f.Add(aead, frag)
		// Bit flips at the start, middle and end; truncations.
		for _, at := range []int{0, len(frag) / 2, len(frag) - 1} {
			b := bytes.Clone(frag)
			b[at] ^= 0x40
			f.Add(aead, b)
		}
		f.Add(aead, frag[:len(frag)/2])
		f.Add(aead, frag[:len(frag)-1])
	}
	f.Add(false, []byte{})
	f.Add(true, []byte{0xc1, 0x5e})
	f.Fuzz(func(t *testing.T, aead bool, frag []byte) {
		b := bases[0]
		if aead {
			b = bases[1]
		}
		m := *b.m
		sum := sha256.Sum256(frag)
		m.Fragments = []archive.Fragment{{Name: archive.FragmentName(1), Size: int64(len(frag)), SHA256: hex.EncodeToString(sum[:])}}
		m.CiphertextBytes = int64(len(frag))
		if len(frag) == 0 {
			// A manifest needs at least one byte of ciphertext; let the
			// Reader see an empty fragment anyway through a bad manifest.
			if _, err := archive.NewReader(t.Context(), newMemSource(nil), &m, k.secret); err == nil {
				t.Fatal("NewReader accepted an empty archive")
			}
			return
		}
		got, err := restore(newMemSource(map[string][]byte{m.Fragments[0].Name: frag}), &m, k.secret)
		if err != nil {
			if !errors.Is(err, archive.ErrCorrupt) && !errors.Is(err, archive.ErrNotRecipient) {
				t.Fatalf("restore of %d fuzzed bytes: %v wraps neither ErrCorrupt nor ErrNotRecipient", len(frag), err)
			}
			// Nothing unauthenticated is released: SEIPDv2 releases only
			// authenticated chunks (a prefix of the plaintext); SEIPDv1
			// holds its last MiB back until the MDC matched, and this
			// whole message is smaller than that.
			if aead && !bytes.HasPrefix(plain, got) || !aead && len(got) > 0 {
				t.Fatalf("restore failed (%v) after releasing %d bytes of unauthenticated plaintext", err, len(got))
			}
			return
		}
		if !bytes.Equal(frag, b.frag) && !bytes.Equal(got, plain) {
			t.Fatalf("restore of modified ciphertext succeeded with %d bytes of other plaintext", len(got))
		}
	})
}
