package vault

import (
	"context"

	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/s3"
)

func openS3(ctx context.Context, v *config.Vault, o Options) (storage.Store, error) {
	s, err := s3.New(ctx, s3.Options{
		Bucket:             v.Bucket(),
		KeyPrefix:          v.KeyPrefix(),
		Region:             v.Region,
		Endpoint:           v.Endpoint,
		PathStyle:          v.PathStyle,
		Profile:            v.Profile,
		PartSize:           o.PartSize,
		MultipartThreshold: o.MultipartThreshold,
		Concurrency:        o.Concurrency,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
