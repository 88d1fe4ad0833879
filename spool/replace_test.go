package spool_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cryophile/cryophile/spool"
)

func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "status.json")
	for _, content := range []string{"first\n", "second, longer\n"} {
		if err := spool.ReplaceFile("", p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); got != content {
			t.Errorf("content = %q, want %q", got, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the file (no temporary left)", len(ents))
	}
	if err := spool.ReplaceFile(dir, filepath.Join(dir, "gone", "x"), []byte("x"), 0o640); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("replace into a removed directory: %v, want fs.ErrNotExist", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("a failed replace left %d entries, want 1", len(ents))
	}
}
