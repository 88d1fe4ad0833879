package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/storage"
)

var _ storage.Store = (*Store)(nil)

// Names inside the vault root. No key may start with hiddenDir.
const (
	hiddenDir = ".cryophile"
	metaDir   = hiddenDir + "/meta"
	tmpDir    = hiddenDir + "/tmp"
	lockFile  = hiddenDir + "/lock"

	// staleTemp is how old an unlocked temporary file must be before New
	// removes it. The age guards the instant between a Put creating its
	// temporary file and locking it.
	staleTemp = time.Hour

	dirMode  = 0o750
	fileMode = 0o640
)

// Options tune a file vault. The zero value is a vault whose archived
// objects are readable as soon as a restore is requested.
type Options struct {
	// RestoreDelay is how long after a Restore request an archived object
	// (GLACIER, DEEP_ARCHIVE) becomes readable, for every tier. The
	// config's restore_delay; default 0.
	RestoreDelay time.Duration
	// Now is the clock for restore state; nil means time.Now. Tests inject
	// a fake one.
	Now func() time.Time
	// DayLength is the length of one of the days a restored copy is kept
	// (Restore's days argument); default 24h. Tests scale it down.
	DayLength time.Duration
}

// Store is a file:// vault rooted at one directory. It is safe for
// concurrent use by several goroutines and several processes.
type Store struct {
	root string
	opts Options
}

// New opens the vault at root, which must be an existing directory: a
// missing one is more likely an unmounted NAS or USB disk than a vault to
// create. It creates the hidden state directory if needed and removes
// temporary files left behind by crashed uploads.
func New(root string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DayLength <= 0 {
		opts.DayLength = 24 * time.Hour
	}
	if opts.RestoreDelay < 0 {
		return nil, fmt.Errorf("file vault %s: negative restore delay %v", root, opts.RestoreDelay)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("file vault %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("file vault: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file vault %s: not a directory", abs)
	}
	s := &Store{root: abs, opts: opts}
	for _, d := range []string{metaDir, tmpDir} {
		if err := s.mkdirs(d); err != nil {
			return nil, fmt.Errorf("file vault %s: %w", abs, err)
		}
	}
	if err := s.removeStaleTemps(); err != nil {
		return nil, fmt.Errorf("file vault %s: %w", abs, err)
	}
	return s, nil
}

// Root returns the vault's directory.
func (s *Store) Root() string { return s.root }

// meta is the sidecar JSON of one object.
type meta struct {
	Class string `json:"class"`
	// Size ties the sidecar to its object's bytes: a sidecar whose size
	// differs belongs to other bytes (see the package doc).
	Size    int64         `json:"size"`
	SHA256  string        `json:"sha256"`
	Restore *restoreState `json:"restore,omitempty"`
}

// restoreState is the last restore request of an archived object.
type restoreState struct {
	Tier      string    `json:"tier"`
	Days      int       `json:"days"`
	Requested time.Time `json:"requested"`
	// Ready is when the restore completes; Expiry when the restored copy
	// goes away.
	Ready  time.Time `json:"ready"`
	Expiry time.Time `json:"expiry"`
}

// status is the restore status at now.
func (r *restoreState) status(now time.Time) storage.RestoreStatus {
	switch {
	case r == nil:
		return storage.RestoreStatus{}
	case now.Before(r.Ready):
		return storage.RestoreStatus{Ongoing: true}
	case now.Before(r.Expiry):
		return storage.RestoreStatus{Expiry: r.Expiry}
	default: // expired: back to archived
		return storage.RestoreStatus{}
	}
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (err error) {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("file vault: put: %w", err)
	}
	class := opts.Class
	if class == "" {
		class = storage.ClassStandard
	}
	if !validClass(class) {
		return fmt.Errorf("file vault: put %s: %w: invalid storage class %q", key, storage.ErrPermanent, class)
	}
	if opts.SHA256 != nil && len(opts.SHA256) != sha256.Size {
		return fmt.Errorf("file vault: put %s: SHA-256 of %d bytes, want %d", key, len(opts.SHA256), sha256.Size)
	}
	if size < 0 {
		return fmt.Errorf("file vault: put %s: negative size %d", key, size)
	}

	tmp, err := os.CreateTemp(s.path(tmpDir), "put-*")
	if err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // gone already after a rename
	}()
	// Held until the deferred Close: tells New in another process that this
	// temporary file is in use.
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("file vault: put %s: lock %s: %w", key, tmp.Name(), err)
	}
	if err := tmp.Chmod(fileMode); err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(ctxReader{ctx, r}, size))
	if err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}
	if n != size {
		return fmt.Errorf("file vault: put %s: %w: read %d of %d bytes", key, io.ErrUnexpectedEOF, n, size)
	}
	sum := h.Sum(nil)
	if opts.SHA256 != nil && !bytes.Equal(sum, opts.SHA256) {
		return fmt.Errorf("file vault: put %s: %w: SHA-256 %x, want %x", key, storage.ErrChecksum, sum, opts.SHA256)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}

	unlock, err := s.lock()
	if err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}
	defer unlock()
	if err := s.commit(key, tmp.Name(), meta{Class: class, Size: size, SHA256: hex.EncodeToString(sum)}, opts.IfNoneMatch); err != nil {
		return fmt.Errorf("file vault: put %s: %w", key, err)
	}
	return nil
}

