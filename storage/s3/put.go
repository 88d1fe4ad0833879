package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/cryophile/cryophile/storage"
)

// Put implements storage.Store: a single PutObject up to
// Options.MultipartThreshold, a multipart upload above. See the package
// documentation for checksums and memory use.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) error {
	full, err := s.objectKey(opPut, key)
	if err != nil {
		return err
	}
	switch {
	case size < 0:
		return fmt.Errorf("s3: put %s: negative size %d", s.url(full), size)
	case size > MaxObjectSize:
		return fmt.Errorf("s3: put %s: %w: %d bytes is more than S3's %d per object", s.url(full), storage.ErrPermanent, size, int64(MaxObjectSize))
	case opts.SHA256 != nil && len(opts.SHA256) != sha256.Size:
		return fmt.Errorf("s3: put %s: SHA-256 of %d bytes, want %d", s.url(full), len(opts.SHA256), sha256.Size)
	}
	if opts.Class == "" {
		opts.Class = storage.ClassStandard
	}
	src, err := newSource(r, size)
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", s.url(full), err)
	}
	if size <= s.opts.MultipartThreshold {
		return s.putSingle(ctx, full, src, opts)
	}
	return s.putMultipart(ctx, full, src, opts)
}

// source is what Put reads: random access when the reader allows it
// (an *os.File), sequential otherwise.
type source struct {
	ra   io.ReaderAt // nil for a sequential source
	base int64       // ra's offset of the first byte
	r    io.Reader   // the sequential source
	size int64
}

// newSource checks that r has size bytes from its current position if it
// can tell without reading them all, so a short file fails before any
// upload starts.
func newSource(r io.Reader, size int64) (*source, error) {
	ra, ok1 := r.(io.ReaderAt)
	sk, ok2 := r.(io.Seeker)
	if ok1 && ok2 {
		// A pipe is an *os.File too, but cannot seek: read it in order.
		if pos, err := sk.Seek(0, io.SeekCurrent); err == nil {
			if size > 0 {
				var b [1]byte
				if n, err := ra.ReadAt(b[:], pos+size-1); n != 1 {
					return nil, fmt.Errorf("source shorter than %d bytes: %w", size, cmpErr(err, io.ErrUnexpectedEOF))
				}
			}
			return &source{ra: ra, base: pos, size: size}, nil
		}
	}
	return &source{r: r, size: size}, nil
}

// cmpErr returns err, or def where err is nil or io.EOF.
func cmpErr(err, def error) error {
	if err == nil || err == io.EOF {
		return def
	}
	return err
}

// section returns the n bytes of a random-access source at off.
func (src *source) section(off, n int64) *io.SectionReader {
	return io.NewSectionReader(src.ra, src.base+off, n)
}

// readFull reads the next len(buf) bytes of a sequential source.
func (src *source) readFull(ctx context.Context, buf []byte) error {
	if _, err := io.ReadFull(ctxReader{ctx, src.r}, buf); err != nil {
		return fmt.Errorf("read source: %w", cmpErr(err, io.ErrUnexpectedEOF))
	}
	return nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// hashBufSize is the buffer for hashing random-access sources.
const hashBufSize = 1 << 20

// sha256Of hashes all of r.
func sha256Of(ctx context.Context, r io.Reader) ([]byte, error) {
	h := sha256.New()
	buf := make([]byte, hashBufSize)
	if _, err := io.CopyBuffer(h, ctxReader{ctx, r}, buf); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// putSingle uploads src with one PutObject.
func (s *Store) putSingle(ctx context.Context, full string, src *source, opts storage.PutOptions) error {
	var body io.ReadSeeker
	if src.ra != nil {
		body = src.section(0, src.size)
	} else {
		buf := make([]byte, src.size)
		if err := src.readFull(ctx, buf); err != nil {
			return fmt.Errorf("s3: put %s: %w", s.url(full), err)
		}
		body = bytes.NewReader(buf)
	}
	// The digest the service checks: the caller's, or ours.
	sum := opts.SHA256
	if sum == nil {
		var err error
		if sum, err = sha256Of(ctx, body); err != nil {
			return fmt.Errorf("s3: put %s: read source: %w", s.url(full), err)
		}
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("s3: put %s: %w", s.url(full), err)
		}
	}
	b64 := base64.StdEncoding.EncodeToString(sum)
	in := &awss3.PutObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(full),
		ContentLength:     aws.Int64(src.size),
		StorageClass:      types.StorageClass(opts.Class),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(b64),
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	w := newStallWatch(s.opts.StallTimeout)
	in.Body = w.body(body)
	out, err := s.client.PutObject(ctx, in, withPayloadHash(sum), w.option)
	if err != nil {
		return s.wrapErr(opPut, full, err)
	}
	if got := aws.ToString(out.ChecksumSHA256); got == b64 {
		return nil
	} else if got != "" {
		// The service stored other bytes than it was told to expect.
		return s.discard(ctx, full, fmt.Errorf("service reports SHA-256 %s, sent %s", got, b64))
	}
	// A service that does not echo checksums may not check them either:
	// check the bytes we sent ourselves (a free pass over a buffer, a
	// page-cache pass over a file).
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("s3: put %s: %w", s.url(full), err)
	}
	got, err := sha256Of(ctx, body)
	if err != nil {
		return fmt.Errorf("s3: put %s: read source: %w", s.url(full), err)
	}
	if !bytes.Equal(got, sum) {
		return s.discard(ctx, full, fmt.Errorf("source SHA-256 %x, want %x", got, sum))
	}
	return nil
}

