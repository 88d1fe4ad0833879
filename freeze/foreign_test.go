package freeze_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/cryophile/cryophile/internal/testperm"
	"github.com/cryophile/cryophile/spool"
)

// TestOnceForeignArchiveDirectory: an archive directory freeze may not
// list (another user's; mode 000 here, checked without root's DAC
// override) makes Once fail with an error naming it, while the other
// archive is uploaded in the same run and nothing in the foreign one is
// touched; once it is readable again the next Once completes it.
func TestOnceForeignArchiveDirectory(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	foreign, fm := e.publishArchive(v, "host/foreign", 2, 10_000)
	other, om := e.publishArchive(v, "host/other", 1, 5_000)
	dir := e.sp.Dir(spool.QueueFreeze, foreign.id)
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	var err error
	if perr := testperm.WithoutDACOverride(func() { err = e.freezer(e.options()).Once(context.Background()) }); perr != nil {
		t.Fatal(perr)
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Once = %v, want an error wrapping fs.ErrPermission naming %s\nlogs:\n%s", err, dir, e.logs)
	}
	checkInVault(t, e.vaults[v], other, om)
	for _, k := range vaultKeys(t, e.vaults[v]) {
		if strings.HasPrefix(k, foreign.id.Key()) {
			t.Errorf("%s is in the vault though freeze could not list %s", k, dir)
		}
	}

	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 3 {
		t.Errorf("%s holds %v (%v), want its 2 fragments and manifest untouched", dir, ents, err)
	}
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once after the chmod: %v", err)
	}
	checkInVault(t, e.vaults[v], foreign, fm)
}

// TestOnceForeignPrefixDirectory: a prefix directory freeze may not list
// makes Once fail with an error naming it, while the archive of another
// prefix is uploaded in the same run; once it is readable again the next
// Once uploads what it held.
func TestOnceForeignPrefixDirectory(t *testing.T) {
	e := newEnv(t, 1)
	v := e.vaultIDs()[0]
	hidden, hm := e.publishArchive(v, "host/foreign", 2, 10_000)
	other, om := e.publishArchive(v, "host/other", 1, 5_000)
	pdir := filepath.Dir(e.sp.Dir(spool.QueueFreeze, hidden.id))
	if err := os.Chmod(pdir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(pdir, 0o750) })

	var err error
	if perr := testperm.WithoutDACOverride(func() { err = e.freezer(e.options()).Once(context.Background()) }); perr != nil {
		t.Fatal(perr)
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), pdir) {
		t.Fatalf("Once = %v, want an error wrapping fs.ErrPermission naming %s\nlogs:\n%s", err, pdir, e.logs)
	}
	// Named as what it is, not as an archive with a zero ULID.
	if zero := (ulid.ULID{}).String(); strings.Contains(err.Error(), zero) {
		t.Errorf("Once = %v: names a made-up archive %s", err, zero)
	}
	checkInVault(t, e.vaults[v], other, om)
	if err := os.Chmod(pdir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once after the chmod: %v", err)
	}
	checkInVault(t, e.vaults[v], hidden, hm)
}
