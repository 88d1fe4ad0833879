package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/cryophile/cryophile/archive"
)

func TestRoundTrip(t *testing.T) {
	k := newKey(t, "alice")
	const mib = 1 << 20
	// ciphertext size of a 1.5 MiB uncompressed plaintext: used to put
	// fragment boundaries exactly at, before and after the end.
	plain := random(mib + mib/2)
	m0, _ := backup(t, plain, archive.WriterOptions{Recipients: k.cert, Compression: archive.CompressionNone, FragmentSize: 4 * mib})
	c := m0.CiphertextBytes

	tests := []struct {
		name         string
		data         []byte
		compression  string
		aead         bool
		fragmentSize int64
		fragments    int
	}{
		{"empty", nil, archive.CompressionZstd, false, mib, 1},
		{"empty/none", nil, archive.CompressionNone, false, mib, 1},
		{"one byte", []byte{42}, archive.CompressionZstd, false, mib, 1},
		{"one byte/aead", []byte{42}, archive.CompressionLZ4, true, mib, 1},
		{"exactly one fragment", plain, archive.CompressionNone, false, c, 1},
		{"fragment size - 1", plain, archive.CompressionNone, false, c - 1, 2},
		{"fragment size + 1", plain, archive.CompressionNone, false, c + 1, 1},
		{"many fragments/zstd", random(5*mib + 12345), archive.CompressionZstd, false, mib, 6},
		{"many fragments/lz4", random(5*mib + 12345), archive.CompressionLZ4, false, mib, 6},
		{"many fragments/none/aead", random(3*mib + 1), archive.CompressionNone, true, mib, 4},
		{"compressible/zstd", compressible(8 * mib), archive.CompressionZstd, false, mib, 0},
		{"compressible/lz4", compressible(8 * mib), archive.CompressionLZ4, false, mib, 0},
		{"compressible/zstd/aead", compressible(8 * mib), archive.CompressionZstd, true, mib, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, sink := backup(t, tt.data, archive.WriterOptions{
				Recipients: k.cert, Compression: tt.compression, AEAD: tt.aead,
				FragmentSize: tt.fragmentSize, Host: "h1", Label: "test",
			})
			if tt.fragments > 0 {
				if got, want := len(m.Fragments), tt.fragments; got != want {
					t.Fatalf("fragments = %d, want %d", got, want)
				}
			}
			for i, f := range m.Fragments {
				b := sink.committed[f.Name]
				if got, want := int64(len(b)), f.Size; got != want {
					t.Fatalf("%s: %d bytes, manifest says %d", f.Name, got, want)
				}
				if i < len(m.Fragments)-1 && f.Size != m.FragmentSize {
					t.Fatalf("%s: size %d, want fragment size %d", f.Name, f.Size, m.FragmentSize)
				}
				if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
					t.Fatalf("%s: sha256 differs from manifest", f.Name)
				}
			}
			if got, want := m.PlaintextBytes, int64(len(tt.data)); got != want {
				t.Errorf("PlaintextBytes = %d, want %d", got, want)
			}
			if got, want := m.Compression, tt.compression; got != want {
				t.Errorf("Compression = %q, want %q", got, want)
			}
			wantMode := archive.ModeSEIPDv1
			if tt.aead {
				wantMode = archive.ModeSEIPDv2GCM
			}
			if got := m.Encryption.Mode; got != wantMode {
				t.Errorf("Mode = %q, want %q", got, wantMode)
			}
			if got, want := m.Encryption.Recipients, archive.Fingerprints(k.cert); !slices.Equal(got, want) {
				t.Errorf("Recipients = %v, want %v", got, want)
			}
			if m.Host != "h1" || m.Label != "test" || m.Format != archive.FormatVersion || m.Created.IsZero() {
				t.Errorf("manifest header = %+v", m)
			}
			src := newMemSource(sink.committed)
			got, err := restore(src, m, k.secret)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("restored %d bytes, differ from the %d written", len(got), len(tt.data))
			}
			var names []string
			for _, f := range m.Fragments {
				names = append(names, f.Name)
			}
			if got := src.doneList(); !slices.Equal(got, names) {
				t.Errorf("Done called for %v, want %v", got, names)
			}
			if got := src.openCount(); got != 0 {
				t.Errorf("%d fragments left open", got)
			}
		})
	}
}

