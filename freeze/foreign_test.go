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

// TestOnceForeignDirectory: an archive or prefix directory freeze may not
// list (another user's; mode 000 here, checked without root's DAC
// override) makes Once fail with an error naming it (not a made-up
// archive), while the archive of another prefix is uploaded in the same
// run and nothing in the foreign directory is touched; once it is
// readable again the next Once completes the archive below it.
func TestOnceForeignDirectory(t *testing.T) {
	for _, tt := range []struct {
		name string
		dir  func(archiveDir string) string
	}{
		{"archive directory", func(d string) string { return d }},
		{"prefix directory", filepath.Dir},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 1)
			v := e.vaultIDs()[0]
			foreign, fm := e.publishArchive(v, "host/foreign", 2, 10_000)
			other, om := e.publishArchive(v, "host/other", 1, 5_000)
			adir := e.sp.Dir(spool.QueueFreeze, foreign.id)
			dir := tt.dir(adir)
			if err := os.Chmod(dir, 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o750) })

			var err error
			if perr := testperm.WithoutDACOverride(func() { err = e.freezer(e.options()).Once(context.Background()) }); perr != nil {
				t.Fatal(perr)
			}
			if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Once = %v, want an error wrapping fs.ErrPermission naming %s\nlogs:\n%s", err, dir, e.logs)
			}
			if zero := (ulid.ULID{}).String(); strings.Contains(err.Error(), zero) {
				t.Errorf("Once = %v: names a made-up archive %s", err, zero)
			}
			checkInVault(t, e.vaults[v], other, om)
			for _, k := range vaultKeys(t, e.vaults[v]) {
				if strings.HasPrefix(k, foreign.id.Key()) {
					t.Errorf("%s is in the vault though freeze could not list %s", k, dir)
				}
			}

			if err := os.Chmod(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if ents, err := os.ReadDir(adir); err != nil || len(ents) != 3 {
				t.Errorf("%s holds %v (%v), want its 2 fragments and manifest untouched", adir, ents, err)
			}
			if err := e.freezer(e.options()).Once(context.Background()); err != nil {
				t.Fatalf("Once after the chmod: %v", err)
			}
			checkInVault(t, e.vaults[v], foreign, fm)
		})
	}
}
