package freeze

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// Receipt records that one fragment is verified in the vault (see the
// package doc). Its JSON is the receipt file.
type Receipt struct {
	// Key is the object's key in the vault.
	Key string `json:"key"`
	// Size is the object's size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lower-case hex digest of the object's bytes.
	SHA256 string `json:"sha256"`
	// Class is the storage class it was put with.
	Class string `json:"class"`
	// Uploaded is when freeze verified it.
	Uploaded time.Time `json:"uploaded"`
}

// ReceiptPath returns the receipt file of fragment name in the archive
// directory dir.
func ReceiptPath(dir, name string) string {
	return filepath.Join(dir, ReceiptsDir, name+".json")
}

// readReceipt reads the receipt of fragment name; a missing one wraps
// fs.ErrNotExist.
func readReceipt(dir, name string) (*Receipt, error) {
	p := ReceiptPath(dir, name)
	fl, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	b, err := io.ReadAll(io.LimitReader(fl, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("receipt %s: %w", p, err)
	}
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("receipt %s: %w", p, err)
	}
	if d, err := hex.DecodeString(r.SHA256); err != nil || len(d) != sha256.Size || r.Size < 0 {
		return nil, fmt.Errorf("receipt %s: malformed", p)
	}
	return &r, nil
}

// writeReceipt publishes r as the receipt of fragment name (staged in
// freeze/.staging, fsynced, renamed into place, directory fsynced). An
// existing receipt is kept if it says the same.
func (f *Freezer) writeReceipt(dir, name string, r *Receipt) error {
	rdir := filepath.Join(dir, ReceiptsDir)
	switch err := os.Mkdir(rdir, spool.DirMode); {
	case err == nil:
		if err := syncDir(dir); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrExist):
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("receipt for %s: %w", filepath.Join(dir, name), errGone)
	default:
		return fmt.Errorf("receipt for %s: %w", filepath.Join(dir, name), err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	err = spool.PublishBytes(f.staging, rdir, name+".json", append(b, '\n'))
	if errors.Is(err, fs.ErrExist) {
		old, rerr := readReceipt(dir, name)
		if rerr == nil && old.Key == r.Key && old.Size == r.Size && old.SHA256 == r.SHA256 {
			return nil
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("receipt for %s: %w", filepath.Join(dir, name), errGone)
	}
	return err
}

// store returns vs's store, opening it (and aborting the incomplete
// uploads a crash left there) on first use.
func (f *Freezer) store(ctx context.Context, vs *vaultState) (storage.Store, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.store == nil {
		s, err := vs.v.Open(ctx)
		if err != nil {
			return nil, &vaultError{fmt.Errorf("open: %w", err)}
		}
		vs.store = s
	}
	if !vs.aborted {
		// Until this succeeds no upload starts on the vault: a later
		// attempt must not abort our own uploads.
		if ab, ok := vs.store.(IncompleteUploadAborter); ok {
			n, err := ab.AbortIncompleteUploads(ctx, "", f.o.AbortOlderThan)
			if err != nil {
				return nil, &vaultError{fmt.Errorf("abort incomplete uploads: %w", err)}
			}
			if n > 0 {
				f.log.Info("aborted incomplete uploads", "vault", vs.v.ID, "count", n)
			}
		}
		vs.aborted = true
	}
	return vs.store, nil
}

// objectKey is the vault key of name in archive id.
func objectKey(id archive.ID, name string) string { return path.Join(id.Key(), name) }

// uploadFragment takes one fragment through the steps of the package doc.
func (f *Freezer) uploadFragment(ctx context.Context, a *archiveState, vs *vaultState, name string) error {
	p := filepath.Join(a.dir, name)
	key := objectKey(a.id, name)

	// 1. Already receipted: only the unlink is left.
	r, err := readReceipt(a.dir, name)
	switch {
	case err == nil:
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Size() != r.Size {
			return fmt.Errorf("freeze: %s: %w: receipted as %d bytes, the spool's copy has %d", p, ErrConflict, r.Size, fi.Size())
		}
		return f.unlink(a, name)
	case errors.Is(err, fs.ErrNotExist):
	default:
		// Receipts are published whole; one that does not parse proves
		// nothing. Drop it and upload again (If-None-Match makes that a
		// Head if the object is there).
		f.log.Warn("unreadable receipt, checking the vault again", "file", p, "err", err)
		if rerr := os.Remove(ReceiptPath(a.dir, name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return rerr
		}
	}

	// 2. Hash.
	fl, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", p, errGone)
	}
	if err != nil {
		return err
	}
	defer fl.Close()
	fi, err := fl.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("freeze: %s: %w: %w", p, ErrBroken, spool.ErrNotRegular)
	}
	size := fi.Size()
	sum, err := f.digest(a, name, fl, fi)
	if err != nil {
		return err
	}
	if m := a.cachedManifest(); m != nil {
		if e, ok := m.Fragment(name); !ok || e.Size != size || e.SHA256 != hex.EncodeToString(sum) {
			return fmt.Errorf("freeze: %s: %w: the fragment does not match its manifest entry (%w)", p, ErrBroken, archive.ErrCorrupt)
		}
	}

	st, err := f.store(ctx, vs)
	if err != nil {
		return err
	}
	// 3. Put.
	t0 := time.Now()
	if _, err := fl.Seek(0, io.SeekStart); err != nil {
		return err
	}
	opts := storage.PutOptions{Class: vs.v.Class, SHA256: sum, IfNoneMatch: true}
	err = st.Put(ctx, key, fl, size, opts)
	existed := false
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrExist):
		existed = true // 4. checked by the verification below
	case errors.Is(err, storage.ErrChecksum):
		// What was read is not what was hashed: the file changed, or the
		// disk returns other bytes. Hash again next attempt.
		f.forgetDigest(a, name)
		return &vaultError{err}
	default:
		return &vaultError{err}
	}
	// 5. Verify.
	if err := f.verify(ctx, st, key, size, sum); err != nil {
		return err
	}
	elapsed := time.Since(t0)
	if existed {
		f.log.Info("already in vault", "key", key, "bytes", size)
	} else {
		f.log.Info("uploaded", "key", key, "bytes", size, "class", vs.v.Class, "seconds", strconv.FormatFloat(elapsed.Seconds(), 'f', 3, 64))
	}
	// 6. Receipt.
	rec := &Receipt{Key: key, Size: size, SHA256: hex.EncodeToString(sum), Class: vs.v.Class, Uploaded: time.Now().UTC()}
	if err := f.writeReceipt(a.dir, name, rec); err != nil {
		return err
	}
	// 7. Unlink.
	fl.Close()
	if err := f.unlink(a, name); err != nil {
		return err
	}
	f.mu.Lock()
	f.upBytes += size
	f.mu.Unlock()
	return nil
}

