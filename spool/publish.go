package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
)

// StagedFile is a file being written in a staging directory, to be
// published into a queue directory under its final name by Commit (hand-off
// rule 1). It implements archive.FragmentFile. A StagedFile is used by one
// goroutine at a time, except that Abort may be called concurrently.
type StagedFile struct {
	f        *os.File
	tmp      string // staging path
	queueDir string
	name     string

	// written and flushed track early writeback (see Write).
	written, flushed int64

	mu   sync.Mutex
	done bool
}

// writebackChunk is how much is written before the kernel is asked to start
// writing it back. Without it a 1 GiB fragment reaches Commit with up to
// 1 GiB of dirty pages and its fsync stalls the whole pipeline for seconds
// (measured: backup --aead to ext4 ran at 2/3 of its tmpfs speed).
const writebackChunk = 8 << 20

var _ archive.FragmentFile = (*StagedFile)(nil)

// Stage creates a new staging file in stagingDir (O_CREAT|O_EXCL|O_NOFOLLOW,
// mode 0640, a dot-name nobody else looks at) that Commit will publish as
// queueDir/name. stagingDir and queueDir must be on the same filesystem and
// must be real directories, not symlinks.
func Stage(stagingDir, queueDir, name string) (*StagedFile, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkRealDir(stagingDir); err != nil {
		return nil, fmt.Errorf("stage %s: %w", name, err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("stage %s: %w", name, err)
	}
	tmp := filepath.Join(stagingDir, "."+name+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, FileMode)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", name, err)
	}
	return &StagedFile{f: f, tmp: tmp, queueDir: queueDir, name: name}, nil
}

// checkName accepts a single, non-hidden path component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') ||
		strings.HasPrefix(name, ".") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("spool: %q: %w: not a plain file name", name, archive.ErrInvalidID)
	}
	return nil
}

// Name returns the name the file is published under.
func (f *StagedFile) Name() string { return f.name }

// Write writes to the staging file. Every writebackChunk bytes it starts
// the kernel's writeback of what was written (sync_file_range, which does
// not wait), and waits for the chunk before that, so Commit's fsync has
// little left to do and dirty pages stay bounded.
func (f *StagedFile) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", f.tmp, err)
	}
	f.written += int64(n)
	if f.written-f.flushed >= writebackChunk {
		fd := int(f.f.Fd())
		// Errors here are not fatal: Commit's fsync is what makes the
		// file durable and reports any I/O error.
		_ = unix.SyncFileRange(fd, f.flushed, f.written-f.flushed, unix.SYNC_FILE_RANGE_WRITE)
		if f.flushed >= writebackChunk {
			prev := f.flushed - writebackChunk
			_ = unix.SyncFileRange(fd, prev, writebackChunk, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		}
		f.flushed = f.written
	}
	return n, nil
}

// Commit fsyncs the staging file, publishes it as queueDir/name without ever
// replacing an existing file (an existing name is an error wrapping
// fs.ErrExist and leaves it untouched), fsyncs queueDir and removes the
// staging name. On error nothing is published and the staging file is
// removed.
func (f *StagedFile) Commit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return fmt.Errorf("publish %s: %w", filepath.Join(f.queueDir, f.name), os.ErrClosed)
	}
	f.done = true
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = publish(f.tmp, f.queueDir, f.name)
	}
	if err != nil {
		_ = removeFile(f.tmp)
		return fmt.Errorf("publish %s: %w", filepath.Join(f.queueDir, f.name), err)
	}
	return nil
}

// Abort discards the staging file. It is safe to call after Commit (it does
// nothing then) and more than once.
func (f *StagedFile) Abort() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return nil
	}
	f.done = true
	f.f.Close()
	if err := removeFile(f.tmp); err != nil {
		return fmt.Errorf("abort %s: %w", f.tmp, err)
	}
	return nil
}

// publish moves the synced file tmp to queueDir/name with one
// renameat2(RENAME_NOREPLACE), or link(2) + unlink where the filesystem has
// no renameat2 flags, then fsyncs queueDir.
func publish(tmp, queueDir, name string) error {
	qfd, err := openDir(queueDir)
	if err != nil {
		return err
	}
	defer unix.Close(qfd)
	linked := false
	err = unix.Renameat2(unix.AT_FDCWD, tmp, qfd, name, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		err = unix.Linkat(unix.AT_FDCWD, tmp, qfd, name, 0)
		linked = true
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%w: refusing to replace it", fs.ErrExist)
		}
		return err
	}
	if err := unix.Fsync(qfd); err != nil {
		return &fs.PathError{Op: "fsync", Path: queueDir, Err: err}
	}
	if linked {
		// The file is published; a leftover staging name only costs space
		// until the staging directory is removed.
		_ = removeFile(tmp)
	}
	return nil
}

// PublishFile writes a file through write into a staging file in stagingDir
// and publishes it as queueDir/name (see StagedFile.Commit): a consumer of
// queueDir never sees a partial file, and an existing queueDir/name is never
// replaced (the error wraps fs.ErrExist). If write fails nothing is
// published.
func PublishFile(stagingDir, queueDir, name string, write func(w io.Writer) error) error {
	f, err := Stage(stagingDir, queueDir, name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Abort()
		return fmt.Errorf("publish %s: %w", filepath.Join(queueDir, name), err)
	}
	return f.Commit()
}

// PublishBytes publishes b as queueDir/name through a staging file in
// stagingDir, like PublishFile.
func PublishBytes(stagingDir, queueDir, name string, b []byte) error {
	return PublishFile(stagingDir, queueDir, name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// StagingName is the directory in each queue where producers other than
// backup (thaw publishing into restore/, restore filing requests into
// thaw/) stage files before publishing them into the queue. Its dot-name
// keeps it out of every listing and watch.
const StagingName = ".staging"

// StagingDir returns ROOT/QUEUE/.staging, creating it if needed: a staging
// directory on the same filesystem as queue, for Stage and PublishFile.
// Staging names are random and created exclusively, so producers may share
// it.
func (s *Spool) StagingDir(queue string) (string, error) {
	if err := mkdirAll(s.root, queue+"/"+StagingName); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	return filepath.Join(s.root, queue, StagingName), nil
}

// CleanupStaging removes the staging files in every queue's StagingDir that
// were last modified more than olderThan ago: leftovers of producers that
// crashed mid-file. A live producer writes its staging file steadily, so
// olderThan should be well above the longest stall of a producer (hours,
// not seconds). It returns the paths removed.
func (s *Spool) CleanupStaging(olderThan time.Duration) (removed []string, err error) {
	var errs []error
	for _, q := range Queues {
		dir := filepath.Join(s.root, q, StagingName)
		if err := checkRealDir(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			errs = append(errs, err)
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("spool: %w", err))
			continue
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".tmp") {
				continue
			}
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < olderThan {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := removeFile(p); err != nil {
				errs = append(errs, fmt.Errorf("spool: %w", err))
				continue
			}
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}

// ReplaceFile atomically replaces path with b (mode, before the umask): a
// temporary file in stagingDir (on path's filesystem; path's own directory
// when empty), fsync, rename over path, fsync of path's directory. Readers
// see the old file or the new one, never a mix. Unlike PublishFile it
// overwrites: it is for files that are rewritten in place (status files,
// listings), never for queue items. path's directory is not created; if it
// is gone the error wraps fs.ErrNotExist.
func ReplaceFile(stagingDir, path string, b []byte, mode fs.FileMode) error {
	if stagingDir == "" {
		stagingDir = filepath.Dir(path)
	}
	f, err := os.CreateTemp(stagingDir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}