// commit moves the temporary file tmp into place as key, sidecar first.
// The caller holds the vault lock.
func (s *Store) commit(key, tmp string, m meta, ifNoneMatch bool) error {
	dst := s.path(key)
	fi, err := os.Lstat(dst)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("key is a directory holding other keys: %s", dst)
	case err == nil && ifNoneMatch:
		return storage.ErrExist
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR):
		return err
	}
	parent := pathDir(key)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	if err := s.writeMeta(key, m); err != nil {
		return err
	}
	if ifNoneMatch {
		// link(2) never replaces: the lock already excludes other
		// cryophile writers; this also excludes anyone else.
		if err := os.Link(tmp, dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return storage.ErrExist
			}
			return err
		}
	} else if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// Head implements storage.Store.
func (s *Store) Head(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("file vault: head: %w", err)
	}
	fi, err := s.statObject(key)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("file vault: head %s: %w", key, err)
	}
	info, _, err := s.info(key, fi)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("file vault: head %s: %w", key, err)
	}
	return info, nil
}

// statObject stats key's data file; a missing one (or a directory) wraps
// storage.ErrNotExist.
func (s *Store) statObject(key string) (fs.FileInfo, error) {
	fi, err := os.Lstat(s.path(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || (err == nil && !fi.Mode().IsRegular()) {
		return nil, storage.ErrNotExist
	}
	return fi, err
}

// info describes key, whose data file is fi, from its sidecar.
func (s *Store) info(key string, fi fs.FileInfo) (storage.ObjectInfo, *meta, error) {
	info := storage.ObjectInfo{Key: key, Size: fi.Size(), Class: storage.ClassStandard, Modified: fi.ModTime()}
	m, err := s.readMeta(key)
	if err != nil {
		return info, nil, err
	}
	if m == nil || m.Size != fi.Size() {
		return info, nil, nil // see the package doc: no usable sidecar
	}
	info.Class = m.Class
	if sum, err := hex.DecodeString(m.SHA256); err == nil && len(sum) == sha256.Size {
		info.SHA256 = sum
	}
	if storage.NeedsRestore(m.Class) {
		info.Restore = m.Restore.status(s.opts.Now())
	}
	return info, m, nil
}

// Get implements storage.Store. An offset beyond the end is an error; a
// length beyond the end stops at the end.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("file vault: get: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("file vault: get %s: negative offset %d", key, offset)
	}
	f, err := os.OpenFile(s.path(key), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("file vault: get %s: %w", key, storage.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("file vault: get %s: %w", key, err)
	}
	rc, err := s.section(f, key, offset, length)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file vault: get %s: %w", key, err)
	}
	return rc, nil
}

