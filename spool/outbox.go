package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
)

// Budget limits what a backup may leave in the spool (hand-off rule 7).
// When a limit is reached the outbox waits for cryophile-freeze to drain
// freeze/; it never fails for budget reasons.
type Budget struct {
	// MaxBytes is the most the spool may hold in backup/, freeze/ and
	// restore/ together once the next fragment is written; 0 means no
	// limit. A spool holding nothing is never waited for, so a budget
	// smaller than one fragment still lets fragments through one by one.
	MaxBytes int64
	// Reserve is the free space to keep on the spool's filesystem after the
	// next fragment; 0 means none. cryophile-backup uses DefaultReserve.
	Reserve int64
	// FragmentSize is the size of the fragments to come.
	FragmentSize int64
	// Notify, if set, is called with a message for humans when the outbox
	// starts waiting and when it resumes.
	Notify func(msg string)
}

// DefaultReserve is the free-space reserve cryophile-backup keeps by default:
// two fragments and 1 GiB.
func DefaultReserve(fragmentSize int64) int64 { return 2*fragmentSize + 1<<30 }

// Outbox is one backup's side of the spool: fragments are written in
// backup/VAULT/PREFIX/ULID and published one by one into
// freeze/VAULT/PREFIX/ULID, then the manifest. It implements archive.Sink.
// Abort may be called concurrently with the other methods.
type Outbox struct {
	s       *Spool
	id      archive.ID
	budget  Budget
	staging string // backup/VAULT/PREFIX/ULID
	queue   string // freeze/VAULT/PREFIX/ULID
	ctx     context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	lock      *FileLock
	current   *StagedFile
	published map[string]bool
	manifest  bool // manifest.json published: the archive is complete
	closed    bool
	aborted   bool
}

var _ archive.Sink = (*Outbox)(nil)

// NewOutbox claims backup ID id in the spool. It creates
// backup/VAULT/PREFIX/ULID exclusively, locks it (a held lock tells
// cleanup and LiveWriter that the writer is alive), then creates
// freeze/VAULT/PREFIX/ULID exclusively. An ID already present in backup/,
// freeze/ or restore/ gives an error wrapping ErrExist. ctx bounds the
// back-pressure waits of Create.
func (s *Spool) NewOutbox(ctx context.Context, id archive.ID, b Budget) (*Outbox, error) {
	if err := archive.ValidatePrefix(id.Prefix); err != nil {
		return nil, fmt.Errorf("spool: backup %s: %w", id, err)
	}
	rel := id.Dir()
	for _, q := range []string{QueueFreeze, QueueRestore} {
		if _, err := os.Lstat(s.Dir(q, id)); err == nil {
			return nil, fmt.Errorf("spool: backup %s: %w (%s exists)", id, ErrExist, s.Dir(q, id))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("spool: backup %s: %w", id, err)
		}
	}
	o := &Outbox{
		s:         s,
		id:        id,
		budget:    b,
		staging:   s.Dir(QueueBackup, id),
		queue:     s.Dir(QueueFreeze, id),
		published: map[string]bool{},
	}
	if err := mkdirExclusive(filepath.Join(s.root, QueueBackup), rel); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("spool: backup %s: %w (%s exists)", id, ErrExist, o.staging)
		}
		return nil, fmt.Errorf("spool: backup %s: %w", id, err)
	}
	// From here on the staging directory is ours: undo it on failure.
	l, err := lockNew(filepath.Join(o.staging, LockName))
	if err != nil {
		if !errors.Is(err, ErrLocked) {
			_ = os.RemoveAll(o.staging)
			s.prune(QueueBackup, id)
		}
		// Otherwise cleanup of a dead writer took the lock in the instant
		// between our mkdir and our lock (see cleanupGrace): it removes
		// the directory.
		return nil, fmt.Errorf("spool: backup %s: %w", id, err)
	}
	o.lock = l
	if err := mkdirExclusive(filepath.Join(s.root, QueueFreeze), rel); err != nil {
		_ = os.RemoveAll(o.staging)
		o.lock.Close()
		s.prune(QueueBackup, id)
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("spool: backup %s: %w (%s exists)", id, ErrExist, o.queue)
		}
		return nil, fmt.Errorf("spool: backup %s: %w", id, err)
	}
	o.ctx, o.cancel = context.WithCancel(ctx)
	return o, nil
}

// ID returns the backup ID the outbox publishes.
func (o *Outbox) ID() archive.ID { return o.id }

