//go:build reliability

package reliability_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/thaw"
)

// TestForeignOwners runs the pipeline as the package installs it
// (newSharedEnv: freeze and thaw as the user cryophile, backup and restore
// as a member of its group, a 2770 spool) with files in the spool that
// belong to a third user, not in the group, who made them unreadable. That
// is what an administrator's `cp -a`, a restore from tar or a `sudo -u`
// slip leaves behind.
//
// What is expected, where README and DESIGN do not say it, is what a
// careful user would expect: the file is named with its path and the
// system's own words ("permission denied"); nothing is deleted (DESIGN,
// hand-off rule 5: the foreign file may be the only copy); everything else
// proceeds; once the administrator gives the file back (chown, as they
// would), the next run finishes the job. In detail:
//
//   - a. A fragment freeze cannot read: freeze --once exits 74 (README "Exit
//     status": I/O error) naming the fragment's path and "permission
//     denied"; the fragment and the archive's manifest stay in the spool,
//     the manifest is not uploaded; another archive in freeze/ is uploaded
//     completely in the same run. After the chown, the next --once
//     completes the archive and it restores bit-identical.
//   - b. An archive directory freeze cannot list: exit 74 naming the
//     directory; the other archive is uploaded in the same run; nothing in
//     the directory is deleted; after the chown it completes.
//   - b2. A prefix directory freeze cannot list: the same, for every
//     archive below it.
//   - c. A request thaw cannot read: the daemon sets it aside like any
//     invalid request ("invalid request set aside", into thaw/.rejected:
//     never deleted), naming it, once (no spinning), and serves a normal
//     restore in the same run.
//   - d. A dead backup's staging directory cleanup cannot remove: backup
//     still exits 0 (also with a spool budget, which makes it measure
//     backup/) and warns naming the directory; freeze's start-up clean-up
//     warns the same and the daemon runs on and uploads; the directory's
//     content is untouched. After the chown, the next backup's clean-up
//     removes it: it was a dead writer's.
//   - e. A fragment restore --from DIR cannot read: exit 74 (an unreadable
//     input file is an I/O error, not corrupt data: README's 65 is for
//     corrupt, missing or truncated fragments) naming the fragment and
//     "permission denied"; no --output file; nothing in DIR deleted.
func TestForeignOwners(t *testing.T) {
	sc := begin(t, "10 foreign owners")
	e := newSharedEnv(t, "")
	freezeDir := filepath.Join(e.spool, "freeze")
	// backupAs backs n seeded bytes up in 1 MiB fragments (several of them)
	// and returns the ID and the data's SHA-256.
	backupAs := func(prefix string, n int, seed uint64) (archive.ID, string) {
		b, h := data(n, seed)
		return e.backup(bytes.NewReader(b), "--prefix", prefix, "--size", "1M"), h
	}
	// restored restores id through the thaw daemon (which must run) and
	// checks the stream.
	restored := func(run *run, id archive.ID, want string) {
		t.Helper()
		r, got, n := e.restoreWithTimeout(id, 2*time.Minute)
		if r.code != 0 || got != want {
			run.errorf("restore %s: exit %d, sha256 %s, want 0 and %s\n%s", id, r.code, got, want, r.stderr)
			return
		}
		sc.checked(n)
	}
	// giveBack hands path (and what is below it) back to the member, as an
	// administrator would.
	giveBack := func(path string) {
		t.Helper()
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o640)
			if d.IsDir() {
				mode = 0o770 | fs.ModeSetgid
			}
			if err := os.Lchown(p, memberUID, daemonUID); err != nil {
				return err
			}
			return os.Chmod(p, mode)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// stopThaw stops the daemons once thaw has finished (and removed) every
	// request: one left filed would be served again by the next thaw.
	stopThaw := func() {
		t.Helper()
		waitFor(t, "thaw to finish its requests", 30*time.Second, func() bool {
			left, _ := filepath.Glob(filepath.Join(e.spool, "thaw", "*.json"))
			return len(left) == 0
		})
		e.stopDaemons()
	}
	// completes checks that, the foreign file given back, the next freeze
	// --once uploads id and both it and other restore bit-identical.
	completes := func(id archive.ID, want string, other archive.ID, otherWant string) {
		t.Helper()
		run := sc.run()
		if r := e.run(nil, "cryophile-freeze", "--once"); r.code != 0 {
			run.errorf("freeze --once after the chown: exit %d\n%s", r.code, r.stderr)
		}
		if !e.inVault(id) {
			run.errorf("%s is not in the vault after the chown", id)
		}
		e.startDaemon("cryophile-thaw")
		restored(run, id, want)
		restored(run, other, otherWant)
		stopThaw()
	}
	// takeAway gives path to the stranger, with mode.
	takeAway := func(path string, mode fs.FileMode) {
		t.Helper()
		if err := os.Lchown(path, strangerUID, strangerUID); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}

	// refused checks that a command (what) met the unreadable path: exit
	// 74 (README "Exit status": I/O error) and a message naming path and
	// "permission denied".
	refused := func(run *run, what string, r result, path string) {
		t.Helper()
		if r.code != 74 {
			run.errorf("%s: exit %d, want 74\n%s", what, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "permission denied") {
			run.errorf("%s: the message names neither %s nor \"permission denied\":\n%s", what, path, r.stderr)
		}
	}
	// freezeRefuses runs freeze --once with path unreadable: refused, id
	// not in the vault, other uploaded in the same run, path untouched.
	freezeRefuses := func(run *run, path string, id, other archive.ID) result {
		t.Helper()
		before := digests(t, path)
		r := e.run(nil, "cryophile-freeze", "--once")
		refused(run, "freeze --once", r, path)
		if after := digests(t, path); !maps.Equal(before, after) {
			run.errorf("%s changed: %v, was %v", path, after, before)
		}
		if e.inVault(id) {
			run.errorf("%s is in the vault though freeze could not read %s", id, path)
		}
		if !e.inVault(other) {
			run.errorf("the other archive %s was not uploaded in the same run\n%s", other, r.stderr)
		}
		return r
	}

	t.Run("a unreadable fragment", func(t *testing.T) {
		id, want := backupAs("owners/a", 3*mib, 101)
		other, otherWant := backupAs("owners/a-other", 2*mib, 102)
		frag := filepath.Join(freezeDir, id.Dir(), archive.FragmentName(1))
		manifest := filepath.Join(freezeDir, id.Dir(), archive.ManifestName)
		takeAway(frag, 0o600)

		run := sc.run()
		t0 := time.Now()
		r := e.run(nil, "cryophile-freeze", "--once")
		sc.note("a: freeze --once with an unreadable fragment: exit %d after %v", r.code, time.Since(t0).Round(100*time.Millisecond))
		refused(run, "freeze --once", r, frag)
		// Retrying at once cannot help: only an administrator can.
		if strings.Contains(r.stderr, "upload failed, retrying") {
			run.errorf("freeze --once retried a fragment it may not read:\n%s", r.stderr)
		}
		for _, p := range []string{frag, manifest} {
			if _, err := os.Lstat(p); err != nil {
				run.errorf("%s left the spool: %v", p, err)
			}
		}
		if e.inVault(id) {
			run.errorf("the manifest of %s is in the vault while %s was not uploaded", id, frag)
		}
		if !e.inVault(other) {
			run.errorf("the other archive %s was not uploaded in the same run\n%s", other, r.stderr)
		}
		if _, err := os.Lstat(filepath.Join(freezeDir, other.Dir())); err == nil {
			run.errorf("the other archive %s is still in freeze/ after its upload", other)
		}

		giveBack(frag)
		completes(id, want, other, otherWant)
	})

	t.Run("b unlistable archive directory", func(t *testing.T) {
		id, want := backupAs("owners/b", 3*mib, 201)
		other, otherWant := backupAs("owners/b-other", 2*mib, 202)
		dir := filepath.Join(freezeDir, id.Dir())
		takeAway(dir, 0o700)
		freezeRefuses(sc.run(), dir, id, other)

		giveBack(dir)
		completes(id, want, other, otherWant)
	})

	t.Run("b2 unlistable prefix directory", func(t *testing.T) {
		id, want := backupAs("owners/b2/hidden/pool", 3*mib, 211)
		other, otherWant := backupAs("owners/b2-other", 2*mib, 212)
		dir := filepath.Join(freezeDir, id.Vault.String(), "owners", "b2", "hidden")
		takeAway(dir, 0o700)
		freezeRefuses(sc.run(), dir, id, other)

		giveBack(dir)
		completes(id, want, other, otherWant)
	})

	t.Run("c unreadable request", func(t *testing.T) {
		id, want := backupAs("owners/c", 2*mib, 301)
		other, otherWant := backupAs("owners/c-other", mib, 302)
		if r := e.run(nil, "cryophile-freeze", "--once"); r.code != 0 {
			t.Fatalf("freeze --once: exit %d\n%s", r.code, r.stderr)
		}
		// A well-formed request for the same archive: only its owner and
		// mode are wrong.
		req, err := thaw.NewRestoreRequest(id, "Bulk", 1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(e.spool, "thaw", req.Name())
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		takeAway(p, 0o600)
		rejected := filepath.Join(e.spool, "thaw", ".rejected", req.Name())

		thawd := e.startDaemon("cryophile-thaw")
		run := sc.run()
		restored(run, id, want)
		waitFor(t, "thaw to set "+p+" aside", 30*time.Second, func() bool {
			_, err := os.Lstat(rejected)
			return err == nil
		})
		if !alive(thawd) {
			run.errorf("thaw exited:\n%s", tail(e.log("cryophile-thaw"), 2000))
		}
		if got, err := os.ReadFile(rejected); err != nil || !bytes.Equal(got, b) {
			run.errorf("%s set aside as %s with other content (%v)", p, rejected, err)
		}
		// A restore of another archive in the same run: thaw still serves,
		// and has not reported the file again.
		restored(run, other, otherWant)
		l := e.log("cryophile-thaw")
		n := 0
		for _, line := range strings.Split(l, "\n") {
			if strings.Contains(line, "invalid request set aside") && strings.Contains(line, p) {
				n++
			}
		}
		if n != 1 {
			run.errorf("thaw reported %s %d times, want once:\n%s", p, n, tail(l, 2000))
		}
		if !strings.Contains(l, "permission denied") {
			run.errorf("thaw's log does not say why %s was set aside:\n%s", p, tail(l, 2000))
		}
		stopThaw()
	})

	t.Run("d dead staging directory", func(t *testing.T) {
		// A backup killed by SIGKILL leaves its staging directory: the
		// lock file and a fragment being written.
		u, _ := archive.ParseULID("01KAZ3M5Q8Y2X7N4H0B6C9D0DD")
		dead := archive.ID{Prefix: "owners/d"}
		dead.Vault, _ = archive.ParseVault(vaultID)
		dead.ULID = u
		staging := filepath.Join(e.spool, "backup", dead.Dir())
		// Its VAULT/PREFIX directories are the member's, as backup makes them.
		p := filepath.Join(e.spool, "backup")
		for _, c := range strings.Split(dead.Dir(), "/") {
			p = filepath.Join(p, c)
			mkdirOwned(t, p, 0o770|fs.ModeSetgid, memberUID, daemonUID)
		}
		os.WriteFile(filepath.Join(staging, spool.LockName), nil, 0o640)
		os.WriteFile(filepath.Join(staging, ".chunk.000001.tmp"), []byte(strings.Repeat("partial", 1000)), 0o640)
		before := digests(t, staging)
		for _, p := range []string{filepath.Join(staging, spool.LockName), filepath.Join(staging, ".chunk.000001.tmp")} {
			takeAway(p, 0o600)
		}
		takeAway(staging, 0o700)

		for _, args := range [][]string{nil, {"--spool-max", "100M", "--size", "1M"}} {
			run := sc.run()
			b, want := data(mib, 401)
			r := e.run(bytes.NewReader(b), "cryophile-backup", append([]string{"--vault", vaultID, "--recipient", e.cert, "--prefix", "owners/d"}, args...)...)
			if r.code != 0 {
				run.errorf("backup %v: exit %d with a foreign dead staging directory\n%s", args, r.code, r.stderr)
				continue
			}
			if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, staging) {
				run.errorf("backup %v: no warning naming %s:\n%s", args, staging, r.stderr)
			}
			id, err := archive.ParseID(strings.TrimSpace(r.stdout))
			if err != nil {
				t.Fatal(err)
			}
			if args == nil {
				run = sc.run()
				freezed := e.startDaemon("cryophile-freeze")
				waitFor(t, "freeze to upload "+id.String(), 30*time.Second, func() bool { return e.inVault(id) || !alive(freezed) })
				if !alive(freezed) {
					run.errorf("freeze exited:\n%s", tail(e.log("cryophile-freeze"), 2000))
				}
				if l := e.log("cryophile-freeze"); !strings.Contains(l, staging) {
					run.errorf("freeze's clean-up warned of nothing naming %s:\n%s", staging, tail(l, 2000))
				}
				e.stopDaemons()
				e.startDaemon("cryophile-thaw")
				restored(run, id, want)
				stopThaw()
			}
		}
		run := sc.run()
		if after := digests(t, staging); !maps.Equal(before, after) {
			run.errorf("%s changed: %v, was %v", staging, after, before)
		}
		giveBack(staging)
		r := e.run(strings.NewReader("after"), "cryophile-backup", "--vault", vaultID, "--recipient", e.cert, "--prefix", "owners/d")
		if r.code != 0 || strings.Contains(r.stderr, "warning") {
			run.errorf("backup after the chown: exit %d\n%s", r.code, r.stderr)
		}
		if _, err := os.Lstat(staging); err == nil {
			run.errorf("the dead writer's %s is still there after the chown and a backup's clean-up", staging)
		}
	})

	t.Run("e unreadable fragment with --from", func(t *testing.T) {
		plain, _ := data(3*mib, 501)
		a := e.archiveDir(plain, "--prefix", "owners/e", "--size", "1M")
		frag := filepath.Join(a.dir, archive.FragmentName(1))
		for _, f := range files(a.dir) {
			os.Chown(filepath.Join(a.dir, f), memberUID, memberUID)
		}
		takeAway(frag, 0o600)
		before := digests(t, a.dir)

		run := sc.run()
		toStdout, toFile, left := e.restoreFrom(a.dir, e.secret)
		for _, r := range []result{toStdout, toFile} {
			refused(run, "restore --from", r, frag)
		}
		if len(toStdout.stdout) > 0 {
			run.errorf("restore --from wrote %d bytes to stdout before failing on its first fragment", len(toStdout.stdout))
		}
		if left {
			run.errorf("restore --from left its --output file")
		}
		if after := digests(t, a.dir); !maps.Equal(before, after) {
			run.errorf("%s changed: %v, was %v", a.dir, after, before)
		}

		run = sc.run()
		giveBack(frag)
		toStdout, _, _ = e.restoreFrom(a.dir, e.secret)
		if toStdout.code != 0 || sha([]byte(toStdout.stdout)) != sha(plain) {
			run.errorf("restore --from after the chown: exit %d\n%s", toStdout.code, toStdout.stderr)
		} else {
			sc.checked(int64(len(plain)))
		}
	})
}

// digests returns the SHA-256 of every file below dir (relative paths),
// read as root.
func digests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range files(dir) {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		out[f] = hex.EncodeToString(s[:])
	}
	return out
}

