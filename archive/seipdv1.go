package archive

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Restoring SEIPDv1 through openpgp.ReadMessage is bound by go-crypto's
// block-at-a-time CFB (~270 MB/s on one core). CFB decryption, unlike CFB
// encryption, is parallel: plaintext block i is E(C[i-1]) ⊕ C[i], so any
// block-aligned span can be decrypted on its own given the ciphertext block
// before it. openSEIPDv1 therefore reads the message with go-crypto's packet
// layer (PKESK parsing and session-key decryption, packet framing) and does
// the CFB and MDC of the SEIPDv1 packet itself, on two cores.

// errNoSessionKey is returned when no PKESK could be decrypted with the keys.
var errNoSessionKey = errors.New("no session key")

// openSEIPDv1 reads the PKESKs and the SEIPDv1 packet header from r and
// returns the literal data's contents; MDC failures are reported as
// errMDC at the end.
func openSEIPDv1(r io.Reader, keys openpgp.EntityList) (io.Reader, *mdcReader, error) {
	pr := packet.NewReader(r)
	var key []byte
	var cipherFunc packet.CipherFunction
	for {
		p, err := pr.Next()
		if err != nil {
			return nil, nil, err
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			if key != nil {
				continue
			}
			// Expired or revoked keys still decrypt: an archive outlives
			// its key's validity.
			for _, e := range keys {
				for _, k := range decryptionKeys(e) {
					if p.KeyId != 0 && p.KeyId != k.KeyId || k.Encrypted {
						continue
					}
					if p.Decrypt(k, nil) == nil {
						key, cipherFunc = p.Key, p.CipherFunc
						break
					}
				}
				if key != nil {
					break
				}
			}
		case *packet.SymmetricallyEncrypted:
			if key == nil {
				return nil, nil, errNoSessionKey
			}
			if !p.IntegrityProtected || p.Version != 1 {
				return nil, nil, fmt.Errorf("message is not SEIPDv1 (integrity protected %v, version %d)", p.IntegrityProtected, p.Version)
			}
			switch cipherFunc {
			case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
			default:
				return nil, nil, fmt.Errorf("session cipher %d: only AES is supported", cipherFunc)
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				return nil, nil, err
			}
			mr := &mdcReader{src: p.Contents, block: block, h: sha1.New()}
			body, err := literalBody(mr)
			return body, mr, err
		case *packet.SymmetricKeyEncrypted:
			// A passphrase alternative: not ours to use.
		default:
			return nil, nil, fmt.Errorf("unexpected packet %T before the encrypted data", p)
		}
	}
}

// literalBody returns the contents of the literal data packet in the
// decrypted stream, inside a compressed packet if gpg wrote one.
func literalBody(r io.Reader) (io.Reader, error) {
	for range 2 {
		p, err := packet.NewReader(r).Next()
		if err != nil {
			return nil, err
		}
		switch p := p.(type) {
		case *packet.LiteralData:
			return p.Body, nil
		case *packet.Compressed:
			r = p.Body
		default:
			return nil, fmt.Errorf("unexpected packet %T in the encrypted data (signed messages are not supported)", p)
		}
	}
	return nil, errors.New("nested compressed packets")
}

// errMDC is returned at the end of a SEIPDv1 message whose MDC does not match.
var errMDC = errors.New("MDC mismatch: the message was modified")

const (
	cfbPrefix  = aes.BlockSize + 2
	mdcTrailer = 2 + sha1.Size // 0xD3 0x14 SHA-1
	// cfbChunk is the ciphertext read and decrypted at once.
	cfbChunk = 1 << 20
	// cfbParallel is the smallest chunk split between two goroutines.
	cfbParallel = 64 << 10
)

// mdcReader decrypts a SEIPDv1 body (OpenPGP CFB with a zero IV and no
// resynchronisation: RFC 4880 5.13) and checks its MDC, which it holds back
// from the plaintext it returns. The last chunk is released only after the
// MDC matched; everything before it only after its fragments' SHA-256s did.
type mdcReader struct {
	src   io.Reader
	block cipher.Block
	iv    [aes.BlockSize]byte // ciphertext block before the next chunk
	h     hash.Hash
	in    []byte // ciphertext chunk
	out   []byte // decrypted; out[off:] not yet returned
	spare []byte // the next out
	off   int
	first bool // prefix checked
	eof   bool // src exhausted and MDC verified
	err   error
}

