// Package vault opens the storage.Store a configured vault's URL names:
// storage/file for file:///PATH, storage/s3 for s3://BUCKET[/KEYPREFIX].
// cryophile-freeze and cryophile-thaw open their vaults through it, so both
// read the [[vault]] table the same way.
package vault

import (
	"context"
	"fmt"

	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
)

// Options tune how a vault is opened. The zero value gives each backend's
// defaults; fields a backend has no use for are ignored.
type Options struct {
	// PartSize is the multipart part size of S3 uploads (config
	// freeze.part_size); 0 means the backend's default.
	PartSize int64
	// MultipartThreshold is the size from which S3 uploads go in parts
	// (config freeze.multipart_threshold); 0 means the backend's default.
	MultipartThreshold int64
	// Concurrency is the number of parts of one S3 upload sent at once;
	// 0 means the backend's default.
	Concurrency int
}

// Open returns the store of v, which must have passed config validation.
// A file vault's directory must exist (a missing one is more likely an
// unmounted disk than a vault to create). Errors name the vault.
func Open(ctx context.Context, v *config.Vault, o Options) (storage.Store, error) {
	switch v.Scheme() {
	case "file":
		s, err := file.New(v.Path(), file.Options{RestoreDelay: v.RestoreDelay.Duration})
		if err != nil {
			return nil, fmt.Errorf("vault %s: %w", v.ID, err)
		}
		return s, nil
	case "s3":
		s, err := openS3(ctx, v, o)
		if err != nil {
			return nil, fmt.Errorf("vault %s: %w", v.ID, err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("vault %s: url %q: unsupported scheme (want s3:// or file://)", v.ID, v.URL)
	}
}
