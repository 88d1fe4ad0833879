package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultRescan is the rescan period daemons use when they have no reason to
// choose another: fsnotify is only a wake-up, the directory listing is the
// truth (hand-off rule 4).
const DefaultRescan = time.Minute

// Watch calls fn with the path of every regular file below root: first for
// every file already there, then for every file created or renamed into
// root or any directory below it, including directories created later. It
// adds the fsnotify watches BEFORE scanning, rescans everything every
// rescan period and whenever the kernel's event queue overflowed, so a file
// is reported at least once however it arrived; fn must treat duplicates as
// harmless (it may be called again for a file it already handled, or for
// one it already deleted and that is gone again by then). Dotfiles and
// dot-directories (staging names, locks) and symlinks are never reported or
// followed.
//
// fn runs on Watch's goroutine, one call at a time. Watch returns ctx's
// error when ctx is done, or an error if root cannot be watched.
func Watch(ctx context.Context, root string, rescan time.Duration, fn func(path string)) error {
	if rescan <= 0 {
		rescan = DefaultRescan
	}
	if err := checkRealDir(root); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	defer w.Close()
	if err := w.Add(root); err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	// scan adds a watch on every directory below dir before listing it, and
	// reports the regular files it finds.
	scan := func(dir string) {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return nil // vanished or unreadable: the next rescan tries again
			}
			if p != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			switch {
			case d.IsDir():
				// A watch limit (ENOSPC) is not fatal: rescans still see
				// everything, only later.
				_ = w.Add(p)
			case d.Type().IsRegular():
				fn(p)
			}
			return nil
		})
	}
	scan(root)
	t := time.NewTicker(rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			scan(root)
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", root)
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				scan(root)
			}
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", root)
			}
			if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Rename) {
				continue
			}
			if strings.HasPrefix(filepath.Base(ev.Name), ".") {
				continue
			}
			fi, err := os.Lstat(ev.Name)
			if err != nil {
				continue // renamed away, or already consumed
			}
			switch {
			case fi.IsDir():
				// Files may have arrived before the new watch: scan it.
				scan(ev.Name)
			case fi.Mode().IsRegular():
				fn(ev.Name)
			}
		}
	}
}