// verify checks that key in the vault has size bytes and, where the backend
// reports a digest, SHA-256 sum.
func (f *Freezer) verify(ctx context.Context, st storage.Store, key string, size int64, sum []byte) error {
	info, err := st.Head(ctx, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			// A put that succeeded and an object that is not there: an
			// eventually consistent listing, or someone deleting. Retry.
			return &vaultError{fmt.Errorf("verify %s: %w right after it was stored", key, err)}
		}
		return &vaultError{fmt.Errorf("verify %s: %w", key, err)}
	}
	if info.Size != size {
		return fmt.Errorf("freeze: %s: %w: the vault's object has %d bytes, the spool's %d (nothing overwritten; remove one of them)",
			key, ErrConflict, info.Size, size)
	}
	if len(info.SHA256) > 0 && !bytes.Equal(info.SHA256, sum) {
		return fmt.Errorf("freeze: %s: %w: the vault's object has SHA-256 %x, the spool's %x (nothing overwritten; remove one of them)",
			key, ErrConflict, info.SHA256, sum)
	}
	return nil
}

// digest returns the SHA-256 of fragment name, open as fl, from the cache
// when the file is unchanged.
func (f *Freezer) digest(a *archiveState, name string, fl *os.File, fi fs.FileInfo) ([]byte, error) {
	f.mu.Lock()
	c, ok := a.sums[name]
	f.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(fl, 0, fi.Size())); err != nil {
		return nil, fmt.Errorf("hash %s: %w", fl.Name(), err)
	}
	sum := h.Sum(nil)
	f.mu.Lock()
	a.sums[name] = fileSum{size: fi.Size(), mtime: fi.ModTime(), sum: sum}
	f.mu.Unlock()
	return sum, nil
}

func (f *Freezer) forgetDigest(a *archiveState, name string) {
	f.mu.Lock()
	delete(a.sums, name)
	f.mu.Unlock()
}

// cachedManifest returns the archive's manifest if it is published and
// parses, else nil.
func (a *archiveState) cachedManifest() *archive.Manifest {
	m, err := archive.ReadManifestFile(filepath.Join(a.dir, archive.ManifestName))
	if err != nil {
		return nil
	}
	return m
}