// discard deletes full, just stored with bytes that failed verification,
// and returns an error wrapping storage.ErrChecksum.
func (s *Store) discard(ctx context.Context, full string, why error) error {
	ctx, cancel := s.metaCtx(context.WithoutCancel(ctx))
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w: %v; deleting it failed: %v", s.url(full), storage.ErrChecksum, why, err)
	}
	return fmt.Errorf("s3: put %s: %w: %v", s.url(full), storage.ErrChecksum, why)
}

// withPayloadHash gives the SDK the SHA-256 of a request's body, so that it
// does not read the body once more to compute it for SigV4: we know it
// already, and it is the x-amz-checksum-sha256 we send too.
func withPayloadHash(sum []byte) func(*awss3.Options) {
	h := hex.EncodeToString(sum)
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("cryophilePayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, h), in)
				}), middleware.Before)
		})
	}
}

// errStalled is the cause of a request attempt abandoned by a stallWatch.
var errStalled = errors.New("stalled")

// stallWatch abandons a request attempt when the transport stops reading
// the request body for a while (a black-holed connection would otherwise
// hang until TCP gives up, many minutes later), and has the SDK retry it.
// Each Read of the body restarts a timer; the end of the body or a rewind
// for a retry stops it (the wait for the answer is then bounded by the
// transport's ResponseHeaderTimeout). One stallWatch serves one operation.
type stallWatch struct {
	timeout time.Duration
	mu      sync.Mutex
	timer   *time.Timer
	cancel  context.CancelCauseFunc // the running attempt's
}

func newStallWatch(timeout time.Duration) *stallWatch {
	w := &stallWatch{timeout: timeout}
	w.timer = time.AfterFunc(time.Hour, func() {
		w.mu.Lock()
		cancel := w.cancel
		w.mu.Unlock()
		if cancel != nil {
			cancel(errStalled)
		}
	})
	w.timer.Stop()
	return w
}

// body wraps a request body so that its reads feed the watch.
func (w *stallWatch) body(rs io.ReadSeeker) io.ReadSeeker { return &watchedBody{rs: rs, w: w} }

func (w *stallWatch) arm(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.timer.Reset(w.timeout)
	} else {
		w.timer.Stop()
	}
}

// option adds the watch to an operation: a middleware inside the SDK's
// retry loop gives each attempt a context the timer cancels, and makes a
// stalled attempt's error retryable.
func (w *stallWatch) option(o *awss3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("cryophileStallWatch",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				actx, cancel := context.WithCancelCause(ctx)
				defer cancel(nil)
				w.mu.Lock()
				w.cancel = cancel
				w.mu.Unlock()
				out, md, err := next.HandleFinalize(actx, in)
				w.mu.Lock()
				w.cancel = nil
				w.timer.Stop()
				w.mu.Unlock()
				if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errStalled) {
					err = &stalledError{timeout: w.timeout, err: err}
				}
				return out, md, err
			}), "Retry", middleware.After)
	})
}

// stalledError is the error of an attempt abandoned by a stallWatch.
type stalledError struct {
	timeout time.Duration
	err     error
}

func (e *stalledError) Error() string {
	return fmt.Sprintf("no progress sending the body for %v: %v", e.timeout, e.err)
}

func (e *stalledError) Unwrap() []error { return []error{errStalled, e.err} }

// RetryableError tells the SDK's retryer to try again.
func (e *stalledError) RetryableError() bool { return true }

// CanceledError tells the SDK's retryer that the operation was not
// canceled, only this attempt (the retryer looks for this method before
// RetryableError, and would find the SDK's own canceled error inside).
func (e *stalledError) CanceledError() bool { return false }

// watchedBody is a request body watched by a stallWatch.
type watchedBody struct {
	rs io.ReadSeeker
	w  *stallWatch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.arm(true)
	n, err := b.rs.Read(p)
	if err != nil {
		b.w.arm(false)
	}
	return n, err
}