func (m *mdcReader) Read(p []byte) (int, error) {
	for {
		// A failed refill leaves the chunk it decrypted in m.out (after an
		// MDC mismatch: the last, unauthenticated one): release none of it.
		if m.err != nil {
			return 0, m.err
		}
		avail := len(m.out) - m.off
		if !m.eof {
			avail -= mdcTrailer
		}
		if avail > 0 {
			n := copy(p, m.out[m.off:m.off+avail])
			m.off += n
			return n, nil
		}
		if m.eof {
			return 0, io.EOF
		}
		m.err = m.refill()
	}
}

// refill decrypts the next chunk behind what is held back.
func (m *mdcReader) refill() error {
	if m.in == nil {
		m.in = make([]byte, cfbChunk)
		m.out = make([]byte, 0, cfbChunk+cfbPrefix+mdcTrailer)
		m.spare = make([]byte, 0, cfbChunk+cfbPrefix+mdcTrailer)
	}
	// Hash what was returned in a second goroutine while reading and
	// decrypting the next chunk into the spare buffer, behind the held-back
	// tail.
	returned := m.out[:m.off]
	next := m.spare[:copy(m.spare[:cap(m.spare)], m.out[m.off:])]
	var wg sync.WaitGroup
	if len(returned) >= cfbParallel {
		wg.Go(func() { m.h.Write(returned) })
	} else {
		m.h.Write(returned)
	}
	n, err := fill(m.src, m.in)
	if err == nil || err == io.EOF {
		start := len(next)
		next = next[:start+n]
		m.decrypt(next[start:], m.in[:n])
	}
	wg.Wait()
	m.spare, m.out, m.off = m.out[:0], next, 0
	if err == io.EOF {
		m.eof = true
	} else if err != nil {
		return err
	}

	if !m.first && len(m.out) >= cfbPrefix {
		// The prefix's last two bytes repeat the two before: a quick
		// check that the session key is right.
		if m.out[cfbPrefix-2] != m.out[cfbPrefix-4] || m.out[cfbPrefix-1] != m.out[cfbPrefix-3] {
			return errMDC
		}
		m.first = true
		m.off = cfbPrefix // hashed, never returned
	}
	if !m.eof {
		return nil
	}
	if !m.first || len(m.out)-m.off < mdcTrailer {
		return io.ErrUnexpectedEOF
	}
	// The MDC covers everything up to and including its own packet header.
	end := len(m.out) - mdcTrailer
	m.h.Write(m.out[:end+2])
	mdc := m.out[end:]
	if mdc[0] != 0xD3 || mdc[1] != 0x14 || subtle.ConstantTimeCompare(m.h.Sum(nil), mdc[2:]) != 1 {
		m.eof = false
		return errMDC
	}
	m.out = m.out[:end]
	return nil
}

// decrypt decrypts src (ciphertext following m.iv) into dst, splitting
// large chunks between two goroutines at a block boundary.
func (m *mdcReader) decrypt(dst, src []byte) {
	n := len(src)
	if n == 0 {
		return
	}
	if n < cfbParallel {
		cipher.NewCFBDecrypter(m.block, m.iv[:]).XORKeyStream(dst, src) //nolint:staticcheck // OpenPGP mandates CFB; the MDC authenticates.
	} else {
		mid := (n / 2) &^ (aes.BlockSize - 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			cipher.NewCFBDecrypter(m.block, src[mid-aes.BlockSize:mid]).XORKeyStream(dst[mid:], src[mid:]) //nolint:staticcheck
		})
		cipher.NewCFBDecrypter(m.block, m.iv[:]).XORKeyStream(dst[:mid], src[:mid]) //nolint:staticcheck
		wg.Wait()
	}
	if n >= aes.BlockSize {
		copy(m.iv[:], src[n-aes.BlockSize:])
	}
}

// rest drains what follows the literal data inside the encrypted stream,
// which must be nothing, and so makes sure the MDC has been checked.
func (m *mdcReader) rest() error {
	n, err := io.Copy(io.Discard, m)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d bytes after the literal data", n)
	}
	return nil
}

// seipdv1Writer writes one SEIPDv1 packet (RFC 4880 5.13): AES in OpenPGP
// CFB mode (zero IV, no resynchronisation) over a random prefix, the
// plaintext and the MDC packet. Like the reader it exists for speed:
// go-crypto's CFB encrypter goes byte by byte (~230 MB/s); here the stdlib's
// CFB encrypts while the SHA-1 of the MDC runs in a second goroutine.
//
// The packet uses partial body lengths of cfbChunk bytes and a definite
// length for the rest, as gpg does.
type seipdv1Writer struct {
	w      io.Writer
	stream cipher.Stream
	h      hash.Hash
	plain  []byte // plaintext not yet encrypted, up to cfbChunk
	out    []byte // ciphertext of the packet body not yet written
	header bool   // packet tag written
	closed bool
}