// Create starts fragment name (chunk.000001, …). It first waits, as long as
// it takes, until the budget has room for another fragment (calling
// Budget.Notify when it starts and stops waiting); only the context given to
// NewOutbox or Abort end the wait. The fragment is written in the staging
// directory; its Commit publishes it into freeze/.
func (o *Outbox) Create(name string) (archive.FragmentFile, error) {
	if _, err := archive.ParseFragmentName(name); err != nil {
		return nil, fmt.Errorf("spool: backup %s: %w", o.id, err)
	}
	if err := o.usable(); err != nil {
		return nil, err
	}
	if err := o.waitBudget(); err != nil {
		return nil, fmt.Errorf("spool: backup %s: waiting for room for %s: %w", o.id, name, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usableLocked(); err != nil {
		return nil, err
	}
	if o.current != nil {
		return nil, fmt.Errorf("spool: backup %s: %s started before %s was committed or aborted", o.id, name, o.current.name)
	}
	if o.published[name] {
		return nil, fmt.Errorf("spool: backup %s: fragment %s: %w", o.id, name, fs.ErrExist)
	}
	sf, err := Stage(o.staging, o.queue, name)
	if err != nil {
		return nil, fmt.Errorf("spool: backup %s: %w", o.id, err)
	}
	o.current = sf
	return &outboxFragment{o: o, sf: sf}, nil
}

func (o *Outbox) usable() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.usableLocked()
}

func (o *Outbox) usableLocked() error {
	switch {
	case o.aborted:
		return fmt.Errorf("spool: backup %s: outbox aborted", o.id)
	case o.closed:
		return fmt.Errorf("spool: backup %s: outbox closed", o.id)
	case o.manifest:
		return fmt.Errorf("spool: backup %s: manifest already published", o.id)
	}
	return nil
}

// outboxFragment records the fragment's publication in its outbox, so that
// Abort knows what to take back.
type outboxFragment struct {
	o  *Outbox
	sf *StagedFile
}

// Write writes to the fragment's staging file.
func (f *outboxFragment) Write(p []byte) (int, error) { return f.sf.Write(p) }

// Commit publishes the fragment into freeze/ unless the outbox was aborted.
func (f *outboxFragment) Commit() error {
	o := f.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.current == f.sf {
		o.current = nil
	}
	if err := o.usableLocked(); err != nil {
		_ = f.sf.Abort()
		return err
	}
	// Record before publishing: an Abort after a failed Commit that did
	// publish (say, the directory fsync failed) must still take it back.
	o.published[f.sf.name] = true
	return f.sf.Commit()
}

// Abort discards the fragment's staging file.
func (f *outboxFragment) Abort() error {
	o := f.o
	o.mu.Lock()
	if o.current == f.sf {
		o.current = nil
	}
	o.mu.Unlock()
	return f.sf.Abort()
}

// PublishManifest publishes manifest.json into freeze/, completing the
// archive (hand-off rule 3). Every fragment the manifest lists must have
// been committed through this outbox and every committed fragment must be
// listed; its backup ID must be the outbox's.
func (o *Outbox) PublishManifest(m *archive.Manifest) error {
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("spool: backup %s: %w", o.id, err)
	}
	if m.BackupID != o.id.String() {
		return fmt.Errorf("spool: backup %s: manifest is for %s", o.id, m.BackupID)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usableLocked(); err != nil {
		return err
	}
	if o.current != nil {
		return fmt.Errorf("spool: backup %s: manifest published while %s is still open", o.id, o.current.name)
	}
	for _, f := range m.Fragments {
		if !o.published[f.Name] {
			return fmt.Errorf("spool: backup %s: manifest lists %s, which was never committed", o.id, f.Name)
		}
	}
	if len(m.Fragments) != len(o.published) {
		return fmt.Errorf("spool: backup %s: manifest lists %d fragments, %d were committed", o.id, len(m.Fragments), len(o.published))
	}
	if err := PublishBytes(o.staging, o.queue, archive.ManifestName, b); err != nil {
		return fmt.Errorf("spool: backup %s: %w", o.id, err)
	}
	o.manifest = true
	return nil
}

// Close finishes a backup whose manifest is published: it removes the
// staging directory and releases the lock. Closing an outbox whose manifest
// was not published aborts it (see Abort) and returns an error: an archive
// without a manifest never completes. Close after Close does nothing.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed && !o.aborted {
		o.mu.Unlock()
		return nil
	}
	if o.aborted || !o.manifest {
		aborted := o.aborted
		o.mu.Unlock()
		err := o.Abort()
		if aborted {
			return errors.Join(fmt.Errorf("spool: backup %s: outbox aborted", o.id), err)
		}
		return errors.Join(fmt.Errorf("spool: backup %s: closed before its manifest was published; aborted", o.id), err)
	}
	defer o.mu.Unlock()
	o.cancel()
	if err := o.removeStagingLocked(); err != nil {
		return err
	}
	o.closed = true
	return nil
}