func (b *watchedBody) Seek(offset int64, whence int) (int64, error) {
	b.w.arm(false)
	return b.rs.Seek(offset, whence)
}

// choosePartSize returns the part size for an object of size bytes: want
// (at least MinPartSize), grown to a whole number of MiB when the object
// would otherwise have more than MaxParts parts.
func choosePartSize(size, want int64) int64 {
	ps := max(want, MinPartSize)
	if (size+ps-1)/ps > MaxParts {
		const mib = 1 << 20
		ps = (size + MaxParts - 1) / MaxParts
		ps = (ps + mib - 1) / mib * mib
	}
	return min(ps, MaxPartSize)
}

// putMultipart uploads src in parts, Concurrency at a time, hashing it in
// order meanwhile, and completes the upload only if the digest is
// opts.SHA256. On any failure it aborts the upload.
func (s *Store) putMultipart(ctx context.Context, full string, src *source, opts storage.PutOptions) (err error) {
	if opts.IfNoneMatch {
		// CompleteMultipartUpload checks If-None-Match too, but only after
		// every part has gone up.
		if _, err := s.head(ctx, full); err == nil {
			return fmt.Errorf("s3: put %s: %w", s.url(full), storage.ErrExist)
		} else if !errors.Is(err, storage.ErrNotExist) {
			return err
		}
	}
	partSize := choosePartSize(src.size, s.opts.PartSize)
	nparts := int((src.size + partSize - 1) / partSize)

	uploadID, left := s.resumable(ctx, full, opts.Class)
	if uploadID == "" {
		mctx, cancel := s.metaCtx(ctx)
		created, err := s.client.CreateMultipartUpload(mctx, &awss3.CreateMultipartUploadInput{
			Bucket:            aws.String(s.bucket),
			Key:               aws.String(full),
			StorageClass:      types.StorageClass(opts.Class),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		})
		cancel()
		if err != nil {
			return s.wrapErr(opPut, full, err)
		}
		uploadID = aws.ToString(created.UploadId)
	}
	defer func() {
		if err == nil {
			return
		}
		if aerr := s.abort(ctx, full, uploadID); aerr != nil {
			err = fmt.Errorf("%w (and %v)", err, aerr)
		}
	}()

	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	var full256 []byte // the source's digest, once hashed
	upload := func(i int, body io.ReadSeeker, n int64) error {
		sum, err := sha256Of(gctx, body)
		if err != nil {
			return fmt.Errorf("s3: put %s: part %d: read source: %w", s.url(full), i+1, err)
		}
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		b64 := base64.StdEncoding.EncodeToString(sum)
		if p, ok := left[int32(i+1)]; ok && p.size == n && p.sha256 == b64 {
			// Already up, with these very bytes.
			parts[i] = types.CompletedPart{ETag: aws.String(p.etag), PartNumber: aws.Int32(int32(i + 1)), ChecksumSHA256: aws.String(b64)}
			return nil
		}
		in := &awss3.UploadPartInput{
			Bucket:            aws.String(s.bucket),
			Key:               aws.String(full),
			UploadId:          aws.String(uploadID),
			PartNumber:        aws.Int32(int32(i + 1)),
			ContentLength:     aws.Int64(n),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumSHA256:    aws.String(b64),
		}
		w := newStallWatch(s.opts.StallTimeout)
		in.Body = w.body(body)
		out, err := s.client.UploadPart(gctx, in, withPayloadHash(sum), w.option)
		if err != nil {
			return s.wrapErr(opPut, full, fmt.Errorf("part %d: %w", i+1, err))
		}
		parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumSHA256: aws.String(b64)}
		return nil
	}
	partLen := func(i int) int64 { return min(partSize, src.size-int64(i)*partSize) }

	if src.ra != nil {
		if opts.SHA256 != nil {
			g.Go(func() error {
				sum, err := sha256Of(gctx, src.section(0, src.size))
				if err != nil {
					return fmt.Errorf("s3: put %s: read source: %w", s.url(full), err)
				}
				full256 = sum
				return nil
			})
		}
		sem := make(chan struct{}, s.opts.Concurrency)
	sections:
		for i := range nparts {
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				break sections
			}
			g.Go(func() error {
				defer func() { <-sem }()
				n := partLen(i)
				return upload(i, src.section(int64(i)*partSize, n), n)
			})
		}
	} else {
		// At most Concurrency buffers, each reused once its part is up.
		bufs := make(chan []byte, s.opts.Concurrency)
		for range s.opts.Concurrency {
			bufs <- nil
		}
		h := sha256.New()
		seq := &source{r: io.TeeReader(src.r, h)}
	buffers:
		for i := range nparts {
			var buf []byte
			select {
			case buf = <-bufs:
			case <-gctx.Done():
				break buffers
			}
			n := partLen(i)
			if buf == nil {
				buf = make([]byte, partSize)
			}
			if err := seq.readFull(gctx, buf[:n]); err != nil {
				g.Go(func() error { return fmt.Errorf("s3: put %s: part %d: %w", s.url(full), i+1, err) })
				break
			}
			g.Go(func() error {
				defer func() { bufs <- buf }()
				return upload(i, bytes.NewReader(buf[:n]), n)
			})
		}
		full256 = h.Sum(nil)
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: put %s: %w", s.url(full), err)
	}
	if opts.SHA256 != nil && !bytes.Equal(full256, opts.SHA256) {
		return fmt.Errorf("s3: put %s: %w: source SHA-256 %x, want %x", s.url(full), storage.ErrChecksum, full256, opts.SHA256)
	}

	in := &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(full),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	// Completing a large upload can take the service a while; it is bounded
	// by the response-header timeout per attempt.
	if _, err := s.client.CompleteMultipartUpload(ctx, in); err != nil {
		return s.wrapErr(opPut, full, err)
	}
	return nil
}

