package vault_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/internal/vault"
	"github.com/cryophile/cryophile/storage/file"
	"github.com/cryophile/cryophile/storage/s3"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, url string
		check     func(t *testing.T, v any)
		err       string
	}{
		{name: "file", url: "file://" + dir, check: func(t *testing.T, v any) {
			if st, ok := v.(*file.Store); !ok || st.Root() != dir {
				t.Errorf("got %T %v, want a file store at %s", v, v, dir)
			}
		}},
		{name: "file missing", url: "file://" + filepath.Join(dir, "unmounted"), err: "unmounted"},
		{name: "s3", url: "s3://bucket-name/some/prefix", check: func(t *testing.T, v any) {
			st, ok := v.(*s3.Store)
			if !ok || st.Bucket() != "bucket-name" || st.KeyPrefix() != "some/prefix" {
				t.Errorf("got %T %v, want an s3 store for bucket-name, prefix some/prefix", v, v)
			}
		}},
		{name: "other", url: "ftp://host/x", err: "unsupported scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &config.Vault{ID: "0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00", URL: tc.url, Region: "eu-west-1"}
			if tc.name != "s3" {
				v.Region = ""
			}
			st, err := vault.Open(context.Background(), v, vault.Options{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), v.ID) {
					t.Fatalf("Open(%s) = %v, want an error naming the vault and %q", tc.url, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s): %v", tc.url, err)
			}
			tc.check(t, st)
		})
	}
}
