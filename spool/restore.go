package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
)

// maxManifestSize bounds what WaitManifest reads: a manifest lists one line
// per fragment, and a few million fragments stay far below it.
const maxManifestSize = 256 << 20

// RestoreSource reads an archive's fragments from restore/VAULT/PREFIX/ULID
// as cryophile-thaw publishes them. It implements archive.Source.
type RestoreSource struct {
	s    *Spool
	id   archive.ID
	dir  string
	keep bool

	// OnWait, if set, is called once each time Open has to wait for a
	// fragment that is not there yet, with the fragment's name, so that
	// restore can say "waiting for fragment chunk.000003".
	OnWait func(name string)
	// Check, if set, is called whenever Open re-checks for a missing
	// fragment (on events and periodically). A non-nil error ends the wait
	// and is returned, wrapped with the fragment's name; return one wrapping
	// fs.ErrNotExist when thaw reports (say, in status.json) that the
	// fragment will never come.
	Check func() error
}

var _ archive.Source = (*RestoreSource)(nil)

// RestoreSource returns the source of archive id's fragments in restore/.
// With keep, Done leaves the fragments in place.
func (s *Spool) RestoreSource(id archive.ID, keep bool) *RestoreSource {
	return &RestoreSource{s: s, id: id, dir: s.Dir(QueueRestore, id), keep: keep}
}

// Dir returns the directory the fragments are read from.
func (r *RestoreSource) Dir() string { return r.dir }

// Open waits until fragment f is published in the restore directory, or ctx
// is done, and opens it. It watches the directory (creating it if missing)
// before looking, and looks again every poll period, so no publication is
// missed. A name that is not a regular file gives an error wrapping
// ErrNotRegular that names it; symlinks are never followed.
func (r *RestoreSource) Open(ctx context.Context, f archive.Fragment) (io.ReadSeekCloser, error) {
	if _, err := archive.ParseFragmentName(f.Name); err != nil {
		return nil, err
	}
	var onWait func()
	if r.OnWait != nil {
		onWait = func() { r.OnWait(f.Name) }
	}
	file, err := r.s.waitFile(ctx, QueueRestore, r.id, f.Name, onWait, r.Check)
	if err != nil {
		return nil, fmt.Errorf("restore: fragment %s: %w", f.Name, err)
	}
	return file, nil
}

// Done deletes fragment f from the restore directory (and fsyncs the
// directory), unless the source keeps fragments.
func (r *RestoreSource) Done(f archive.Fragment) error {
	if r.keep {
		return nil
	}
	if _, err := archive.ParseFragmentName(f.Name); err != nil {
		return err
	}
	if err := removeFile(filepath.Join(r.dir, f.Name)); err != nil {
		return fmt.Errorf("restore: fragment %s: %w", f.Name, err)
	}
	if err := syncDir(r.dir); err != nil {
		return fmt.Errorf("restore: fragment %s: %w", f.Name, err)
	}
	return nil
}

// WaitManifest waits until manifest.json of archive id is published in queue
// (normally QueueRestore, where thaw publishes it first), or ctx is done,
// and returns it parsed. Errors about the manifest's content wrap
// archive.ErrCorrupt or archive.ErrUnknownFormat.
func (s *Spool) WaitManifest(ctx context.Context, queue string, id archive.ID) (*archive.Manifest, error) {
	f, err := s.waitFile(ctx, queue, id, archive.ManifestName, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", f.Name(), err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("spool: %s: %w: larger than %d bytes", f.Name(), archive.ErrCorrupt, maxManifestSize)
	}
	m, err := archive.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("spool: %s: %w", f.Name(), err)
	}
	return m, nil
}

// waitFile waits for queue/ID/name to exist and opens it read-only. It
// watches first, then looks, then looks again on every event and poll tick.
func (s *Spool) waitFile(ctx context.Context, queue string, id archive.ID, name string, onWait func(), check func() error) (*os.File, error) {
	dir := s.Dir(queue, id)
	p := filepath.Join(dir, name)
	if queue == QueueRestore {
		// The reader of restore/ waits for thaw, which publishes into
		// this directory; creating it lets the watch start at once. In
		// other queues the directory is the producer's to create (an
		// existing freeze/ directory makes its backup ID taken).
		if err := mkdirAll(filepath.Join(s.root, queue), id.Dir()); err != nil {
			return nil, err
		}
	}
	var (
		w       *fsnotify.Watcher
		watched bool
		events  chan fsnotify.Event
		errs    chan error
	)
	if nw, err := fsnotify.NewWatcher(); err == nil {
		w = nw
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	t := time.NewTicker(s.poll)
	defer t.Stop()
	waiting := false
	for {
		if w != nil && !watched {
			// Watch before looking; retried on every tick while the
			// directory does not exist yet.
			watched = checkRealDir(dir) == nil && w.Add(dir) == nil
		}
		f, err := openRegular(p)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if check != nil {
			if err := check(); err != nil {
				return nil, err
			}
		}
		if !waiting {
			waiting = true
			if onWait != nil {
				onWait()
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", p, context.Cause(ctx))
		case <-events:
		case <-errs:
		case <-t.C:
		}
	}
}

// openRegular opens p read-only without following a symlink, and without
// blocking on a FIFO, and refuses anything but a regular file.
func openRegular(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: %w: a symlink (not followed)", p, ErrNotRegular)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (%s)", p, ErrNotRegular, fi.Mode().Type())
	}
	// Clear O_NONBLOCK: it means nothing for regular files, but leave no
	// surprise for whoever reads the file.
	_ = unix.SetNonblock(int(f.Fd()), false)
	return f, nil
}
