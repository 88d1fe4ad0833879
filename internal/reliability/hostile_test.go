//go:build reliability

package reliability_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/thaw"
)

// TestHostileInput: bad prefixes and vault names are refused (exit 64)
// before stdin is read, leaving nothing in the spool; symlinks planted in
// freeze/ (as a fragment, as the archive directory, as a prefix directory)
// never get their targets uploaded; request files naming paths outside the
// spool are set aside and create nothing outside it; a passphrase given
// with --pass-fd is in neither the argv, the environment, the logs nor the
// spool of a running restore; the spool's files are not world-accessible.
func TestHostileInput(t *testing.T) {
	sc := begin(t, "6 hostile input")
	e := newEnv(t, "", "")
	outside := t.TempDir() // nothing may ever appear here
	canary := []byte("cryophile-canary-" + strings.Repeat("s3cr3t", 50))
	canaryFile := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(canaryFile, canary, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("names", func(t *testing.T) {
		long := strings.Repeat("a/", 451) + "b" // 903 bytes
		for _, c := range []struct{ flag, value string }{
			{"--prefix", ".."}, {"--prefix", "a/../../" + filepath.Base(outside)}, {"--prefix", "/etc"},
			{"--prefix", "a/./b"}, {"--prefix", "a//b"}, {"--prefix", "a\nb"}, {"--prefix", "a b"},
			{"--prefix", long}, {"--prefix", strings.Repeat("x", 5000)}, {"--prefix", "a\\b"},
			{"--prefix", "ünïcode"}, {"--vault", "../" + vaultID}, {"--vault", "/etc"},
			{"--vault", vaultID + "\n"}, {"--vault", strings.Repeat("0", 4096)},
			{"--vault", "11111111-2222-3333-4444-555555555555"},
		} {
			run := sc.run()
			args := []string{"--vault", vaultID, "--recipient", e.cert}
			if c.flag == "--vault" {
				args = []string{"--recipient", e.cert}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, "cryophile-backup"), append([]string{"--config", e.config, c.flag, c.value}, args...)...)
			cmd.Env = e.osEnv
			// A stdin that never ends: a backup that read it would hang.
			pr, pw, _ := os.Pipe()
			cmd.Stdin = pr
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			cancel()
			pr.Close()
			pw.Close()
			code := cmd.ProcessState.ExitCode()
			if code != exitUsage {
				run.errorf("%s %q: exit %d (%v), want %d\n%s", c.flag, short(c.value), code, err, exitUsage, errb.String())
			}
			if !strings.Contains(errb.String(), "prefix") && !strings.Contains(errb.String(), "vault") {
				run.errorf("%s %q: message names neither prefix nor vault: %s", c.flag, short(c.value), errb.String())
			}
		}
		for _, q := range []string{"freeze", "backup"} {
			if f := files(filepath.Join(e.spool, q)); len(f) > 0 {
				t.Errorf("%s/ holds %v after refused backups", q, f)
			}
		}
	})

	t.Run("symlinks in freeze", func(t *testing.T) {
		// A genuine archive to copy the manifest shape from.
		good := e.backup(strings.NewReader("genuine"), "--prefix", "hostile/good")
		gm, err := archive.ReadManifestFile(filepath.Join(e.spool, "freeze", good.Dir(), archive.ManifestName))
		if err != nil {
			t.Fatal(err)
		}
		plant := func(prefix string, link func(dir string) error) archive.ID {
			id := good
			id.Prefix = prefix
			id.ULID, _ = archive.ParseULID(fmt.Sprintf("01KAZ3M5Q8Y2X7N4H0B6C9D%03d", len(prefix)%1000))
			dir := filepath.Join(e.spool, "freeze", id.Dir())
			os.MkdirAll(filepath.Dir(dir), 0o770)
			if err := link(dir); err != nil {
				t.Fatal(err)
			}
			return id
		}
		manifestFor := func(id archive.ID, content []byte) []byte {
			m := *gm
			m.BackupID = id.String()
			s := sha256.Sum256(content)
			m.Fragments = []archive.Fragment{{Name: archive.FragmentName(1), Size: int64(len(content)), SHA256: hex.EncodeToString(s[:])}}
			m.CiphertextBytes = int64(len(content))
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		var planted []archive.ID
		// 1. The fragment is a symlink to the secret file, the manifest
		// is forged to match it.
		planted = append(planted, plant("hostile/fraglink", func(dir string) error {
			os.Mkdir(dir, 0o770)
			id, _ := archive.ParseID(vaultID + "/hostile/fraglink/" + filepath.Base(dir))
			if err := os.Symlink(canaryFile, filepath.Join(dir, archive.FragmentName(1))); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, archive.ManifestName), manifestFor(id, canary), 0o660)
		}))
		// 2. /etc/shadow itself, when there is one.
		if _, err := os.Stat("/etc/shadow"); err == nil {
			planted = append(planted, plant("hostile/shadow", func(dir string) error {
				os.Mkdir(dir, 0o770)
				return os.Symlink("/etc/shadow", filepath.Join(dir, archive.FragmentName(1)))
			}))
		}
		// 3. The archive directory is a symlink to a directory outside
		// the spool holding a complete-looking archive.
		planted = append(planted, plant("hostile/dirlink", func(dir string) error {
			ext := filepath.Join(outside, "archive")
			os.Mkdir(ext, 0o700)
			id, _ := archive.ParseID(vaultID + "/hostile/dirlink/" + filepath.Base(dir))
			os.WriteFile(filepath.Join(ext, archive.FragmentName(1)), canary, 0o600)
			os.WriteFile(filepath.Join(ext, archive.ManifestName), manifestFor(id, canary), 0o600)
			return os.Symlink(ext, dir)
		}))
		// 4. A prefix directory is a symlink.
		planted = append(planted, plant("hostile/pfxlink/x", func(dir string) error {
			ext := filepath.Join(outside, "prefix")
			os.MkdirAll(filepath.Join(ext, filepath.Base(dir)), 0o700)
			id, _ := archive.ParseID(vaultID + "/hostile/pfxlink/x/" + filepath.Base(dir))
			os.WriteFile(filepath.Join(ext, filepath.Base(dir), archive.FragmentName(1)), canary, 0o600)
			os.WriteFile(filepath.Join(ext, filepath.Base(dir), archive.ManifestName), manifestFor(id, canary), 0o600)
			os.RemoveAll(filepath.Dir(dir))
			return os.Symlink(ext, filepath.Dir(dir))
		}))
		res := e.run(nil, "cryophile-freeze", "--once")
		t.Logf("freeze --once: exit %d\n%s", res.code, tail(res.stderr, 2000))
		run := sc.run()
		if !e.inVault(good) {
			run.errorf("the genuine archive %s was not uploaded next to the planted ones", good)
		}
		shadow, _ := os.ReadFile("/etc/shadow")
		filepath.WalkDir(e.vault, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			sc.checked(int64(len(b)))
			if bytes.Contains(b, canary[:40]) || len(shadow) > 0 && bytes.Contains(b, shadow) {
				run.errorf("%s in the vault holds a symlink target's bytes", p)
			}
			return nil
		})
		for _, id := range planted {
			if e.inVault(id) {
				run.errorf("planted archive %s has a manifest in the vault", id)
			}
		}
		if b, err := os.ReadFile(canaryFile); err != nil || !bytes.Equal(b, canary) {
			run.errorf("the symlink target %s was changed or removed (%v)", canaryFile, err)
		}
		for _, p := range []string{filepath.Join(outside, "archive", archive.FragmentName(1)), filepath.Join(outside, "prefix")} {
			if _, err := os.Lstat(p); err != nil {
				run.errorf("freeze removed %s outside the spool: %v", p, err)
			}
		}
	})

	t.Run("requests outside the spool", func(t *testing.T) {
		thawDir := filepath.Join(e.spool, "thaw")
		u := "01KAZ3M5Q8Y2X7N4H0B6C9D1EF"
		var names []string
		for i, bid := range []string{
			vaultID + "/../../../" + filepath.Base(outside) + "/" + u,
			"../../" + filepath.Base(outside) + "/" + u,
			"/" + outside + "/" + u,
			vaultID + "/a\x00b/" + u,
			vaultID + "/a\nb/" + u,
			vaultID + "/" + strings.Repeat("p/", 600) + u,
			vaultID + "/" + u + "/../../../..",
		} {
			req := map[string]any{"format": thaw.RequestFormat, "kind": "restore", "id": fmt.Sprintf("01KAZ3M5Q8Y2X7N4H0B6C9D%03d", i),
				"backup_id": bid, "tier": "Bulk", "days": 1, "requested_by": "mallory", "requested_at": time.Now()}
			b, _ := json.Marshal(req)
			name := "restore-" + thaw.Key(bid) + "-" + req["id"].(string) + ".json"
			names = append(names, name)
			if err := os.WriteFile(filepath.Join(thawDir, name), b, 0o660); err != nil {
				t.Fatal(err)
			}
		}
		// A list request for a hostile prefix, and a symlinked request.
		lr := map[string]any{"format": thaw.RequestFormat, "kind": "list", "id": "01KAZ3M5Q8Y2X7N4H0B6C9D999",
			"vault": vaultID, "prefix": "../../" + filepath.Base(outside), "requested_by": "mallory", "requested_at": time.Now()}
		b, _ := json.Marshal(lr)
		os.WriteFile(filepath.Join(thawDir, "list-x-01KAZ3M5Q8Y2X7N4H0B6C9D999.json"), b, 0o660)
		os.Symlink(canaryFile, filepath.Join(thawDir, "restore-0123-01KAZ3M5Q8Y2X7N4H0B6C9D998.json"))
		names = append(names, "list-x-01KAZ3M5Q8Y2X7N4H0B6C9D999.json", "restore-0123-01KAZ3M5Q8Y2X7N4H0B6C9D998.json")

		before := files(outside)
		e.startDaemon("cryophile-thaw")
		waitFor(t, "thaw to set every hostile request aside", 30*time.Second, func() bool {
			for _, n := range names {
				if _, err := os.Lstat(filepath.Join(thawDir, n)); err == nil {
					return false
				}
			}
			return true
		})
		run := sc.run()
		if f := files(outside); len(f) != len(before) {
			run.errorf("outside the spool: %v, want only the %d files planted there", f, len(before))
		}
		if b, err := os.ReadFile(canaryFile); err != nil || !bytes.Equal(b, canary) {
			run.errorf("symlink target %s changed (%v)", canaryFile, err)
		}
		filepath.WalkDir(filepath.Join(e.spool, "restore"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				run.errorf("symlink %s in restore/", p)
			}
			return nil
		})
		if l := e.log("cryophile-thaw"); strings.Count(l, "invalid request set aside") < len(names) {
			run.errorf("thaw set aside %d requests, want %d", strings.Count(l, "invalid request set aside"), len(names))
		}
		e.stopDaemons()
	})

	t.Run("passphrase", func(t *testing.T) {
		pass := "correct-horse-battery-" + hex.EncodeToString(canary[:6])
		_, secret := e.key("carol", []byte(pass))
		id := e.backup(strings.NewReader("x"), "--prefix", "hostile/pass")
		pr, pw, _ := os.Pipe()
		pw.WriteString(pass + "\n")
		pw.Close()
		cmd := e.command("cryophile-restore", append(idArgs(id), "--key", secret, "--pass-fd", "3", "--output", filepath.Join(t.TempDir(), "o"), "-v")...)
		cmd.ExtraFiles = []*os.File{pr}
		var errb syncBuf
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pr.Close()
		defer cmd.Process.Kill()
		// thaw is not running: restore files its request and waits, with
		// the key unlocked in memory.
		waitFor(t, "restore waiting for thaw", 20*time.Second, func() bool {
			return strings.Contains(errb.String(), "thaw")
		})
		run := sc.run()
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", cmd.Process.Pid, f))
			if err != nil {
				run.errorf("/proc/%d/%s: %v", cmd.Process.Pid, f, err)
			}
			if bytes.Contains(b, []byte(pass)) {
				run.errorf("the passphrase is in /proc/PID/%s", f)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if strings.Contains(errb.String(), pass) {
			run.errorf("the passphrase is in restore's stderr")
		}
		filepath.WalkDir(e.spool, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(pass)) {
					run.errorf("the passphrase is in %s", p)
				}
			}
			return nil
		})
	})

	t.Run("modes", func(t *testing.T) {
		run := sc.run()
		e.backup(strings.NewReader(strings.Repeat("m", 1000)), "--prefix", "hostile/modes")
		filepath.WalkDir(e.spool, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, _ := d.Info()
			if fi != nil && fi.Mode().Perm()&0o007 != 0 && fi.Mode()&fs.ModeSymlink == 0 {
				run.errorf("%s is %v: others have access", p, fi.Mode())
			}
			return nil
		})
	})
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
