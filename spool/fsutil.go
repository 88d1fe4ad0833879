package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
)

// mkdirAll creates root/rel component by component (mode DirMode). An
// existing component must be a real directory: a symlink is refused, not
// followed. rel is slash-separated.
func mkdirAll(root, rel string) error {
	p := root
	for _, c := range strings.Split(rel, "/") {
		if c == "" {
			continue
		}
		p = filepath.Join(p, c)
		err := os.Mkdir(p, DirMode)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := checkRealDir(p); err != nil {
			return err
		}
	}
	return nil
}

// mkdirExclusive creates root/rel's parents as mkdirAll does, then rel's last
// component exclusively: an existing one is an error wrapping fs.ErrExist.
// A parent removed concurrently (empty VAULT/PREFIX directories are pruned)
// is recreated.
func mkdirExclusive(root, rel string) error {
	parent, _ := pathSplit(rel)
	dir := filepath.Join(root, filepath.FromSlash(rel))
	var err error
	for range 100 {
		if err = mkdirAll(root, parent); err == nil {
			if err = os.Mkdir(dir, DirMode); err != nil {
				err = fmt.Errorf("create %s: %w", dir, err)
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return err
}

func pathSplit(rel string) (parent, last string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// checkRealDir returns nil if p is a directory and not a symlink.
func checkRealDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s: %w: a symlink where a directory belongs (not followed)", p, ErrSpool)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w: not a directory", p, ErrSpool)
	}
	return nil
}

// openDir opens directory p for fsync or *at calls, refusing a symlink.
func openDir(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%s: %w: not a real directory (symlinks are not followed)", p, ErrSpool)
		}
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// syncDir fsyncs directory p, making the names created or removed in it
// durable.
func syncDir(p string) error {
	fd, err := openDir(p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: p, Err: err}
	}
	return nil
}

// prune removes the VAULT/PREFIX directories above id's directory in queue
// that are empty, bottom up, never the queue directory itself. rmdir(2)
// only removes empty directories, so a concurrent writer loses nothing: at
// worst its mkdir of the ULID directory meets ENOENT and mkdirExclusive
// recreates the parents.
func (s *Spool) prune(queue string, id archive.ID) {
	qdir := filepath.Join(s.root, queue)
	dir := filepath.Dir(s.Dir(queue, id))
	for dir != qdir && strings.HasPrefix(dir, qdir+string(filepath.Separator)) {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// removeFile removes a file, ignoring one that is already gone.
func removeFile(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
