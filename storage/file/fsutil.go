package file

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lock takes the vault-wide commit lock (flock on ROOT/.cryophile/lock)
// and returns its release. Each call opens its own file description, so it
// excludes other goroutines of this process as well as other processes.
// It is held only for the few renames and fsyncs of a commit, never while
// bytes are copied.
func (s *Store) lock() (unlock func(), err error) {
	f, err := os.OpenFile(s.path(lockFile), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// mkdirs creates the slash path rel under the root, component by
// component, fsyncing the parent of every directory it creates so that
// the new names survive a crash.
func (s *Store) mkdirs(rel string) error {
	p := s.root
	for _, c := range strings.Split(rel, "/") {
		if c == "" {
			continue
		}
		parent := p
		p = filepath.Join(p, c)
		err := os.Mkdir(p, dirMode)
		if errors.Is(err, fs.ErrExist) {
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s: not a directory (a key and a key prefix clash)", p)
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := syncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs directory p, making the names created or removed in it
// durable.
func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}

// readMeta reads key's sidecar; nil, nil if it has none.
func (s *Store) readMeta(key string) (*meta, error) {
	b, err := os.ReadFile(s.metaPath(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("corrupt metadata %s: %w", s.metaPath(key), err)
	}
	return &m, nil
}

// writeMeta replaces key's sidecar atomically (temporary file, fsync,
// rename, fsync of the directory). The caller holds the vault lock.
func (s *Store) writeMeta(key string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	dst := s.metaPath(key)
	if err := s.mkdirs(metaDir + "/" + pathDir(key)); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.path(tmpDir), "meta-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone already after the rename
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Chmod(fileMode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// removeStaleTemps removes temporary files that no live Put holds (their
// flock is free) and that are older than staleTemp.
func (s *Store) removeStaleTemps() error {
	dir := s.path(tmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-staleTemp)
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(cutoff) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
	return nil
}
