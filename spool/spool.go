package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
)

// Queue directory names below the spool root.
const (
	// QueueBackup holds cryophile-backup's staging directories; nobody else
	// reads them.
	QueueBackup = "backup"
	// QueueFreeze holds published fragments and manifests waiting for
	// cryophile-freeze.
	QueueFreeze = "freeze"
	// QueueThaw holds restore requests waiting for cryophile-thaw.
	QueueThaw = "thaw"
	// QueueRestore holds manifests, fragments and status files published by
	// cryophile-thaw for cryophile-restore.
	QueueRestore = "restore"
)

// Queues lists every queue directory, in the order Open creates them.
var Queues = []string{QueueBackup, QueueFreeze, QueueThaw, QueueRestore}

// StatusName is the file in which thaw reports progress and errors next to
// a restored archive's fragments.
const StatusName = "status.json"

// LockName is the lock file inside a backup staging directory. The outbox
// holds a flock on it for its whole life; an unlocked staging directory
// belongs to a dead writer.
const LockName = ".lock"

// Modes of what the spool creates (before the umask; the cryophile commands
// set their umask to 007, see internal/cli). Members of the spool's group
// (cryophile) run backup and restore while the daemons run as the cryophile
// user, so directories are group-writable: freeze writes receipts into and
// deletes fragments from archive directories a backup user made; restore
// deletes fragments thaw published and files requests into thaw/. Files are
// group-readable only: nobody rewrites another's file, consumers only read
// and unlink. With the spool root setgid (tmpfiles: 2770 cryophile
// cryophile) every directory and file below it belongs to the group.
const (
	DirMode  fs.FileMode = 0o770
	FileMode fs.FileMode = 0o640
)

var (
	// ErrSpool is wrapped by errors about an unusable spool: a root that is
	// missing, not a directory or not writable, or a queue path that is not
	// a real directory (a symlink planted in the spool, for instance).
	ErrSpool = errors.New("unusable spool")
	// ErrExist is wrapped when a backup ID already exists in the spool: the
	// ULID directory is never reused (hand-off rule 2).
	ErrExist = errors.New("backup id already exists in the spool")
	// ErrLocked is wrapped when a lock is held by another process or open
	// file description.
	ErrLocked = errors.New("locked by another process")
	// ErrNotRegular is wrapped when a file in a queue is not a regular file
	// (a symlink, FIFO, device or directory where a fragment or manifest
	// should be). Such files are never followed or opened for reading.
	ErrNotRegular = errors.New("not a regular file")
)

// Spool is an opened spool directory. It holds no open files; every method
// may be called from several goroutines.
type Spool struct {
	root string
	// freeSpace returns the bytes available to an unprivileged writer on
	// the filesystem holding path. Tests replace it.
	freeSpace func(path string) (int64, error)
	// cleanupGrace protects a staging directory whose lock file does not
	// exist yet: a writer creates the directory, then the lock in it.
	cleanupGrace time.Duration
	// poll is the period of the rescans that back up fsnotify events.
	poll time.Duration
}

// Open checks that root is an existing, writable directory and creates the
// missing queue directories in it (mode 0750 before the umask). Errors wrap
// ErrSpool, or the fs error (fs.ErrNotExist, fs.ErrPermission) that caused
// them, and name the path.
func Open(root string) (*Spool, error) {
	if root == "" {
		return nil, fmt.Errorf("spool: %w: no spool directory given", ErrSpool)
	}
	root = filepath.Clean(root)
	// The root is the administrator's choice and may be a symlink (for
	// instance to a larger disk); nothing below it is followed.
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w: %w", root, ErrSpool, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("spool %s: %w: not a directory", root, ErrSpool)
	}
	if err := unix.Access(root, unix.W_OK|unix.X_OK); err != nil {
		return nil, fmt.Errorf("spool %s: %w: not writable: %w", root, ErrSpool, fs.ErrPermission)
	}
	for _, q := range Queues {
		if err := mkdirAll(root, q); err != nil {
			return nil, fmt.Errorf("spool %s: %w", root, err)
		}
	}
	return &Spool{
		root:         root,
		freeSpace:    statfsFree,
		cleanupGrace: time.Minute,
		poll:         time.Second,
	}, nil
}

// Root returns the spool directory.
func (s *Spool) Root() string { return s.root }

// Dir returns the directory of archive id in queue: ROOT/QUEUE/VAULT/PREFIX/ULID.
// The zero ID gives the queue directory itself.
func (s *Spool) Dir(queue string, id archive.ID) string {
	if id == (archive.ID{}) {
		return filepath.Join(s.root, queue)
	}
	return filepath.Join(s.root, queue, filepath.FromSlash(id.Dir()))
}

func statfsFree(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Usage returns the total size of the regular files in the given queues
// (all queues if none is given). Files that vanish during the walk are
// skipped: consumers delete concurrently. So are directories it may not
// read (another user's, left in the spool): what they hold is not counted,
// and a budget never fails or waits for ever because of them; the
// consumers and CleanupDeadWriters name them.
func (s *Spool) Usage(queues ...string) (int64, error) {
	if len(queues) == 0 {
		queues = Queues
	}
	var total int64
	for _, q := range queues {
		dir := filepath.Join(s.root, q)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			total += fi.Size()
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("spool usage: %w", err)
		}
	}
	return total, nil
}