// removeStagingLocked removes the staging directory, then releases the lock
// that lives in it: in this order, cleanup can never mistake the directory
// for a dead writer's.
func (o *Outbox) removeStagingLocked() error {
	if err := os.RemoveAll(o.staging); err != nil {
		return fmt.Errorf("spool: backup %s: remove %s: %w", o.id, o.staging, err)
	}
	o.lock.Close()
	o.s.prune(QueueBackup, o.id)
	return nil
}

// Abort takes back everything the outbox published in freeze/ (its
// fragments; the manifest is only published on success), removes the
// freeze/ directory if that leaves it empty, then the staging directory, and
// releases the lock: a failed backup leaves nothing behind. It wakes a
// Create waiting for budget, makes later calls fail, may be called
// concurrently with them, and may be called again after it failed. Once the
// manifest is published the archive is complete and is not taken back:
// Abort then only does what Close does.
func (o *Outbox) Abort() error {
	if o.cancel != nil {
		o.cancel()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	if o.manifest {
		if err := o.removeStagingLocked(); err != nil {
			return err
		}
		o.closed = true
		return nil
	}
	o.aborted = true
	var errs []error
	if o.current != nil {
		if err := o.current.Abort(); err != nil {
			errs = append(errs, err)
		}
		o.current = nil
	}
	for name := range o.published {
		if err := removeFile(filepath.Join(o.queue, name)); err != nil {
			errs = append(errs, err)
		}
	}
	switch err := os.Remove(o.queue); {
	case err == nil || errors.Is(err, fs.ErrNotExist):
		_ = syncDir(filepath.Dir(o.queue))
		o.s.prune(QueueFreeze, o.id)
	case errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST):
		// Something we did not publish is in there (a consumer's own
		// bookkeeping): not ours to remove. Without a manifest and
		// without a live writer the directory is abandoned.
	default:
		errs = append(errs, fmt.Errorf("remove %s: %w", o.queue, err))
	}
	if len(errs) > 0 {
		// Keep the staging directory and its lock: the backup ID stays
		// claimed until a later Abort, or cleanup after our exit, finishes.
		return fmt.Errorf("spool: backup %s: abort: %w", o.id, errors.Join(errs...))
	}
	if err := o.removeStagingLocked(); err != nil {
		return err
	}
	o.closed = true
	return nil
}

// room reports whether the budget allows another fragment now, and why not.
func (o *Outbox) room() (bool, string, error) {
	b := o.budget
	if b.MaxBytes > 0 {
		used, err := o.s.Usage(QueueBackup, QueueFreeze, QueueRestore)
		if err != nil {
			return false, "", err
		}
		if used > 0 && used+b.FragmentSize > b.MaxBytes {
			return false, fmt.Sprintf("spool %s holds %d bytes, budget %d: waiting for cryophile-freeze to make room for %s",
				o.s.root, used, b.MaxBytes, o.id), nil
		}
	}
	if b.Reserve > 0 {
		free, err := o.s.freeSpace(o.s.root)
		if err != nil {
			return false, "", err
		}
		if free-b.FragmentSize < b.Reserve {
			return false, fmt.Sprintf("spool %s has %d bytes free, reserve %d plus a %d-byte fragment needed: waiting for cryophile-freeze to make room for %s",
				o.s.root, free, b.Reserve, b.FragmentSize, o.id), nil
		}
	}
	return true, "", nil
}

// waitBudget blocks until room reports room. It watches freeze/ and this
// archive's directory in it for removals, and re-checks every poll period
// in any case: fragments of other archives are deleted in directories we
// do not watch.
func (o *Outbox) waitBudget() error {
	ok, msg, err := o.room()
	if err != nil || ok {
		return err
	}
	if o.budget.Notify != nil {
		o.budget.Notify(msg)
	}
	var events chan fsnotify.Event
	if w, err := fsnotify.NewWatcher(); err == nil {
		defer w.Close()
		_ = w.Add(filepath.Join(o.s.root, QueueFreeze))
		_ = w.Add(o.queue)
		events = w.Events
	}
	t := time.NewTicker(o.s.poll)
	defer t.Stop()
	for {
		select {
		case <-o.ctx.Done():
			return context.Cause(o.ctx)
		case <-events:
		case <-t.C:
		}
		ok, _, err := o.room()
		if err != nil {
			return err
		}
		if ok {
			if o.budget.Notify != nil {
				o.budget.Notify(fmt.Sprintf("spool %s has room again: resuming %s", o.s.root, o.id))
			}
			return nil
		}
	}
}