// section checks that key, open as f, may be read and returns the range.
func (s *Store) section(f *os.File, key string, offset, length int64) (io.ReadCloser, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, storage.ErrNotExist
	}
	info, _, err := s.info(key, fi)
	if err != nil {
		return nil, err
	}
	if !info.Readable() {
		return nil, fmt.Errorf("%w (class %s)", storage.ErrArchived, info.Class)
	}
	size := fi.Size()
	if offset > size {
		return nil, fmt.Errorf("offset %d beyond the end (%d bytes)", offset, size)
	}
	if length < 0 || length > size-offset {
		length = size - offset
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, length), f}, nil
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	dir, _ := pathSplit(prefix)
	if err := checkPrefixDir(dir); err != nil {
		return fmt.Errorf("file vault: list: %w", err)
	}
	if dir == hiddenDir || strings.HasPrefix(dir, hiddenDir+"/") {
		return nil
	}
	keys, err := s.keys(prefix)
	if err != nil {
		return fmt.Errorf("file vault: list %q: %w", prefix, err)
	}
	// A directory walk is not key order: "a/b" walks before "a.c" but
	// sorts after it ('.' < '/').
	slices.Sort(keys)
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("file vault: list %q: %w", prefix, err)
		}
		fi, err := s.statObject(key)
		if errors.Is(err, storage.ErrNotExist) {
			continue // deleted since the walk
		}
		if err != nil {
			return fmt.Errorf("file vault: list %q: %s: %w", prefix, key, err)
		}
		info, _, err := s.info(key, fi)
		if err != nil {
			return fmt.Errorf("file vault: list %q: %s: %w", prefix, key, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// keys returns the keys starting with prefix, unordered. It reads only the
// directory holding prefix's last component and the subtrees that match.
func (s *Store) keys(prefix string) ([]string, error) {
	dir, name := pathSplit(prefix)
	entries, err := os.ReadDir(s.path(dir))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		key := pathJoin(dir, e.Name())
		if !strings.HasPrefix(e.Name(), name) || key == hiddenDir {
			continue
		}
		if e.Type().IsRegular() {
			keys = append(keys, key)
			continue
		}
		if !e.IsDir() {
			continue // symlinks and devices are not objects
		}
		err := filepath.WalkDir(s.path(key), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // pruned by a concurrent Delete
			}
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				rel, err := filepath.Rel(s.root, p)
				if err != nil {
					return err
				}
				keys = append(keys, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Restore implements storage.Store. Every tier takes Options.RestoreDelay;
// Expedited on DEEP_ARCHIVE is refused, as AWS refuses it.
func (s *Store) Restore(ctx context.Context, key string, days int, tier string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("file vault: restore: %w", err)
	}
	if days < 1 {
		return fmt.Errorf("file vault: restore %s: %w: %d days, want at least 1", key, storage.ErrPermanent, days)
	}
	switch tier {
	case storage.TierBulk, storage.TierStandard, storage.TierExpedited:
	default:
		return fmt.Errorf("file vault: restore %s: %w: unknown tier %q", key, storage.ErrPermanent, tier)
	}
	unlock, err := s.lock()
	if err != nil {
		return fmt.Errorf("file vault: restore %s: %w", key, err)
	}
	defer unlock()
	if err := s.restore(key, days, tier); err != nil {
		return fmt.Errorf("file vault: restore %s: %w", key, err)
	}
	return nil
}

// restore does Restore's work under the vault lock.
func (s *Store) restore(key string, days int, tier string) error {
	fi, err := s.statObject(key)
	if err != nil {
		return err
	}
	info, m, err := s.info(key, fi)
	if err != nil {
		return err
	}
	if !storage.NeedsRestore(info.Class) {
		return nil
	}
	if info.Class == storage.ClassDeepArchive && tier == storage.TierExpedited {
		return fmt.Errorf("%w: tier %s is not available for %s", storage.ErrPermanent, tier, info.Class)
	}
	now := s.opts.Now()
	keep := time.Duration(days) * s.opts.DayLength
	switch st := info.Restore; {
	case st.Ongoing:
		return storage.ErrRestoreInProgress
	case !st.Expiry.IsZero():
		// Already restored: AWS moves the expiry to days after this request.
		m.Restore.Days, m.Restore.Expiry = days, now.Add(keep)
	default:
		ready := now.Add(s.opts.RestoreDelay)
		m.Restore = &restoreState{Tier: tier, Days: days, Requested: now, Ready: ready, Expiry: ready.Add(keep)}
	}
	return s.writeMeta(key, *m)
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("file vault: delete: %w", err)
	}
	unlock, err := s.lock()
	if err != nil {
		return fmt.Errorf("file vault: delete %s: %w", key, err)
	}
	defer unlock()
	if _, err := s.statObject(key); errors.Is(err, storage.ErrNotExist) {
		return nil
	}
	// Data first: once it is gone the key is gone, whatever happens to
	// the sidecar.
	for _, p := range []string{s.path(key), s.metaPath(key)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file vault: delete %s: %w", key, err)
		}
		if err := syncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("file vault: delete %s: %w", key, err)
		}
	}
	s.prune(pathDir(key))
	s.prune(metaDir + "/" + pathDir(key))
	return nil
}

// prune removes rel and its parents while they are empty, never the root
// or the hidden directories. The caller holds the vault lock, so no Put is
// between its mkdirs and its rename.
func (s *Store) prune(rel string) {
	for rel != "" && rel != "." && rel != metaDir && rel != metaDir+"/" {
		if err := unix.Rmdir(s.path(rel)); err != nil {
			return
		}
		rel = pathDir(rel)
	}
}

// path returns the file name of the slash path rel under the root.
func (s *Store) path(rel string) string {
	return filepath.Join(s.root, filepath.FromSlash(rel))
}

// metaPath returns the sidecar file name of key.
func (s *Store) metaPath(key string) string { return s.path(metaDir + "/" + key) }

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func validClass(c string) bool {
	switch c {
	case storage.ClassStandard, storage.ClassStandardIA, storage.ClassGlacierIR, storage.ClassGlacier, storage.ClassDeepArchive:
		return true
	}
	return false
}