// leftPart is a part of an upload left behind by an interrupted Put.
type leftPart struct {
	size         int64
	sha256, etag string
}

// resumable returns the newest multipart upload of full in class with
// SHA-256 checksums, left behind by a Put that was killed, and the parts
// it holds by number: Put uploads again only the parts whose SHA-256 differs.
// It returns "" if there is none, or if the service will not say: a new
// upload is always a safe choice.
func (s *Store) resumable(ctx context.Context, full, class string) (uploadID string, parts map[int32]leftPart) {
	ctx, cancel := s.metaCtx(ctx)
	defer cancel()
	in := &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(full)}
	var newest time.Time
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return "", nil
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) != full || className(u.StorageClass) != class ||
				(u.ChecksumAlgorithm != "" && u.ChecksumAlgorithm != types.ChecksumAlgorithmSha256) {
				continue
			}
			if t := aws.ToTime(u.Initiated); uploadID == "" || t.After(newest) {
				uploadID, newest = aws.ToString(u.UploadId), t
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	if uploadID == "" {
		return "", nil
	}
	parts = map[int32]leftPart{}
	p := awss3.NewListPartsPaginator(s.client, &awss3.ListPartsInput{
		Bucket: aws.String(s.bucket), Key: aws.String(full), UploadId: aws.String(uploadID),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", nil
		}
		for _, part := range page.Parts {
			if sum := aws.ToString(part.ChecksumSHA256); sum != "" {
				parts[aws.ToInt32(part.PartNumber)] = leftPart{size: aws.ToInt64(part.Size), sha256: sum, etag: aws.ToString(part.ETag)}
			}
		}
	}
	return uploadID, parts
}

// abort aborts a multipart upload, even when ctx has been canceled.
func (s *Store) abort(ctx context.Context, full, uploadID string) error {
	ctx, cancel := s.metaCtx(context.WithoutCancel(ctx))
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(full),
		UploadId: aws.String(uploadID),
	})
	var nsu *types.NoSuchUpload
	if err != nil && !errors.As(err, &nsu) {
		return fmt.Errorf("abort multipart upload %s of %s: %w", uploadID, s.url(full), err)
	}
	return nil
}

// AbortIncompleteUploads aborts the multipart uploads under the store's
// key prefix followed by prefix that were started more than olderThan ago,
// and returns how many it aborted. Put aborts the uploads it fails, but a
// process killed in the middle of one leaves it behind, invisible in
// listings, and S3 bills its parts at the STANDARD rate until it is
// aborted: the freeze daemon calls this at start-up. Put resumes an
// interrupted upload of the same key, so an age of a day or so spares the
// uploads a restarted freeze is about to resume (and those other live
// processes may be running) while ending those whose fragment is gone.
func (s *Store) AbortIncompleteUploads(ctx context.Context, prefix string, olderThan time.Duration) (n int, err error) {
	full := s.prefix + prefix
	cutoff := time.Now().Add(-olderThan)
	in := &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(full)}
	for {
		mctx, cancel := s.metaCtx(ctx)
		out, err := s.client.ListMultipartUploads(mctx, in)
		cancel()
		if err != nil {
			return n, s.wrapErr(opAbort, full, err)
		}
		for _, u := range out.Uploads {
			if u.Initiated != nil && u.Initiated.After(cutoff) {
				continue
			}
			if err := s.abort(ctx, aws.ToString(u.Key), aws.ToString(u.UploadId)); err != nil {
				return n, fmt.Errorf("s3: %s %s: %w", opAbort, s.url(full), err)
			}
			n++
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}
