package config_test

import (
	"fmt"

	"github.com/cryophile/cryophile/config"
)

func ExampleParseSize() {
	for _, s := range []string{"256M", "1GiB", "1.5G", "20GB"} {
		n, err := config.ParseSize(s)
		fmt.Println(n, err)
	}
	// Output:
	// 268435456 <nil>
	// 1073741824 <nil>
	// 1610612736 <nil>
	// 0 size "20GB": decimal unit "GB" is ambiguous; sizes are binary: write G or GiB
}

func ExampleConfig_Vault() {
	cfg := config.Default()
	cfg.Vaults = []config.Vault{{ID: "0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00", URL: "s3://my-bucket/cryophile"}}
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	v, err := cfg.Vault("0B5D7A7E-6C1E-4A8E-9A55-3F4B2E1D9C00")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.Scheme(), v.Bucket(), v.KeyPrefix(), v.StorageClass, v.ManifestClass)
	// Output: s3 my-bucket cryophile GLACIER STANDARD
}
