package vault

import (
	"context"
	"errors"

	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/storage"
)

// errNoS3 is returned for s3:// vaults by a build without storage/s3.
var errNoS3 = errors.New("s3:// vaults are not supported by this build (storage/s3 is missing)")

func openS3(ctx context.Context, v *config.Vault, o Options) (storage.Store, error) {
	return nil, errNoS3
}