// ArchiveDir is one archive directory (VAULT/PREFIX/ULID) found in a queue.
type ArchiveDir struct {
	ID archive.ID
	// Path is the directory.
	Path string
	// Fragments are the names of the regular files named like fragments,
	// sorted by fragment number.
	Fragments []string
	// HasManifest reports whether manifest.json is present as a regular file.
	HasManifest bool
	// HasStatus reports whether status.json is present as a regular file.
	HasStatus bool
	// Other names the entries that are neither dotfiles nor one of the
	// above: unknown names and anything that is not a regular file (a
	// symlink called chunk.000001 lands here, never in Fragments).
	Other []string
	// Err is the error reading the directory (a *fs.PathError naming it)
	// when it could not be read, because it belongs to another user, say:
	// what it holds is unknown, the other fields are empty. When Path is a
	// vault or prefix directory, not an archive's, ID.ULID is zero (see
	// Unlisted) and ID.Prefix is the path so far.
	Err error
}

// Unlisted reports whether d is a vault or prefix directory that could not
// be read: the archives below it, if any, are unknown.
func (d ArchiveDir) Unlisted() bool { return d.Err != nil && d.ID.ULID == (ulid.ULID{}) }

// Archives lists the archive directories in queue, sorted by backup ID.
// Symlinks are never followed; directories that do not look like
// VAULT/PREFIX/ULID are skipped. A directory below the queue that cannot
// be read (an archive's, or a vault or prefix directory: Unlisted) is
// listed with its Err set, so that one foreign directory stops neither the
// listing nor the work on the others; its caller reports it.
func (s *Spool) Archives(queue string) ([]ArchiveDir, error) {
	qdir := filepath.Join(s.root, queue)
	if err := checkRealDir(qdir); err != nil {
		return nil, err
	}
	var out []ArchiveDir
	vaults, err := os.ReadDir(qdir)
	if err != nil {
		return nil, fmt.Errorf("spool: list %s: %w", qdir, err)
	}
	for _, v := range vaults {
		if !v.IsDir() || strings.HasPrefix(v.Name(), ".") {
			continue
		}
		vault, err := archive.ParseVault(v.Name())
		if err != nil {
			continue
		}
		vdir := filepath.Join(qdir, v.Name())
		err = filepath.WalkDir(vdir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				if d == nil || !d.IsDir() || !errors.Is(err, fs.ErrPermission) {
					return err
				}
				// A vault or prefix directory we may not read: list it
				// (Unlisted) and the rest.
				rel, _ := filepath.Rel(vdir, p)
				prefix := ""
				if rel != "." {
					prefix = filepath.ToSlash(rel)
				}
				if prefix == "" || archive.ValidatePrefix(prefix) == nil {
					out = append(out, ArchiveDir{ID: archive.ID{Vault: vault, Prefix: prefix}, Path: p, Err: err})
				}
				return fs.SkipDir
			}
			if p == vdir || !d.IsDir() {
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			u, err := archive.ParseULID(d.Name())
			if err != nil {
				return nil // a prefix component: descend
			}
			rel, _ := filepath.Rel(vdir, filepath.Dir(p))
			prefix := ""
			if rel != "." {
				prefix = filepath.ToSlash(rel)
			}
			if archive.ValidatePrefix(prefix) != nil {
				return fs.SkipDir
			}
			a, err := readArchiveDir(p, archive.ID{Vault: vault, Prefix: prefix, ULID: u})
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fs.SkipDir
				}
				a = ArchiveDir{ID: a.ID, Path: p, Err: err}
			}
			out = append(out, a)
			return fs.SkipDir
		})
		if err != nil {
			return nil, fmt.Errorf("spool: list %s: %w", qdir, err)
		}
	}
	slices.SortFunc(out, func(a, b ArchiveDir) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out, nil
}

func readArchiveDir(dir string, id archive.ID) (ArchiveDir, error) {
	a := ArchiveDir{ID: id, Path: dir}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return a, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		regular := e.Type().IsRegular()
		switch {
		case regular && name == archive.ManifestName:
			a.HasManifest = true
		case regular && name == StatusName:
			a.HasStatus = true
		case regular && isFragmentName(name):
			a.Fragments = append(a.Fragments, name)
		default:
			a.Other = append(a.Other, name)
		}
	}
	slices.SortFunc(a.Fragments, func(x, y string) int {
		nx, _ := archive.ParseFragmentName(x)
		ny, _ := archive.ParseFragmentName(y)
		return nx - ny
	})
	return a, nil
}

func isFragmentName(name string) bool {
	_, err := archive.ParseFragmentName(name)
	return err == nil
}

// RemoveArchive removes archive id's directory from queue with everything in
// it, then the VAULT/PREFIX directories left empty (never the queue
// directory). A directory that is already gone is not an error.
func (s *Spool) RemoveArchive(queue string, id archive.ID) error {
	dir := s.Dir(queue, id)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("spool: remove %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("spool: remove %s: %w: not a directory", dir, ErrSpool)
	default:
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("spool: remove %s: %w", dir, err)
		}
	}
	s.prune(queue, id)
	return nil
}

// RemoveRestored removes restore/VAULT/PREFIX/ULID (manifest, status and any
// fragment left) once cryophile-restore has finished with the archive.
func (s *Spool) RemoveRestored(id archive.ID) error { return s.RemoveArchive(QueueRestore, id) }