// TestSizes crosses the 1 MiB encryption and decryption chunks with the
// 22-byte MDC trailer, and covers the three encodings of the final packet
// length. go-crypto's ReadMessage is the independent reference reader.
func TestSizes(t *testing.T) {
	k := newKey(t, "alice")
	data := random(1<<20 + 64)
	var sizes []int
	for n := 0; n < 300; n += 3 {
		sizes = append(sizes, n)
	}
	for n := 8000; n < 8600; n += 13 {
		sizes = append(sizes, n)
	}
	for n := 1<<20 - 56; n <= len(data); n += 8 {
		sizes = append(sizes, n)
	}
	for _, aead := range []bool{false, true} {
		for _, n := range sizes {
			m, sink := backup(t, data[:n], archive.WriterOptions{Recipients: k.cert, Compression: archive.CompressionNone, AEAD: aead})
			got, err := restore(newMemSource(sink.committed), m, k.secret)
			if err != nil {
				t.Fatalf("%d bytes, aead %v: %v", n, aead, err)
			}
			if !bytes.Equal(got, data[:n]) {
				t.Fatalf("%d bytes, aead %v: restored data differs", n, aead)
			}
			md, err := openpgp.ReadMessage(bytes.NewReader(sink.concat()), k.secret, nil, nil)
			if err != nil {
				t.Fatalf("%d bytes, aead %v: ReadMessage: %v", n, aead, err)
			}
			got, err = io.ReadAll(md.UnverifiedBody)
			if err != nil || md.SignatureError != nil {
				t.Fatalf("%d bytes, aead %v: ReadMessage body: %v, %v", n, aead, err, md.SignatureError)
			}
			if !bytes.Equal(got, data[:n]) {
				t.Fatalf("%d bytes, aead %v: ReadMessage data differs", n, aead)
			}
		}
	}
}

func TestRecipients(t *testing.T) {
	keys := []*testKey{newKey(t, "alice"), newKey(t, "bob"), newKey(t, "carol")}
	data := compressible(300_000)
	for _, n := range []int{1, 3} {
		var certs openpgp.EntityList
		for _, k := range keys[:n] {
			certs = append(certs, k.cert...)
		}
		m, sink := backup(t, data, archive.WriterOptions{Recipients: certs})
		if got, want := len(m.Encryption.Recipients), n; got != want {
			t.Fatalf("%d recipients in manifest, want %d", got, want)
		}
		for _, k := range keys[:n] {
			got, err := restore(newMemSource(sink.committed), m, k.secret)
			if err != nil {
				t.Fatalf("%d recipients: %v", n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%d recipients: restored data differs", n)
			}
		}
	}
}

// messageHeader parses the PKESKs and the SEIPD packet header of a message.
func messageHeader(t *testing.T, msg []byte) ([]*packet.EncryptedKey, *packet.SymmetricallyEncrypted) {
	t.Helper()
	pr := packet.NewReader(bytes.NewReader(msg))
	var eks []*packet.EncryptedKey
	for {
		p, err := pr.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			eks = append(eks, p)
		case *packet.SymmetricallyEncrypted:
			return eks, p
		default:
			t.Fatalf("unexpected packet %T", p)
		}
	}
}

// TestEncryptionMode checks the packets written: the mode is ours, never the
// key's. The "aead key" advertises SEIPDv2 with OCB first, which
// openpgp.Encrypt would follow (AES-128-OCB with some sq keys).
func TestEncryptionMode(t *testing.T) {
	cfg := &packet.Config{
		AEADConfig:    &packet.AEADConfig{DefaultMode: packet.AEADModeOCB},
		DefaultCipher: packet.CipherAES128,
	}
	ocbKey, err := openpgp.NewEntity("ocb", "", "ocb@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ss, _ := ocbKey.PrimarySelfSignature(); !ss.SEIPDv2 {
		t.Fatal("test key does not advertise SEIPDv2")
	}
	v6Key, err := openpgp.NewEntity("v6", "", "v6@example.org", &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519})
	if err != nil {
		t.Fatal(err)
	}
	if w := archive.RecipientWarnings(openpgp.EntityList{v6Key}); len(w) != 1 {
		t.Errorf("RecipientWarnings(v6) = %q, want one warning", w)
	}
	plain := newKey(t, "alice").secret
	if w := archive.RecipientWarnings(plain); len(w) != 0 {
		t.Errorf("RecipientWarnings(v4) = %q, want none", w)
	}
	for _, tt := range []struct {
		name string
		key  openpgp.EntityList
	}{
		{"gpg-like key", plain},
		{"key advertising ocb", openpgp.EntityList{ocbKey}},
		{"v6 key", openpgp.EntityList{v6Key}},
	} {
		for _, aead := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				data := compressible(600_000)
				m, sink := backup(t, data, archive.WriterOptions{Recipients: tt.key, AEAD: aead})
				eks, se := messageHeader(t, sink.concat())
				if got, want := len(eks), 1; got != want {
					t.Fatalf("%d PKESKs, want %d", got, want)
				}
				if aead {
					if se.Version != 2 || se.Cipher != packet.CipherAES256 || se.Mode != packet.AEADModeGCM || se.ChunkSizeByte != 12 {
						t.Fatalf("SEIPD v%d cipher %d mode %d chunk byte %d, want v2 AES-256 (9) GCM (3) 256 KiB (12)", se.Version, se.Cipher, se.Mode, se.ChunkSizeByte)
					}
					if eks[0].Version != 6 {
						t.Fatalf("PKESK v%d, want v6", eks[0].Version)
					}
				} else {
					if se.Version != 1 {
						t.Fatalf("SEIPD v%d, want v1", se.Version)
					}
					if eks[0].Version != 3 {
						t.Fatalf("PKESK v%d, want v3", eks[0].Version)
					}
					// The cipher of SEIPDv1 is inside the PKESK.
					k, _ := tt.key[0].EncryptionKey(time.Now())
					if err := eks[0].Decrypt(k.PrivateKey, nil); err != nil {
						t.Fatal(err)
					}
					if got, want := eks[0].CipherFunc, packet.CipherAES256; got != want {
						t.Fatalf("session cipher %d, want AES-256 (%d)", got, want)
					}
				}
				got, err := restore(newMemSource(sink.committed), m, tt.key)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("restored data differs")
				}
			})
		}
	}
}

