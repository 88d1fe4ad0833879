package cli_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/internal/cli"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, cli.ExitOK},
		{"attached code wins", cli.WithCode(cli.ExitData, fmt.Errorf("x: %w", spool.ErrSpool)), cli.ExitData},
		{"usage", cli.Usagef("bad flag"), cli.ExitUsage},
		{"config", fmt.Errorf("load: %w", config.ErrConfig), cli.ExitUsage},
		{"unknown vault", fmt.Errorf("x: %w", config.ErrUnknownVault), cli.ExitUsage},
		{"invalid id", fmt.Errorf("prefix: %w", archive.ErrInvalidID), cli.ExitUsage},
		{"id exists", fmt.Errorf("x: %w", spool.ErrExist), cli.ExitUsage},
		{"corrupt", fmt.Errorf("chunk.000002: %w", archive.ErrCorrupt), cli.ExitData},
		{"not recipient", fmt.Errorf("x: %w", archive.ErrNotRecipient), cli.ExitData},
		{"bad passphrase", fmt.Errorf("x: %w", archive.ErrBadPassphrase), cli.ExitData},
		{"checksum", fmt.Errorf("x: %w", storage.ErrChecksum), cli.ExitData},
		{"vault permanent", fmt.Errorf("x: %w", storage.ErrPermanent), cli.ExitUnavailable},
		{"locked", fmt.Errorf("x: %w", spool.ErrLocked), cli.ExitTemp},
		{"cancelled", context.Canceled, cli.ExitTemp},
		{"path error", &fs.PathError{Op: "open", Path: "/x", Err: os.ErrPermission}, cli.ExitIO},
		{"unforeseen error is never success", errors.New("something"), cli.ExitIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cli.Code(tt.err, cli.Classify); got != tt.want {
				t.Errorf("Code(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {3 << 29, "1.5 GiB"}} {
		if got := cli.Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
