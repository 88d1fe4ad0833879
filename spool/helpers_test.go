package spool_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
)

const holdLockEnv = "SPOOL_TEST_HOLD_LOCK"

// TestMain doubles as a helper process: with SPOOL_TEST_HOLD_LOCK set it
// takes that lock, says "locked" and holds it until stdin closes.
func TestMain(m *testing.M) {
	if p := os.Getenv(holdLockEnv); p != "" {
		l, err := spool.Lock(p)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		l.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdLockInOtherProcess locks path from a separate process until the test
// ends.
func holdLockInOtherProcess(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock holder: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder said %q, %v", line, err)
	}
}

func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	s, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	spool.SetPoll(s, 20*time.Millisecond)
	return s
}

func newID(t *testing.T, prefix string) archive.ID {
	t.Helper()
	id, err := archive.NewID(uuid.New(), prefix, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// manifestFor builds a valid manifest for fragments with the given contents.
func manifestFor(id archive.ID, frags ...[]byte) *archive.Manifest {
	m := &archive.Manifest{
		Format:      archive.FormatVersion,
		BackupID:    id.String(),
		Created:     time.Now().UTC().Truncate(time.Second),
		Compression: archive.CompressionNone,
		Encryption:  archive.Encryption{Mode: archive.ModeSEIPDv1, Recipients: []string{strings.Repeat("AB", 20)}},
	}
	for i, b := range frags {
		sum := sha256.Sum256(b)
		m.Fragments = append(m.Fragments, archive.Fragment{Name: archive.FragmentName(i + 1), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		m.CiphertextBytes += int64(len(b))
		m.FragmentSize = max(m.FragmentSize, int64(len(b)))
	}
	m.PlaintextBytes = m.CiphertextBytes
	return m
}

// writeFragment writes one fragment through the sink and commits it.
func writeFragment(t *testing.T, sink archive.Sink, n int, b []byte) {
	t.Helper()
	f, err := sink.Create(archive.FragmentName(n))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
}

// names lists dir's entries, or nil if dir does not exist.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// eventually waits for cond with a deadline, polling.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
}
