package archive

import (
	"context"
	"io"
)

// Sink receives the fragments a Writer cuts, in order, one at a time.
type Sink interface {
	// Create starts the fragment called name (chunk.000001, …). It may block
	// (back-pressure) until the sink has room for another fragment.
	Create(name string) (FragmentFile, error)
}

// FragmentFile is one fragment being written.
type FragmentFile interface {
	io.Writer
	// Commit makes the fragment durable and visible to consumers. It is
	// called once, after the fragment's last byte.
	Commit() error
	// Abort discards a fragment that will not be committed.
	Abort() error
}

// Source yields the fragments of an archive to a Reader.
type Source interface {
	// Open returns fragment f's bytes, positioned at the start. It may block
	// until the fragment is available or ctx is done. A fragment that will
	// never come returns an error wrapping fs.ErrNotExist that names it.
	Open(ctx context.Context, f Fragment) (io.ReadSeekCloser, error)
	// Done tells the source that all of fragment f's bytes, verified against
	// the manifest, went through the decryptor; the source may delete it.
	Done(f Fragment) error
}
