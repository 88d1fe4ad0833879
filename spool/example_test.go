package spool_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

// A producer stages a file and publishes it into a queue in one step; a
// consumer watching the queue never sees it half-written.
func ExamplePublishFile() {
	root, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(root)
	s, err := spool.Open(root)
	if err != nil {
		fmt.Println(err)
		return
	}
	staging := filepath.Join(s.Root(), spool.QueueThaw, ".staging")
	os.Mkdir(staging, spool.DirMode)
	queue := s.Dir(spool.QueueThaw, archive.ID{})
	err = spool.PublishFile(staging, queue, "request.json", func(w io.Writer) error {
		_, err := io.WriteString(w, `{"backup_id": "..."}`)
		return err
	})
	fmt.Println(err)
	// Publishing never replaces an existing file.
	err = spool.PublishBytes(staging, queue, "request.json", []byte("{}"))
	fmt.Println(err != nil)
	// Output:
	// <nil>
	// true
}

// A backup writes fragments through an Outbox and publishes the manifest
// last; Close then removes its staging directory.
func ExampleSpool_NewOutbox() {
	root, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(root)
	s, _ := spool.Open(root)
	id, _ := archive.ParseID("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00/host/pool/01HZY8X9Q0R5V3K7M2N4P6T8W0")
	out, err := s.NewOutbox(context.Background(), id, spool.Budget{FragmentSize: 1 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	f, _ := out.Create(archive.FragmentName(1))
	f.Write([]byte("ciphertext"))
	if err := f.Commit(); err != nil {
		out.Abort()
		fmt.Println(err)
		return
	}
	// ... out.PublishManifest(w.Manifest()) once every fragment is committed.
	dirs, _ := s.Archives(spool.QueueFreeze)
	fmt.Println(dirs[0].ID, dirs[0].Fragments, dirs[0].HasManifest)
	out.Abort() // no manifest: take everything back
	dirs, _ = s.Archives(spool.QueueFreeze)
	fmt.Println(len(dirs))
	// Output:
	// 0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00/host/pool/01HZY8X9Q0R5V3K7M2N4P6T8W0 [chunk.000001] false
	// 0
}
