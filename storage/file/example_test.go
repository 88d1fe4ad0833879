package file_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
)

// A GLACIER object in a file vault cannot be read until it is restored.
func Example() {
	root, err := os.MkdirTemp("", "vault")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	vault, err := file.New(root, file.Options{}) // RestoreDelay 0: restores complete at once
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	key := "host/pool/01J0000000000000000000000/chunk.000001"
	data := "ciphertext"
	if err := vault.Put(ctx, key, strings.NewReader(data), int64(len(data)), storage.PutOptions{Class: storage.ClassGlacier}); err != nil {
		log.Fatal(err)
	}
	_, err = vault.Get(ctx, key, 0, -1)
	fmt.Println("before restore, archived:", errors.Is(err, storage.ErrArchived))

	if err := vault.Restore(ctx, key, 7, storage.TierBulk); err != nil {
		log.Fatal(err)
	}
	rc, err := vault.Get(ctx, key, 0, -1)
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	fmt.Println("after restore:", string(b))
	// Output:
	// before restore, archived: true
	// after restore: ciphertext
}
