//go:build integration

package e2e_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreRefusesExposedKey: a secret key file its group or others can
// read is refused with exit 64 and a chmod hint before any fragment is
// read; at 0600 the same file restores.
func TestRestoreRefusesExposedKey(t *testing.T) {
	e := newEnv(t, "")
	cert, secret := e.gpgKey("alice", "")
	data := testData(100_000, 5)
	id := e.backup(data, "--recipient", cert)
	dir := filepath.Join(e.spool, "freeze", id)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		if err := os.Chmod(secret, mode); err != nil {
			t.Fatal(err)
		}
		r := e.run(nil, "cryophile-restore", "--from", dir, "--key", secret)
		expect(t, r, exitUsage, secret, "chmod 600 "+secret)
		if r.stdout != "" {
			t.Errorf("mode %04o: %d bytes written", mode, len(r.stdout))
		}
	}
	os.Chmod(secret, 0o600)
	r := e.run(nil, "cryophile-restore", "--from", dir, "--key", secret)
	if r.code != 0 || !bytes.Equal([]byte(r.stdout), data) {
		t.Fatalf("at 0600: exit %d, %d bytes\n%s", r.code, len(r.stdout), r.stderr)
	}
}