func TestWriterOptions(t *testing.T) {
	k := newKey(t, "alice")
	for _, tt := range []struct {
		name string
		opts archive.WriterOptions
		want string
	}{
		{"too small", archive.WriterOptions{ID: testID(t), Recipients: k.cert, FragmentSize: archive.MinFragmentSize - 1}, "fragment size"},
		{"too big", archive.WriterOptions{ID: testID(t), Recipients: k.cert, FragmentSize: archive.MaxFragmentSize + 1}, "fragment size"},
		{"no recipients", archive.WriterOptions{ID: testID(t)}, "no recipients"},
		{"bad compression", archive.WriterOptions{ID: testID(t), Recipients: k.cert, Compression: "gzip"}, "gzip"},
		{"no id", archive.WriterOptions{Recipients: k.cert}, "invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := archive.NewWriter(newMemSink(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewWriter = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// waitGoroutines waits until the goroutine count is back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestWriterAbort(t *testing.T) {
	k := newKey(t, "alice")
	for _, c := range []string{archive.CompressionZstd, archive.CompressionLZ4, archive.CompressionNone} {
		t.Run(c, func(t *testing.T) {
			before := runtime.NumGoroutine()
			sink := newMemSink()
			w, err := archive.NewWriter(sink, archive.WriterOptions{ID: testID(t), Recipients: k.cert, Compression: c, FragmentSize: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(random(3 << 20)); err != nil {
				t.Fatal(err)
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if got := len(sink.committed); got != 0 {
				t.Errorf("%d fragments committed after Abort", got)
			}
			if w.Manifest() != nil {
				t.Error("Manifest() after Abort is not nil")
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Error("Write after Abort succeeded")
			}
			if err := w.Close(); err == nil {
				t.Error("Close after Abort succeeded")
			}
			waitGoroutines(t, before)
		})
	}
}

func TestWriterSinkError(t *testing.T) {
	k := newKey(t, "alice")
	before := runtime.NumGoroutine()
	sink := newMemSink()
	sink.failAt = "chunk.000002"
	w, err := archive.NewWriter(sink, archive.WriterOptions{ID: testID(t), Recipients: k.cert, Compression: archive.CompressionNone, FragmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for range 20 {
		if _, werr = w.Write(random(1 << 20)); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = w.Close()
	}
	if werr == nil || !strings.Contains(werr.Error(), "chunk.000002") || !strings.Contains(werr.Error(), "sink full") {
		t.Fatalf("error = %v, want the sink's error naming chunk.000002", werr)
	}
	w.Abort()
	waitGoroutines(t, before)
}

func TestWriterStats(t *testing.T) {
	k := newKey(t, "alice")
	w, err := archive.NewWriter(newMemSink(), archive.WriterOptions{ID: testID(t), Recipients: k.cert, FragmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // concurrent progress display, for the race detector
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				w.Stats()
				runtime.Gosched()
			}
		}
	}()
	data := compressible(3 << 20)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	in, out := w.Stats()
	if got, want := in, int64(len(data)); got != want {
		t.Errorf("plainIn = %d, want %d", got, want)
	}
	if got, want := out, w.Manifest().CiphertextBytes; got != want {
		t.Errorf("cipherOut = %d, want %d", got, want)
	}
}

// corruptCase makes an archive and lets the test damage it.
func archiveOf(t *testing.T, aead bool) (*archive.Manifest, map[string][]byte, []byte) {
	t.Helper()
	data := random(3<<20 + 5000)
	m, sink := backup(t, data, archive.WriterOptions{Recipients: newKey(t, "alice").cert, Compression: archive.CompressionNone, AEAD: aead})
	if len(m.Fragments) != 4 {
		t.Fatalf("%d fragments, want 4", len(m.Fragments))
	}
	return m, sink.committed, data
}

// pkeskEnd returns the offset just past the message's first packet, a PKESK
// in the new packet format with a one-byte length.
func pkeskEnd(t *testing.T, msg []byte) int {
	t.Helper()
	if msg[0] != 0xc1 || msg[1] >= 192 {
		t.Fatalf("message starts % x, want a new-format PKESK with a one-byte length", msg[:2])
	}
	return 2 + int(msg[1])
}

// pkeskKeyID returns the offset of the first byte of the first PKESK's key
// ID (after the header and the version byte).
func pkeskKeyID(t *testing.T, msg []byte) int {
	t.Helper()
	pkeskEnd(t, msg)
	if msg[2] != 3 {
		t.Fatalf("PKESK version %d, want 3", msg[2])
	}
	return 3
}

func rehash(m *archive.Manifest, frags map[string][]byte) {
	var total int64
	for i, f := range m.Fragments {
		sum := sha256.Sum256(frags[f.Name])
		m.Fragments[i].SHA256 = hex.EncodeToString(sum[:])
		m.Fragments[i].Size = int64(len(frags[f.Name]))
		total += m.Fragments[i].Size
	}
	m.CiphertextBytes = total
}

func TestReaderErrors(t *testing.T) {
	alice := newKey(t, "alice")
	tests := []struct {
		name    string
		aead    bool
		damage  func(m *archive.Manifest, frags map[string][]byte)
		wantErr error
		want    string // in the error message
		notDone string // Done must never be called for this fragment
		// garbled: damaged plaintext may come out before the error
		// (SEIPDv1 authenticates only at the end, see the Reader's doc).
		garbled bool
	}{
		{name: "flipped byte", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000002"][1000] ^= 1
		}, wantErr: archive.ErrCorrupt, want: "chunk.000002: corrupt archive: sha256 mismatch", notDone: "chunk.000002"},
		{name: "missing fragment", damage: func(m *archive.Manifest, frags map[string][]byte) {
			delete(frags, "chunk.000003")
		}, wantErr: fs.ErrNotExist, want: "chunk.000003", notDone: "chunk.000003"},
		{name: "truncated last fragment", damage: func(m *archive.Manifest, frags map[string][]byte) {
			b := frags["chunk.000004"]
			frags["chunk.000004"] = b[:len(b)-1]
		}, wantErr: archive.ErrCorrupt, want: "chunk.000004", notDone: "chunk.000004"},
		{name: "longer fragment", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000001"] = append(frags["chunk.000001"], 0)
		}, wantErr: archive.ErrCorrupt, want: "chunk.000001", notDone: "chunk.000001"},
		// An attacker who rewrites the manifest too: OpenPGP authentication
		// must still catch it.
		{name: "mdc failure", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000002"][1000] ^= 1
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "corrupt", garbled: true},
		{name: "mdc trailer", damage: func(m *archive.Manifest, frags map[string][]byte) {
			b := frags["chunk.000004"]
			b[len(b)-1] ^= 0x80
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "corrupt"},
		{name: "first block", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000001"][150] ^= 1
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "corrupt", garbled: true},
		// A damaged session key packet is corruption, not a wrong key.
		{name: "damaged pkesk", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000001"][pkeskEnd(t, frags["chunk.000001"])-1] ^= 1
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "fragment chunk.000001: the session key packet (PKESK) for key ID"},
		{name: "damaged pkesk/aead", aead: true, damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000001"][pkeskEnd(t, frags["chunk.000001"])-1] ^= 1
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "fragment chunk.000001: the session key packet (PKESK) for key ID"},
		// A damaged key ID cannot be told from a manifest that is not the
		// message's: not a recipient, with both explanations.
		{name: "damaged pkesk key id", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000001"][pkeskKeyID(t, frags["chunk.000001"])] ^= 1
			rehash(m, frags)
		}, wantErr: archive.ErrNotRecipient, want: "key IDs of the session key packets in chunk.000001 are damaged"},
		{name: "aead failure", aead: true, damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000002"][1000] ^= 1
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "corrupt"},
		{name: "truncated message", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000004"] = frags["chunk.000004"][:100]
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "corrupt"},
		{name: "truncated message/aead", aead: true, damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000004"] = frags["chunk.000004"][:100]
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "corrupt"},
		{name: "trailing garbage", damage: func(m *archive.Manifest, frags map[string][]byte) {
			frags["chunk.000005"] = []byte("garbage")
			m.Fragments = append(m.Fragments, archive.Fragment{Name: "chunk.000005"})
			rehash(m, frags)
		}, wantErr: archive.ErrCorrupt, want: "after the end"},
		{name: "wrong plaintext size", damage: func(m *archive.Manifest, frags map[string][]byte) {
			m.PlaintextBytes++
		}, wantErr: archive.ErrCorrupt, want: "plaintext bytes"},
		{name: "plaintext longer than manifest", damage: func(m *archive.Manifest, frags map[string][]byte) {
			m.PlaintextBytes--
		}, wantErr: archive.ErrCorrupt, want: "plaintext bytes"},
		{name: "mode differs from manifest", damage: func(m *archive.Manifest, frags map[string][]byte) {
			m.Encryption.Mode = archive.ModeSEIPDv2GCM
		}, wantErr: archive.ErrCorrupt, want: "manifest says seipdv2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			m, frags, data := archiveOf(t, tt.aead)
			tt.damage(m, frags)
			src := newMemSource(frags)
			got, err := restore(src, m, alice.secret)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("restore error = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
			if !tt.garbled && !bytes.HasPrefix(data, got) {
				t.Errorf("restored bytes before the error are not a prefix of the data")
			}
			if tt.notDone != "" && slices.Contains(src.doneList(), tt.notDone) {
				t.Errorf("Done called for %s", tt.notDone)
			}
			if n := src.openCount(); n != 0 {
				t.Errorf("%d fragments left open", n)
			}
			waitGoroutines(t, before)
		})
	}
}

func TestReaderWrongKey(t *testing.T) {
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	m, sink := backup(t, []byte("secret"), archive.WriterOptions{Recipients: alice.cert})

	// Known at once from the manifest, before opening any fragment.
	src := newMemSource(sink.committed)
	_, err := archive.NewReader(context.Background(), src, m, bob.secret)
	if !errors.Is(err, archive.ErrNotRecipient) || !strings.Contains(err.Error(), archive.Fingerprints(alice.cert)[0]) {
		t.Fatalf("NewReader error = %v, want ErrNotRecipient naming alice's key", err)
	}

	// A manifest that lies about the recipients: the OpenPGP message tells.
	m.Encryption.Recipients = append(m.Encryption.Recipients, archive.Fingerprints(bob.cert)...)
	_, err = restore(newMemSource(sink.committed), m, bob.secret)
	k, _ := alice.cert[0].EncryptionKey(time.Now())
	if !errors.Is(err, archive.ErrNotRecipient) || !strings.Contains(err.Error(), strings.ToUpper(hex.EncodeToString(k.PublicKey.Fingerprint[12:]))) {
		t.Fatalf("restore error = %v, want ErrNotRecipient naming alice's key ID", err)
	}

	// A certificate is no secret key.
	_, err = archive.NewReader(context.Background(), src, m, alice.cert)
	if !errors.Is(err, archive.ErrNoSecretKey) {
		t.Fatalf("NewReader(cert) error = %v, want ErrNoSecretKey", err)
	}
}

func TestReaderCloseEarly(t *testing.T) {
	alice := newKey(t, "alice")
	m, sink := backup(t, random(4<<20), archive.WriterOptions{Recipients: alice.cert, Compression: archive.CompressionZstd})
	before := runtime.NumGoroutine()
	src := newMemSource(sink.committed)
	r, err := archive.NewReader(context.Background(), src, m, alice.secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
	if n := src.openCount(); n != 0 {
		t.Errorf("%d fragments left open", n)
	}
	waitGoroutines(t, before)
}

func TestReaderContextCancel(t *testing.T) {
	alice := newKey(t, "alice")
	m, sink := backup(t, random(3<<20), archive.WriterOptions{Recipients: alice.cert})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := archive.NewReader(ctx, newMemSource(sink.committed), m, alice.secret)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cancel()
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadAll error = %v, want context.Canceled", err)
	}
}