// secretSymbols are the functions through which a program loads or uses
// an OpenPGP secret key: ours, and go-crypto's key-ring parsing and
// private-key decryption. cryophile-restore links all of them.
var secretSymbols = []string{
	"github.com/cryophile/cryophile/archive.LoadSecretKeys",
	"github.com/ProtonMail/go-crypto/openpgp.ReadKeyRing",
	"github.com/ProtonMail/go-crypto/openpgp/packet.(*PrivateKey).Decrypt",
	"github.com/ProtonMail/go-crypto/openpgp/packet.(*EncryptedKey).Decrypt",
}

// symbols returns the names of the symbols in a Go binary (go tool nm).
func symbols(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", bin, err)
	}
	syms := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		// ADDRESS TYPE NAME, the name possibly with spaces (generics).
		if f := strings.Fields(line); len(f) >= 3 {
			syms[strings.Join(f[2:], " ")] = true
		}
	}
	return syms
}

// TestDaemonsNoSecrets: the hosts that run freeze and thaw never hold a
// secret key (DESIGN.md), so the daemons must never open one. Statically,
// the freeze and thaw binaries do not contain secretSymbols at all (nor
// does backup contain archive.LoadSecretKeys: a backup host holds only
// certificates), while restore's binary contains every one of them: the
// control that shows the check can fail. Dynamically, a whole cycle (backup,
// the freeze daemon uploading, restore through the thaw daemon, thaw list
// and both --status) runs with every freeze, thaw and restore process under
// `strace -f -e trace=%file`, a secret key in the daemons' HOME
// (~/.config/cryophile/, the one restore is given) and a decoy GnuPG
// ~/.gnupg/private-keys-v1.d/: no trace of freeze or thaw names either;
// each trace is real (the binary's execve, the spool or the vault opened;
// the daemons' show freeze/ and restore/), and restore's, the control,
// names the key it was given.
func TestDaemonsNoSecrets(t *testing.T) {
	sc := begin(t, "10 daemons and secrets")

	t.Run("symbols", func(t *testing.T) {
		for _, c := range []struct {
			prog    string
			present []string // secretSymbols that must be there
			absent  []string
		}{
			{"cryophile-restore", secretSymbols, nil},
			{"cryophile-freeze", nil, secretSymbols},
			{"cryophile-thaw", nil, secretSymbols},
			{"cryophile-backup", nil, secretSymbols[:1]},
		} {
			run := sc.run()
			bin := filepath.Join(binDir, c.prog)
			syms := symbols(t, bin)
			if len(syms) < 1000 {
				run.errorf("%s: only %d symbols: stripped? the check would prove nothing", bin, len(syms))
			}
			for _, s := range c.present {
				if !syms[s] {
					run.errorf("%s does not contain %s: the check of the daemons cannot fail; choose other symbols", c.prog, s)
				}
			}
			for _, s := range c.absent {
				if syms[s] {
					run.errorf("%s contains %s: it can load a secret key", c.prog, s)
				}
			}
			if fi, err := os.Stat(bin); err == nil {
				sc.checked(fi.Size())
			}
		}
	})

	t.Run("strace", func(t *testing.T) {
		need(t, "strace")
		strace, _ := exec.LookPath("strace")
		e := newEnv(t, "", "")
		home := filepath.Join(e.dir, "home")
		gnupg := filepath.Join(home, ".gnupg")
		conf := filepath.Join(home, ".config", "cryophile")
		for _, d := range []string{filepath.Join(gnupg, "private-keys-v1.d"), conf} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		key, err := os.ReadFile(e.secret)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{e.secret, filepath.Join(conf, "secret.asc"), filepath.Join(gnupg, "private-keys-v1.d", "0123456789ABCDEF0123456789ABCDEF01234567.key")}
		for _, p := range secrets[1:] {
			if err := os.WriteFile(p, key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		e.secret = secrets[1]
		for i, v := range e.osEnv {
			if strings.HasPrefix(v, "HOME=") {
				e.osEnv[i] = "HOME=" + home
			}
		}
		var traces []string
		e.wrap = func(prog string, cmd *exec.Cmd) {
			if prog == "cryophile-backup" {
				return
			}
			out := filepath.Join(e.dir, fmt.Sprintf("strace.%d.%s", len(traces), prog))
			traces = append(traces, out)
			cmd.Args = append([]string{"strace", "-f", "-qq", "-e", "trace=%file", "-o", out, "--", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = strace
		}
		// strace passes no signal on: stop the daemon it traces.
		e.term = func(cmd *exec.Cmd) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}

		run := sc.run()
		b, want := data(3*mib, 601)
		id := e.backup(bytes.NewReader(b), "--prefix", "secrets/a", "--size", "1M")
		e.startDaemon("cryophile-freeze")
		waitFor(t, "freeze to upload "+id.String(), 60*time.Second, func() bool { return e.inVault(id) })
		e.startDaemon("cryophile-thaw")
		r, got, n := e.restoreWithTimeout(id, 2*time.Minute)
		if r.code != 0 || got != want {
			run.errorf("restore %s: exit %d, sha256 %s, want 0 and %s\n%s", id, r.code, got, want, r.stderr)
		} else {
			sc.checked(n)
		}
		if r := e.run(nil, "cryophile-thaw", "list", "--vault", vaultID, "--prefix", "secrets/a"); r.code != 0 || !strings.Contains(r.stdout, id.String()) {
			run.errorf("thaw list: exit %d, want 0 and %s listed\n%s%s", r.code, id, r.stdout, r.stderr)
		}
		for _, prog := range []string{"cryophile-freeze", "cryophile-thaw"} {
			if r := e.run(nil, prog, "--status"); r.code != 0 {
				run.errorf("%s --status: exit %d\n%s%s", prog, r.code, r.stdout, r.stderr)
			}
		}
		waitFor(t, "thaw to finish its request", 30*time.Second, func() bool {
			left, _ := filepath.Glob(filepath.Join(e.spool, "thaw", "*.json"))
			return len(left) == 0
		})
		e.stopDaemons()

		run = sc.run()
		// freeze, thaw, restore (the control), thaw list, 2 × --status.
		if len(traces) != 6 {
			run.errorf("%d traced runs, want 6: %v", len(traces), traces)
		}
		forbidden := append(slices.Clone(secrets), gnupg, "private-keys-v1.d", filepath.Base(secrets[0]))
		daemons := 0
		for _, p := range traces {
			tr, err := os.ReadFile(p)
			if err != nil {
				run.errorf("trace %s: %v", p, err)
				continue
			}
			sc.checked(int64(len(tr)))
			s := string(tr)
			prog := p[strings.LastIndexByte(p, '.')+1:]
			if !strings.Contains(s, "execve(\""+filepath.Join(binDir, prog)+"\"") || !strings.Contains(s, "openat(") {
				run.errorf("trace %s shows no execve of %s and no openat: not a real trace\n%s", p, prog, tail(s, 1000))
			}
			if !strings.Contains(s, "\""+e.spool) && !strings.Contains(s, "\""+e.vault) {
				run.errorf("trace %s names neither the spool %s nor the vault: not a real trace", p, e.spool)
			}
			if prog == "cryophile-restore" {
				// The control: restore does open the key, and the trace
				// shows it.
				if !strings.Contains(s, "\""+e.secret+"\"") {
					run.errorf("restore's trace %s does not name the key %s it was given: the check cannot fail", p, e.secret)
				}
				continue
			}
			if strings.Contains(s, "\""+filepath.Join(e.spool, "freeze")) && strings.Contains(s, "\""+filepath.Join(e.spool, "restore")) {
				daemons++
			}
			for _, f := range forbidden {
				if i := strings.Index(s, f); i >= 0 {
					line := s[strings.LastIndexByte(s[:i], '\n')+1:]
					line, _, _ = strings.Cut(line, "\n")
					run.errorf("%s (trace %s) touched %s: %s", prog, p, f, line)
				}
			}
		}
		if daemons < 2 {
			run.errorf("%d traces show the spool's freeze/ and restore/ opened, want ≥ 2 (the daemons')", daemons)
		}
		sc.note("strace: %d traced runs of freeze and thaw named no secret key; restore's named its key", len(traces)-1)
	})
}