// newSEIPDv1Writer starts the packet on w, encrypting with key (AES-128,
// -192 or -256 by its length). Close writes the MDC and ends the packet;
// it does not close w.
func newSEIPDv1Writer(w io.Writer, key []byte, rand io.Reader) (*seipdv1Writer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	var iv [aes.BlockSize]byte
	sw := &seipdv1Writer{
		w:      w,
		stream: cipher.NewCFBEncrypter(block, iv[:]), //nolint:staticcheck // OpenPGP mandates CFB; the MDC authenticates.
		h:      sha1.New(),
		plain:  make([]byte, 0, cfbChunk),
		out:    make([]byte, 0, cfbChunk+64),
	}
	// Body: version 1, then the encrypted prefix: 16 random bytes and a
	// repeat of the last two.
	var prefix [cfbPrefix]byte
	if _, err := io.ReadFull(rand, prefix[:aes.BlockSize]); err != nil {
		return nil, err
	}
	prefix[cfbPrefix-2], prefix[cfbPrefix-1] = prefix[cfbPrefix-4], prefix[cfbPrefix-3]
	sw.h.Write(prefix[:])
	sw.out = append(sw.out, 1)
	n := len(sw.out)
	sw.out = sw.out[:n+cfbPrefix]
	sw.stream.XORKeyStream(sw.out[n:], prefix[:])
	return sw, nil
}

// Write buffers p and encrypts it cfbChunk bytes at a time.
func (sw *seipdv1Writer) Write(p []byte) (int, error) {
	if sw.closed {
		return 0, errors.New("seipdv1: write after close")
	}
	n := len(p)
	for len(p) > 0 {
		c := copy(sw.plain[len(sw.plain):cap(sw.plain)], p)
		sw.plain = sw.plain[:len(sw.plain)+c]
		p = p[c:]
		if len(sw.plain) == cap(sw.plain) {
			if err := sw.encrypt(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// encrypt moves sw.plain into the ciphertext, hashing it for the MDC in
// parallel, and writes out whole partial-length chunks.
func (sw *seipdv1Writer) encrypt() error {
	p := sw.plain
	start := len(sw.out)
	if cap(sw.out)-start < len(p) {
		out := make([]byte, start, start+len(p)+64)
		copy(out, sw.out)
		sw.out = out
	}
	sw.out = sw.out[:start+len(p)]
	if len(p) >= cfbParallel {
		var wg sync.WaitGroup
		wg.Go(func() { sw.h.Write(p) })
		sw.stream.XORKeyStream(sw.out[start:], p)
		wg.Wait()
	} else {
		sw.h.Write(p)
		sw.stream.XORKeyStream(sw.out[start:], p)
	}
	sw.plain = sw.plain[:0]
	for len(sw.out) >= cfbChunk {
		if err := sw.writeHeader(); err != nil {
			return err
		}
		// Partial body length 2^20: 224 + 20.
		if _, err := sw.w.Write([]byte{224 + 20}); err != nil {
			return err
		}
		if _, err := sw.w.Write(sw.out[:cfbChunk]); err != nil {
			return err
		}
		sw.out = sw.out[:copy(sw.out, sw.out[cfbChunk:])]
	}
	return nil
}

func (sw *seipdv1Writer) writeHeader() error {
	if sw.header {
		return nil
	}
	sw.header = true
	_, err := sw.w.Write([]byte{0xC0 | 18}) // new format, tag 18
	return err
}

// Close appends the MDC packet and ends the SEIPD packet with a definite
// length.
func (sw *seipdv1Writer) Close() error {
	if sw.closed {
		return nil
	}
	if err := sw.encrypt(); err != nil {
		return err
	}
	sw.closed = true
	mdc := []byte{0xD3, 0x14}
	sw.h.Write(mdc)
	mdc = sw.h.Sum(mdc)
	start := len(sw.out)
	sw.out = append(sw.out, mdc...)
	sw.stream.XORKeyStream(sw.out[start:], mdc)
	if err := sw.writeHeader(); err != nil {
		return err
	}
	if _, err := sw.w.Write(definiteLength(len(sw.out))); err != nil {
		return err
	}
	_, err := sw.w.Write(sw.out)
	sw.out = nil
	return err
}

// definiteLength encodes a new-format packet length (RFC 4880 4.2.2).
func definiteLength(n int) []byte {
	switch {
	case n < 192:
		return []byte{byte(n)}
	case n < 8384:
		n -= 192
		return []byte{192 + byte(n>>8), byte(n)}
	default:
		return []byte{255, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
}