// unlink removes a receipted fragment from the spool.
func (f *Freezer) unlink(a *archiveState, name string) error {
	if err := os.Remove(filepath.Join(a.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(a.dir)
}

// uploadManifest puts the manifest of an archive whose fragments are all
// receipted, verifies it and removes the archive from the spool.
func (f *Freezer) uploadManifest(ctx context.Context, a *archiveState, vs *vaultState) error {
	mp := filepath.Join(a.dir, archive.ManifestName)
	fl, err := os.OpenFile(mp, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", mp, errGone)
	}
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(fl, 256<<20))
	fl.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", mp, err)
	}
	broken := func(format string, args ...any) error {
		return fmt.Errorf("freeze: archive %s: %w: %s", a.id, ErrBroken, fmt.Sprintf(format, args...))
	}
	m, err := archive.ParseManifest(b)
	if err != nil {
		return broken("%s: %v", mp, err)
	}
	if m.BackupID != a.id.String() {
		return broken("%s is the manifest of %s", mp, m.BackupID)
	}
	l, err := listArchive(a.dir)
	if err != nil {
		return err
	}
	if len(l.fragments) > 0 {
		// Published after the manifest? The main loop uploads them first.
		return fmt.Errorf("%s: %w", a.dir, errNotReady)
	}
	listed := map[string]bool{}
	for _, e := range m.Fragments {
		listed[e.Name] = true
		r, err := readReceipt(a.dir, e.Name)
		if errors.Is(err, fs.ErrNotExist) {
			return broken("the manifest lists %s, which is neither in the spool nor receipted as uploaded", e.Name)
		}
		if err != nil {
			return broken("%s: %v", e.Name, err)
		}
		if r.Size != e.Size || r.SHA256 != e.SHA256 {
			return broken("%s was uploaded with %d bytes, SHA-256 %s; the manifest says %d bytes, %s", e.Name, r.Size, r.SHA256, e.Size, e.SHA256)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(a.dir, ReceiptsDir)); err == nil {
		for _, e := range ents {
			if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !listed[n] {
				f.log.Warn("uploaded fragment not in the manifest", "archive", a.id.String(), "key", objectKey(a.id, n))
			}
		}
	}

	st, err := f.store(ctx, vs)
	if err != nil {
		return err
	}
	key := objectKey(a.id, archive.ManifestName)
	h := sha256.Sum256(b)
	err = st.Put(ctx, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: vs.v.ManifestClass, SHA256: h[:], IfNoneMatch: true})
	existed := errors.Is(err, storage.ErrExist)
	if err != nil && !existed {
		return &vaultError{err}
	}
	if err := f.verify(ctx, st, key, int64(len(b)), h[:]); err != nil {
		return err
	}
	if existed {
		f.log.Info("already in vault", "key", key, "bytes", len(b))
	} else {
		f.log.Info("uploaded", "key", key, "bytes", len(b), "class", vs.v.ManifestClass)
	}
	if err := f.sp.RemoveArchive(spool.QueueFreeze, a.id); err != nil {
		return err
	}
	f.log.Info("archive complete", "archive", a.id.String(), "fragments", len(m.Fragments), "bytes", m.CiphertextBytes)
	return nil
}

// errNotReady: the manifest's turn has not come (fragments appeared).
var errNotReady = errors.New("fragments still to upload")

// quarantine moves a broken archive's directory to
// freeze/.quarantine/VAULT/PREFIX/ULID (with a numeric suffix if that is
// taken). Nothing is deleted.
func (f *Freezer) quarantine(a *archiveState, cause error) {
	key := a.id.String()
	dst := filepath.Join(f.root, QuarantineDir, filepath.FromSlash(a.id.Dir()))
	err := os.MkdirAll(filepath.Dir(dst), spool.DirMode)
	if err == nil {
		for i := 0; ; i++ {
			to := dst
			if i > 0 {
				to = fmt.Sprintf("%s.%d", dst, i)
			}
			err = unix.Renameat2(unix.AT_FDCWD, a.dir, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
			if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
				continue
			}
			if err == nil {
				dst = to
			}
			break
		}
	}
	if err != nil {
		f.log.Error("broken archive left in place", "archive", key, "dir", a.dir, "err", cause, "quarantine_err", err)
		return
	}
	_ = syncDir(filepath.Dir(dst))
	_ = syncDir(filepath.Dir(a.dir))
	// Prune the VAULT/PREFIX directories left empty, never freeze/ itself.
	for d := filepath.Dir(a.dir); d != f.root && strings.HasPrefix(d, f.root+string(filepath.Separator)); d = filepath.Dir(d) {
		if unix.Rmdir(d) != nil {
			break
		}
	}
	f.log.Error("broken archive quarantined", "archive", key, "dir", dst, "err", cause)
}

// syncDir fsyncs directory p.
func syncDir(p string) error {
	d, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}
