package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cryophile/cryophile/storage"
)

// Get implements storage.Store. The reader it returns survives a body cut
// mid-stream (which the SDK does not retry): it asks again for the rest of
// the range, pinned to the object's ETag so that it never splices two
// versions of an object, up to Options.GetResumes times in a row.
//
// Reads are bound to ctx: canceling it fails the next Read.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	full, err := s.objectKey(opGet, key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3: get %s: negative offset %d", s.url(full), offset)
	}
	if length == 0 {
		// No bytes to read, but the contract's errors (missing key,
		// archived, offset past the end) still apply: HEAD says.
		return s.emptyAt(ctx, full, offset)
	}
	end := int64(-1) // last byte wanted, -1 for the end of the object
	if length > 0 {
		end = offset + length - 1
	}
	r := &resumingBody{s: s, ctx: ctx, full: full, next: offset, end: end}
	if err := r.open(); err != nil {
		code, status := errorCode(err)
		if code == "InvalidRange" || status == 416 {
			// The offset is at or past the end: at is allowed.
			return s.emptyAt(ctx, full, offset)
		}
		return nil, s.wrapErr(opGet, full, err)
	}
	return r, nil
}

// emptyAt returns an empty reader if full can be read at offset, or the
// error reading there would give.
func (s *Store) emptyAt(ctx context.Context, full string, offset int64) (io.ReadCloser, error) {
	info, err := s.head(ctx, full)
	if err != nil {
		return nil, err
	}
	if !info.Readable() {
		return nil, fmt.Errorf("s3: get %s: %w (class %s)", s.url(full), storage.ErrArchived, info.Class)
	}
	if offset > info.Size {
		return nil, fmt.Errorf("s3: get %s: offset %d beyond the end (%d bytes)", s.url(full), offset, info.Size)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// resumingBody reads bytes next…end of an object, reopening the range
// where a response body broke off.
type resumingBody struct {
	s    *Store
	ctx  context.Context
	full string
	etag string // of the first response; later ones must match
	next int64  // offset of the next byte to read
	end  int64  // offset of the last byte, -1 until the first answer says

	body    io.ReadCloser
	bodyCtx context.Context         // the open response's request's
	cancel  context.CancelCauseFunc // and its cancel
	stall   *time.Timer             // cancels it when a Read blocks too long
	failed  int                     // cuts in a row with no byte read
	err     error                   // sticky
}

// open requests the bytes from r.next on.
func (r *resumingBody) open() error {
	in := &awss3.GetObjectInput{Bucket: aws.String(r.s.bucket), Key: aws.String(r.full)}
	if r.next > 0 || r.end >= 0 {
		rng := "bytes=" + strconv.FormatInt(r.next, 10) + "-"
		if r.end >= 0 {
			rng += strconv.FormatInt(r.end, 10)
		}
		in.Range = aws.String(rng)
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	ctx, cancel := context.WithCancelCause(r.ctx)
	// Until the headers arrive the transport's ResponseHeaderTimeout
	// applies; the stall timer runs only inside Read.
	out, err := r.s.client.GetObject(ctx, in)
	if err != nil {
		cancel(nil)
		return err
	}
	if r.etag == "" {
		r.etag = aws.ToString(out.ETag)
	}
	if out.ContentLength != nil {
		// Ends the range where the object ends, if before r.end.
		r.end = r.next + *out.ContentLength - 1
	}
	r.body, r.bodyCtx, r.cancel = out.Body, ctx, cancel
	r.stall = time.AfterFunc(time.Hour, func() { cancel(errStalled) })
	r.stall.Stop()
	return nil
}

// closeBody drops the current response.
func (r *resumingBody) closeBody() {
	if r.body == nil {
		return
	}
	r.stall.Stop()
	r.cancel(nil)
	r.body.Close()
	r.body = nil
}

// Read implements io.Reader.
func (r *resumingBody) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.end >= 0 && r.next > r.end {
			r.closeBody()
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				r.err = r.s.wrapErr(opGet, r.full, fmt.Errorf("resume at byte %d: %w", r.next, err))
				return 0, r.err
			}
		}
		if r.end >= 0 && int64(len(p)) > r.end-r.next+1 {
			p = p[:r.end-r.next+1]
		}
		r.stall.Reset(r.s.opts.StallTimeout)
		n, err := r.body.Read(p)
		r.stall.Stop()
		r.next += int64(n)
		if n > 0 {
			r.failed = 0
		}
		switch {
		case err == nil:
			if n > 0 {
				return n, nil
			}
			continue
		case err == io.EOF && (r.end < 0 || r.next > r.end):
			r.closeBody()
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		// The body broke off: an early EOF, a reset, a stall.
		stalled := errors.Is(context.Cause(r.bodyCtx), errStalled)
		r.closeBody()
		if cerr := r.ctx.Err(); cerr != nil {
			r.err = fmt.Errorf("s3: get %s: %w", r.s.url(r.full), cerr)
			return n, r.err
		}
		if stalled {
			err = fmt.Errorf("%w: no data for %v: %w", errStalled, r.s.opts.StallTimeout, err)
		}
		r.failed++
		if r.failed > r.s.opts.GetResumes {
			r.err = fmt.Errorf("s3: get %s: body cut at byte %d %d times in a row: %w", r.s.url(r.full), r.next, r.failed, err)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Close implements io.Closer.
func (r *resumingBody) Close() error {
	r.closeBody()
	if r.err == nil {
		r.err = fmt.Errorf("s3: get %s: read after close", r.s.url(r.full))
	}
	return nil
}
