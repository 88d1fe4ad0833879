package freeze_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/freeze"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/file"
)

// Once uploads what a backup published into the spool to a file vault:
// the fragment as GLACIER, the manifest as STANDARD.
func ExampleFreezer_Once() {
	dir, err := os.MkdirTemp("", "freeze-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Mkdir(dir+"/spool", 0o750)
	os.Mkdir(dir+"/vault", 0o750)
	sp, err := spool.Open(dir + "/spool")
	if err != nil {
		log.Fatal(err)
	}
	vault, err := file.New(dir+"/vault", file.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// What cryophile-backup does: one fragment, then the manifest.
	vaultID := uuid.MustParse("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00")
	id, _ := archive.NewID(vaultID, "host/tank", time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
	out, err := sp.NewOutbox(context.Background(), id, spool.Budget{})
	if err != nil {
		log.Fatal(err)
	}
	data := []byte("ciphertext")
	w, _ := out.Create("chunk.000001")
	w.Write(data)
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m := &archive.Manifest{
		Format: archive.FormatVersion, BackupID: id.String(), Created: time.Now().UTC(),
		Compression: archive.CompressionNone, Encryption: archive.Encryption{Mode: archive.ModeSEIPDv1, Recipients: []string{"AB"}},
		PlaintextBytes: int64(len(data)), CiphertextBytes: int64(len(data)), FragmentSize: 1 << 20,
		Fragments: []archive.Fragment{{Name: "chunk.000001", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}},
	}
	if err := out.PublishManifest(m); err != nil {
		log.Fatal(err)
	}
	out.Close()

	f, err := freeze.New(freeze.Options{
		Spool:  sp,
		Vaults: []freeze.Vault{{ID: vaultID.String(), Store: vault}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Once(context.Background()); err != nil {
		log.Fatal(err)
	}
	vault.List(context.Background(), "host/", func(o storage.ObjectInfo) error {
		fmt.Println(o.Key[len("host/tank/")+26:], o.Class)
		return nil
	})
	// Output:
	// /chunk.000001 GLACIER
	// /manifest.json STANDARD
}
