package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// maxManifestSize bounds what ReadManifestFile reads: a manifest lists about
// 150 bytes per fragment, so this is millions of fragments.
const maxManifestSize = 256 << 20

// DirSource is a Source reading the fragments of one archive from a plain
// directory holding manifest.json and chunk.NNNNNN files, as restored by
// `cryophile-restore --from DIR`. It never modifies the directory: Done
// does nothing, the user's files stay.
type DirSource struct {
	dir string
}

var _ Source = (*DirSource)(nil)

// NewDirSource returns a Source reading fragments from dir.
func NewDirSource(dir string) *DirSource { return &DirSource{dir: dir} }

// Open opens fragment f in the directory. It does not follow symbolic links
// and refuses anything but a regular file. A missing fragment returns an
// error wrapping fs.ErrNotExist that names it.
func (s *DirSource) Open(ctx context.Context, f Fragment) (io.ReadSeekCloser, error) {
	if _, err := ParseFragmentName(f.Name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return openRegular(filepath.Join(s.dir, f.Name))
}

func openRegular(path string) (*os.File, error) {
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s: is a symbolic link, refused", path)
		}
		return nil, err
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return file, nil
}

// Done does nothing: a directory given by the user is left as it is.
func (s *DirSource) Done(Fragment) error { return nil }

// ReadManifestFile reads and parses the manifest at path (a regular file,
// symbolic links not followed). Errors name the path and wrap ErrCorrupt or
// ErrUnknownFormat as ParseManifest does.
func ReadManifestFile(path string) (*Manifest, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("manifest %s: %w: larger than %d bytes", path, ErrCorrupt, maxManifestSize)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// CheckDir reports files in dir that do not belong to the archive described
// by m: anything but manifest.json, m's fragments and dotfiles. The error
// names them and wraps ErrCorrupt. Missing fragments are not reported here;
// the Reader reports them when it comes to them.
func CheckDir(dir string, m *Manifest) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive directory: %w", err)
	}
	var extra []string
	for _, e := range ents {
		name := e.Name()
		if name == ManifestName || strings.HasPrefix(name, ".") {
			continue
		}
		if _, ok := m.Fragment(name); ok && e.Type().IsRegular() {
			continue
		}
		extra = append(extra, name)
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return fmt.Errorf("archive directory %s: %w: unexpected files not in the manifest of %s: %s", dir, ErrCorrupt, m.BackupID, strings.Join(extra, ", "))
}
