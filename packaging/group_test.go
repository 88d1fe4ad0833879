//go:build integration

package packaging_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Numeric ids for TestGroupSharesSpool: no entry in /etc/passwd is needed
// to run a process as them, so the host's user database is left alone.
const (
	daemonID = 64101 // the user and group cryophile
	memberID = 64102 // a member of the group cryophile, not root
)

// TestGroupSharesSpool runs the whole pipeline the way the package sets it
// up: a spool as tmpfiles.d makes it (2770 cryophile:cryophile), backup and
// restore as a member of the group with the usual umask 022, freeze and
// thaw as the user cryophile with the units' UMask=0007, a file:// vault.
// The restored stream must equal the original, and freeze must have
// emptied the queue.
//
// It holds because spool creates directories 0770 and every command sets
// its umask to 007 whatever the caller's (internal/cli).
func TestGroupSharesSpool(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as other users")
	}
	// A world-traversable work directory: the processes are not root.
	work, err := os.MkdirTemp("", "cryophile-group-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildBinaries(t, "backup", "freeze", "thaw", "restore")
	for _, c := range []string{"backup", "freeze", "thaw", "restore"} {
		copyFile(t, filepath.Join(bin, "cryophile-"+c), filepath.Join(work, "cryophile-"+c))
		os.Chmod(filepath.Join(work, "cryophile-"+c), 0o755)
	}
	cert, secret := makeKey(t, work)
	os.Chmod(cert, 0o644)
	os.Chown(secret, memberID, memberID)

	spoolDir, vaultDir, out := filepath.Join(work, "spool"), filepath.Join(work, "vault"), filepath.Join(work, "out")
	for _, d := range []string{"", "/backup", "/freeze", "/thaw", "/restore"} {
		mkdirOwned(t, spoolDir+d, 0o2770, daemonID, daemonID)
	}
	mkdirOwned(t, vaultDir, 0o750, daemonID, daemonID)
	mkdirOwned(t, out, 0o700, memberID, memberID)
	vault := uuid.NewString()
	config := filepath.Join(work, "cryophile.toml")
	writeFile(t, config, fmt.Sprintf("spool = %q\n[[vault]]\nid = %q\nurl = \"file://%s\"\nstorage_class = \"STANDARD\"\n", spoolDir, vault, vaultDir))
	os.Chmod(config, 0o644)

	data := make([]byte, 2<<20+12345)
	rand.Read(data)
	input := filepath.Join(work, "input")
	writeFile(t, input, string(data))
	os.Chmod(input, 0o644)

	// as runs a cryophile command as uid (with the group cryophile) under
	// umask; ctx bounds it.
	as := func(ctx context.Context, uid int, umask string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", "umask " + umask + ` && exec "$@"`, "sh"}, args...)...)
		cmd.Dir = work
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + work}
		groups := []uint32{daemonID}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: groups}}
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	combined := func(cmd *exec.Cmd, what string) string {
		t.Helper()
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, b)
		}
		return string(b)
	}

	id := strings.TrimSpace(combined(as(ctx, memberID, "022", filepath.Join(work, "cryophile-backup"), "--config", config,
		"--vault", vault, "--prefix", "h/p", "--recipient", cert, "--size", "1M", "--input", input, "-q"), "backup as a member of cryophile"))
	ulid := id[strings.LastIndex(id, "/")+1:]
	combined(as(ctx, daemonID, "0007", filepath.Join(work, "cryophile-freeze"), "--config", config, "--once"), "freeze as cryophile")
	if left, _ := filepath.Glob(filepath.Join(spoolDir, "freeze", vault, "h/p", ulid, "chunk.*")); len(left) > 0 {
		t.Fatalf("freeze left %v in the queue", left)
	}

	restore := as(ctx, memberID, "022", filepath.Join(work, "cryophile-restore"), "--config", config,
		"--vault", vault, "--prefix", "h/p", "--ulid", ulid, "--key", secret, "--output", filepath.Join(out, "stream"))
	var restoreOut bytes.Buffer
	restore.Stdout, restore.Stderr = &restoreOut, &restoreOut
	if err := restore.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for restore's request, then serve it.
	for {
		if reqs, _ := filepath.Glob(filepath.Join(spoolDir, "thaw", "*.json")); len(reqs) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("restore filed no request: %s", restoreOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	thawOut, thawErr := as(ctx, daemonID, "0007", filepath.Join(work, "cryophile-thaw"), "--config", config, "--once").CombinedOutput()
	if thawErr != nil {
		restore.Process.Kill()
		restore.Wait()
		t.Fatalf("thaw as cryophile: %v\n%s\nrestore:\n%s", thawErr, thawOut, restoreOut.String())
	}
	if err := restore.Wait(); err != nil {
		t.Fatalf("restore as a member of cryophile: %v\n%s", err, restoreOut.String())
	}
	got, err := os.ReadFile(filepath.Join(out, "stream"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes that differ from the %d backed up", len(got), len(data))
	}
}

func mkdirOwned(t *testing.T, dir string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// Chmod after Chown: chown clears the setgid bit.
	if err := os.Chmod(dir, mode&os.ModePerm|modeBits(mode)); err != nil {
		t.Fatal(err)
	}
}

// modeBits converts Unix setgid (02000) in a literal mode to os.ModeSetgid.
func modeBits(mode os.FileMode) os.FileMode {
	if mode&0o2000 != 0 {
		return os.ModeSetgid
	}
	return 0
}
