package archive

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/oklog/ulid/v2"
	"github.com/pierrec/lz4/v4"
	"golang.org/x/sync/errgroup"
)

// Fragment size limits: S3 refuses objects over 5 TiB, and fragments under
// 1 MiB would only multiply per-object costs.
const (
	// MinFragmentSize is the smallest fragment size NewWriter accepts.
	MinFragmentSize int64 = 1 << 20
	// MaxFragmentSize is the largest fragment size NewWriter accepts.
	MaxFragmentSize int64 = 5 << 40
	// DefaultFragmentSize is used when WriterOptions.FragmentSize is 0.
	DefaultFragmentSize int64 = 1 << 30
)

// aeadChunkSize is the SEIPDv2 chunk size: each 256 KiB of plaintext is
// authenticated on its own, so a reader never releases more than that
// unauthenticated.
const aeadChunkSize = 256 << 10

// WriterOptions configures a Writer.
type WriterOptions struct {
	// ID is the archive's backup ID, recorded in the manifest.
	ID ID
	// Recipients are the certificates the archive is encrypted to, one
	// PKESK per certificate's encryption key.
	Recipients openpgp.EntityList
	// Compression is CompressionZstd (the default when empty),
	// CompressionLZ4 or CompressionNone.
	Compression string
	// Level is the zstd level: LevelFastest (the default when empty),
	// LevelDefault, LevelBetter or LevelBest. Ignored by lz4 and none.
	Level string
	// AEAD selects SEIPDv2 AES-256-GCM (256 KiB chunks) instead of SEIPDv1,
	// whatever the recipients' keys advertise. GnuPG cannot read it.
	AEAD bool
	// FragmentSize is the size of every fragment but the last, between
	// MinFragmentSize and MaxFragmentSize; 0 means DefaultFragmentSize.
	FragmentSize int64
	// Host and Label are recorded in the manifest; both may be empty.
	Host, Label string
	// Created is recorded in the manifest; zero means now.
	Created time.Time
}

// Writer compresses, encrypts and cuts into fragments the bytes written to
// it. Three stages run concurrently, joined by bounded hand-offs of 4 × 1 MiB:
// compression in the caller's goroutine, OpenPGP encryption in a second, and
// SHA-256 hashing plus writing fragments to the Sink in a third.
//
// Write, Close and Abort must not be called concurrently; Stats may be
// called at any time from any goroutine.
type Writer struct {
	opts   WriterOptions
	mode   string
	fprs   []string
	cancel context.CancelCauseFunc
	g      *errgroup.Group

	comp  io.WriteCloser // compressor, writing into plain
	plain *handoff       // compressed bytes → encryptor
	enc   *handoff       // ciphertext → splitter

	plainIn   atomic.Int64
	cipherOut atomic.Int64

	frags    []Fragment // written by the splitter, read after g.Wait
	done     bool
	err      error
	manifest *Manifest
}

