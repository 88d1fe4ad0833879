package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
)

// FileLock is an exclusive flock(2) held on a lock file. It is released by
// Close or when the process exits, however it exits.
type FileLock struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Lock takes an exclusive, non-blocking flock on path, creating the file
// (mode 0640, O_NOFOLLOW) if needed. A lock held by another process, or
// through another open file description in this one, gives an error
// wrapping ErrLocked. flock is used, not fcntl locks: fcntl locks are per
// process and vanish when any descriptor of the file is closed.
func Lock(path string) (*FileLock, error) { return lock(path, true) }

func lock(path string, create bool) (*FileLock, error) {
	// Read-only: flock needs no write access, and a daemon of the
	// cryophile group may test a lock file that a backup user owns.
	flags := os.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if create {
		flags |= os.O_CREATE
	}
	for range 10 {
		f, err := os.OpenFile(path, flags, FileMode)
		if err != nil {
			if errors.Is(err, unix.ELOOP) {
				return nil, fmt.Errorf("lock %s: %w: a symlink (not followed)", path, ErrNotRegular)
			}
			return nil, fmt.Errorf("lock: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ErrNotRegular)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// Whoever held the lock before us may have removed the file (or
		// its directory) before releasing it: a lock on an unlinked file
		// excludes nobody. Check the name still leads to what we locked.
		cur, err := os.Lstat(path)
		if err == nil && os.SameFile(fi, cur) {
			return &FileLock{path: path, f: f}, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if err != nil && !create {
			return nil, fmt.Errorf("lock: %w", err)
		}
	}
	return nil, fmt.Errorf("lock %s: %w: the lock file keeps being replaced", path, ErrLocked)
}

// lockNew creates the lock file path already locked: a temporary file in
// the same directory is created, flocked, then linked to path (which must
// not exist yet). So whenever path exists, its creator holds its flock or
// is dead. With Lock's create-then-flock, CleanupDeadWriters could find a
// new writer's lock file in the instant before its flock, take the lock
// and remove a live backup's staging directory (seen with 8 backups
// starting at once, each cleaning up at start).
func lockNew(path string) (*FileLock, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(FileMode); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		f.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return &FileLock{path: path, f: f}, nil
}

// Path returns the lock file's path.
func (l *FileLock) Path() string { return l.path }

// Close releases the lock. It is safe to call more than once. The lock file
// is left in place: removing it would let two processes lock different
// files of the same name.
func (l *FileLock) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// LockDaemon takes the per-spool lock of daemon name (ROOT/.NAME.lock), so
// that a second instance of, say, cryophile-freeze on the same spool fails
// with an error wrapping ErrLocked instead of racing the first.
func (s *Spool) LockDaemon(name string) (*FileLock, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return Lock(filepath.Join(s.root, "."+name+".lock"))
}

// DaemonRunning reports whether another process (or another lock in this
// one) holds the daemon lock of name (LockDaemon). When nobody does, it
// takes the lock and releases it at once: a daemon starting at that very
// moment may find it taken and exit, to be restarted.
func (s *Spool) DaemonRunning(name string) (bool, error) {
	l, err := s.LockDaemon(name)
	if err == nil {
		return false, l.Close()
	}
	if errors.Is(err, ErrLocked) {
		return true, nil
	}
	return false, err
}

// LiveWriter reports whether a live cryophile-backup holds the outbox lock
// of id. It never creates anything. When it cannot tell (the lock file is
// unreadable, or not a regular file) it reports true, so that nobody
// deletes what may be a live writer's.
func (s *Spool) LiveWriter(id archive.ID) bool {
	l, err := lock(filepath.Join(s.Dir(QueueBackup, id), LockName), false)
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	l.Close()
	return false
}