// NewWriter returns a Writer that sends the archive's fragments to sink.
func NewWriter(sink Sink, opts WriterOptions) (*Writer, error) {
	if _, err := ParseID(opts.ID.String()); err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	if opts.ID.Vault == (uuid.UUID{}) || opts.ID.ULID == (ulid.ULID{}) {
		return nil, fmt.Errorf("writer: backup id %s: %w: zero vault or ULID", opts.ID, ErrInvalidID)
	}
	if opts.Compression == "" {
		opts.Compression = CompressionZstd
	}
	if opts.FragmentSize == 0 {
		opts.FragmentSize = DefaultFragmentSize
	}
	if opts.FragmentSize < MinFragmentSize || opts.FragmentSize > MaxFragmentSize {
		return nil, fmt.Errorf("writer %s: fragment size %d out of range: must be between 1 MiB and 5 TiB", opts.ID, opts.FragmentSize)
	}
	if len(opts.Recipients) == 0 {
		return nil, fmt.Errorf("writer %s: no recipients", opts.ID)
	}
	if _, err := zstdLevel(opts.Level); err != nil {
		return nil, fmt.Errorf("writer %s: %w", opts.ID, err)
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	opts.Created = opts.Created.UTC()

	now := time.Now()
	keys := make([]*packet.PublicKey, 0, len(opts.Recipients))
	fprs := make([]string, 0, len(opts.Recipients))
	for _, e := range opts.Recipients {
		k, ok := encryptionKey(e, now)
		if !ok {
			return nil, fmt.Errorf("writer %s: key %s has no usable encryption key (expired, revoked or signing-only)", opts.ID, fingerprint(e.PrimaryKey))
		}
		keys = append(keys, k)
		fprs = append(fprs, fingerprint(k))
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	w := &Writer{
		opts:   opts,
		mode:   ModeSEIPDv1,
		fprs:   fprs,
		cancel: cancel,
		g:      g,
		plain:  newHandoff(ctx),
		enc:    newHandoff(ctx),
	}
	if opts.AEAD {
		w.mode = ModeSEIPDv2GCM
	}

	var err error
	switch opts.Compression {
	case CompressionZstd:
		// Two encoder goroutines: with our SEIPDv1 writer encryption leaves
		// room on the second core, and compressible data went from ~190 to
		// ~230-310 MB/s (SEIPDv1) and ~240 to ~275 (GCM), RSS 31 MB;
		// incompressible data is unaffected. WithConcurrentBlocks would
		// cost hundreds of MB of RSS.
		level, _ := zstdLevel(opts.Level) // checked at the top
		w.comp, err = zstd.NewWriter(w.plain, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(2))
	case CompressionLZ4:
		lw := lz4.NewWriter(w.plain)
		err = lw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.CompressionLevelOption(lz4.Fast), lz4.ConcurrencyOption(1))
		w.comp = lw
	case CompressionNone:
		w.comp = nopCloser{w.plain}
	default:
		err = fmt.Errorf("unknown compression %q (want zstd, lz4 or none)", opts.Compression)
	}
	if err != nil {
		cancel(err)
		return nil, fmt.Errorf("writer %s: %w", opts.ID, err)
	}

	// Start the message before the goroutines, so that an error is
	// reported here.
	pt, err := encrypt(w.enc, keys, opts.AEAD)
	if err != nil {
		cancel(err)
		return nil, fmt.Errorf("writer %s: encrypt: %w", opts.ID, err)
	}
	g.Go(func() error { return w.encryptLoop(pt) })
	g.Go(func() error { return w.splitLoop(ctx, sink) })
	return w, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// encrypt starts one OpenPGP message to the recipients' encryption keys,
// written to w: a PKESK per key, then a SEIPD packet holding one binary
// literal data packet, with no OpenPGP compression and no signature.
//
// This is what openpgp.Encrypt does, minus its negotiation: Encrypt picks
// the cipher from the intersection of the recipients' preferences and,
// given an AEADConfig, the AEAD mode from their preferred cipher suites
// (silently AES-128-OCB with some sq keys), or SEIPDv1 if any key does not
// advertise SEIPDv2. The format is ours to choose, recorded in the
// manifest, so we call the packet layer with it directly: AES-256 always,
// SEIPDv1 by default, SEIPDv2 AES-256-GCM with 256 KiB chunks when aead is
// set. The SEIPDv1 packet itself is ours (seipdv1.go): go-crypto's CFB
// encrypter is twice as slow as the stdlib's.
func encrypt(w io.Writer, keys []*packet.PublicKey, aead bool) (io.WriteCloser, error) {
	cfg := &packet.Config{
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
		AEADConfig:             nil, // SEIPDv1
	}
	suite := packet.CipherSuite{Cipher: packet.CipherAES256, Mode: packet.AEADModeGCM}
	if aead {
		cfg.AEADConfig = &packet.AEADConfig{DefaultMode: packet.AEADModeGCM, ChunkSize: aeadChunkSize}
	}
	sessionKey := make([]byte, packet.CipherAES256.KeySize())
	if _, err := io.ReadFull(rand.Reader, sessionKey); err != nil {
		return nil, err
	}
	defer clear(sessionKey)
	for _, k := range keys {
		if err := packet.SerializeEncryptedKeyAEAD(w, k, packet.CipherAES256, aead, sessionKey, cfg); err != nil {
			return nil, fmt.Errorf("encrypt session key to %s: %w", fingerprint(k), err)
		}
	}
	var payload io.WriteCloser
	if aead {
		p, err := packet.SerializeSymmetricallyEncrypted(w, packet.CipherAES256, aead, suite, sessionKey, cfg)
		if err != nil {
			return nil, err
		}
		payload = p
	} else {
		p, err := newSEIPDv1Writer(w, sessionKey, rand.Reader)
		if err != nil {
			return nil, err
		}
		payload = p
	}
	// Closing the literal data writer closes the SEIPD writer (which writes
	// the MDC or the final AEAD tag) but not w.
	return packet.SerializeLiteral(payload, true, "", 0)
}

// encryptWriteSize is the size of the writes to the encryptor. go-crypto's
// packet writers buffer each Write whole and its CFB writer allocates a
// buffer the size of each Write: 1 MiB writes cost 20 MB of RSS more than
// 64 KiB ones (measured) for no speed gain.
const encryptWriteSize = 64 << 10

// encryptLoop feeds the compressed stream to the encryptor.
func (w *Writer) encryptLoop(pt io.WriteCloser) error {
	for {
		b, err := w.plain.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		for p := b; len(p) > 0 && err == nil; p = p[min(len(p), encryptWriteSize):] {
			_, err = pt.Write(p[:min(len(p), encryptWriteSize)])
		}
		w.plain.recycle(b)
		if err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
	}
	if err := pt.Close(); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return w.enc.closeWithError(nil)
}

// splitLoop cuts the ciphertext at exact multiples of FragmentSize, hashing
// each fragment on the way. A fragment is created only when it has a first
// byte to hold, so no fragment is empty.
func (w *Writer) splitLoop(ctx context.Context, sink Sink) (err error) {
	var (
		f    FragmentFile
		name string
		n    int64
		h    hash.Hash = sha256.New()
	)
	defer func() {
		if f != nil {
			if aerr := f.Abort(); aerr != nil {
				err = errors.Join(err, fmt.Errorf("abort fragment %s: %w", name, aerr))
			}
		}
	}()
	commit := func() error {
		if err := f.Commit(); err != nil {
			f = nil // a failed Commit is the sink's to clean up
			return fmt.Errorf("commit fragment %s: %w", name, err)
		}
		f = nil
		w.frags = append(w.frags, Fragment{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	for {
		b, err := w.enc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		for p := b; len(p) > 0; {
			if f == nil {
				name = FragmentName(len(w.frags) + 1)
				if f, err = sink.Create(name); err != nil {
					f = nil
					return fmt.Errorf("create fragment %s: %w", name, err)
				}
				n = 0
				h.Reset()
			}
			c := min(int64(len(p)), w.opts.FragmentSize-n)
			if _, err := f.Write(p[:c]); err != nil {
				return fmt.Errorf("write fragment %s: %w", name, err)
			}
			h.Write(p[:c])
			n += c
			w.cipherOut.Add(c)
			p = p[c:]
			if n == w.opts.FragmentSize {
				if err := commit(); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
		}
		w.enc.recycle(b)
	}
	if f != nil {
		return commit()
	}
	return nil
}

// Write compresses p into the archive.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, fmt.Errorf("writer %s: write after close", w.opts.ID)
	}
	n, err := w.comp.Write(p)
	w.plainIn.Add(int64(n))
	if err != nil {
		return n, w.fail(err)
	}
	return n, nil
}

// fail turns a hand-off error into the error that caused it: a stage that
// fails cancels the others, which then only see context.Canceled.
func (w *Writer) fail(err error) error {
	w.cancel(err)
	if gerr := w.g.Wait(); gerr != nil {
		err = gerr
	}
	if w.err == nil {
		w.err = fmt.Errorf("writer %s: %w", w.opts.ID, err)
	}
	return w.err
}

// Close flushes the compressor and the encryptor, commits the last fragment
// and builds the manifest. On error the fragment being written is aborted
// (fragments already committed stay: the sink's owner removes them).
func (w *Writer) Close() error {
	if w.done {
		if w.err != nil {
			return w.err
		}
		return nil
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	if err := w.comp.Close(); err != nil {
		return w.fail(fmt.Errorf("compress: %w", err))
	}
	w.plain.closeWithError(nil)
	if err := w.g.Wait(); err != nil {
		w.cancel(err)
		w.err = fmt.Errorf("writer %s: %w", w.opts.ID, err)
		return w.err
	}
	w.cancel(nil)
	m := &Manifest{
		Format:          FormatVersion,
		BackupID:        w.opts.ID.String(),
		Created:         w.opts.Created,
		Host:            w.opts.Host,
		Label:           w.opts.Label,
		Compression:     w.opts.Compression,
		Encryption:      Encryption{Mode: w.mode, Recipients: w.fprs},
		PlaintextBytes:  w.plainIn.Load(),
		CiphertextBytes: w.cipherOut.Load(),
		FragmentSize:    w.opts.FragmentSize,
		Fragments:       w.frags,
	}
	if err := m.Validate(); err != nil {
		w.err = fmt.Errorf("writer %s: internal error: %w", w.opts.ID, err)
		return w.err
	}
	w.manifest = m
	return nil
}

// Manifest returns the archive's manifest, or nil before a successful Close.
func (w *Writer) Manifest() *Manifest { return w.manifest }

// Abort stops the Writer after a failure: it stops its goroutines, aborts
// the fragment being written and returns once nothing runs any more.
// Fragments already committed stay. Abort after a successful Close does
// nothing.
func (w *Writer) Abort() error {
	if w.done && w.err == nil {
		return nil
	}
	w.done = true
	w.cancel(errAborted)
	w.comp.Close() // releases the compressor; its error is of no interest now
	err := w.g.Wait()
	if errors.Is(err, errAborted) || errors.Is(err, context.Canceled) {
		err = nil
	}
	if w.err == nil {
		w.err = fmt.Errorf("writer %s: %w", w.opts.ID, errAborted)
	}
	return err
}

var errAborted = errors.New("aborted")

// Stats returns the bytes written to the Writer so far and the ciphertext
// bytes handed to the sink so far. It is safe for concurrent use.
func (w *Writer) Stats() (plainIn, cipherOut int64) {
	return w.plainIn.Load(), w.cipherOut.Load()
}

// zstd levels, as in config's backup.level.
const (
	LevelFastest = "fastest"
	LevelDefault = "default"
	LevelBetter  = "better"
	LevelBest    = "best"
)

func zstdLevel(s string) (zstd.EncoderLevel, error) {
	switch s {
	case "", LevelFastest:
		return zstd.SpeedFastest, nil
	case LevelDefault:
		return zstd.SpeedDefault, nil
	case LevelBetter:
		return zstd.SpeedBetterCompression, nil
	case LevelBest:
		return zstd.SpeedBestCompression, nil
	}
	return 0, fmt.Errorf("zstd level %q: want fastest, default, better or best", s)
}
