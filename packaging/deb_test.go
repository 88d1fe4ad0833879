//go:build integration

package packaging_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// snapshot copies the work tree (tracked and untracked files, not the
// ignored ones) into a new directory, so that two builds see the same
// sources while others edit and commit in the tree. It returns the copy
// and the make variables that would come from git there: the version and
// SOURCE_DATE_EPOCH of the work tree's last commit.
func snapshot(t *testing.T) (dir string, vars []string) {
	t.Helper()
	root := repoRoot(t)
	vars = strings.Fields(run(t, root, nil, "make", "--no-print-directory", "-s", "--eval",
		"print-deb-vars:\n\t@echo VERSION=$(VERSION) DEB_VERSION=$(DEB_VERSION) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)", "print-deb-vars"))
	if len(vars) != 3 {
		t.Fatalf("make variables %q", vars)
	}
	dir = t.TempDir()
	for _, name := range strings.Split(run(t, root, nil, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00") {
		fi, err := os.Lstat(filepath.Join(root, name))
		if name == "" || err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir, vars
}

// buildDeb runs `make deb` in the tree src with vars, its output in dist,
// and returns the .deb.
func buildDeb(t *testing.T, src string, vars []string, dist string) string {
	t.Helper()
	run(t, src, nil, "make", append([]string{"--no-print-directory", "deb", "DIST=" + dist}, vars...)...)
	debs, _ := filepath.Glob(filepath.Join(dist, "cryophile_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb DIST=%s made %v, want one cryophile_*.deb", dist, debs)
	}
	return debs[0]
}

func sha256File(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestDeb builds the .deb twice (the two must be byte-identical), checks
// its control data and contents, installs it into a fresh root with dpkg
// --root (maintainer scripts run chrootless, with DPKG_ROOT set, so that
// systemd-sysusers and systemd-tmpfiles work on the scratch root; PID 1 is
// not systemd here, which rules out a booted container), checks what the
// installation left there, runs the installed binaries, reinstalls over a
// changed conffile, then removes and purges the package.
func TestDeb(t *testing.T) {
	for _, tool := range []string{"make", "dpkg", "dpkg-deb", "dpkg-query"} {
		need(t, tool)
	}
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root to give installed files their owners")
	}
	work := t.TempDir()
	src, vars := snapshot(t)
	deb := buildDeb(t, src, vars, filepath.Join(work, "dist1"))
	deb2 := buildDeb(t, src, vars, filepath.Join(work, "dist2"))
	if filepath.Base(deb) != filepath.Base(deb2) {
		t.Fatalf("two builds named %s and %s", filepath.Base(deb), filepath.Base(deb2))
	}
	if a, b := sha256File(t, deb), sha256File(t, deb2); a != b {
		t.Fatalf("make deb is not reproducible: %s then %s", a, b)
	}
	t.Logf("%s: reproducible, sha256 %s", filepath.Base(deb), sha256File(t, deb))

	// Control data.
	if got := run(t, work, nil, "dpkg-deb", "--field", deb, "Package"); strings.TrimSpace(got) != "cryophile" {
		t.Errorf("Package: %q", got)
	}
	ctrl := filepath.Join(work, "control")
	run(t, work, nil, "dpkg-deb", "--control", deb, ctrl)
	if got, want := readFile(t, filepath.Join(ctrl, "conffiles")), "/etc/cryophile/cryophile.toml\n"; got != want {
		t.Errorf("conffiles = %q, want %q", got, want)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		text := readFile(t, filepath.Join(ctrl, script))
		for _, bad := range []string{"systemctl enable", "systemctl start", "deb-systemd-helper enable", "deb-systemd-invoke start"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s runs %q: the units must not be enabled or started by the package", script, bad)
			}
		}
	}

	// Contents: path → "mode owner/group".
	want := map[string]string{
		"./usr/bin/cryophile-backup":                               "-rwxr-xr-x root/root",
		"./usr/bin/cryophile-restore":                              "-rwxr-xr-x root/root",
		"./usr/bin/cryophile-freeze":                               "-rwxr-xr-x root/root",
		"./usr/bin/cryophile-thaw":                                 "-rwxr-xr-x root/root",
		"./etc/cryophile/cryophile.toml":                           "-rw-r--r-- root/root",
		"./usr/lib/systemd/system/cryophile-freeze.service":        "-rw-r--r-- root/root",
		"./usr/lib/systemd/system/cryophile-thaw.service":          "-rw-r--r-- root/root",
		"./usr/lib/sysusers.d/cryophile.conf":                      "-rw-r--r-- root/root",
		"./usr/lib/tmpfiles.d/cryophile.conf":                      "-rw-r--r-- root/root",
		"./usr/share/man/man1/cryophile-backup.1.gz":               "-rw-r--r-- root/root",
		"./usr/share/man/man1/cryophile-restore.1.gz":              "-rw-r--r-- root/root",
		"./usr/share/man/man5/cryophile.toml.5.gz":                 "-rw-r--r-- root/root",
		"./usr/share/man/man8/cryophile-freeze.8.gz":               "-rw-r--r-- root/root",
		"./usr/share/man/man8/cryophile-thaw.8.gz":                 "-rw-r--r-- root/root",
		"./usr/share/bash-completion/completions/cryophile-backup": "-rw-r--r-- root/root",
		"./usr/share/zsh/vendor-completions/_cryophile":            "-rw-r--r-- root/root",
		"./usr/share/doc/cryophile/RECOVERY.md":                    "-rw-r--r-- root/root",
		"./usr/share/doc/cryophile/INSTALL.md":                     "-rw-r--r-- root/root",
	}
	listing := map[string]string{}
	for _, line := range strings.Split(run(t, work, nil, "dpkg-deb", "--contents", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		listing[f[5]] = f[0] + " " + f[1]
	}
	for path, w := range want {
		if got := listing[path]; got != w {
			t.Errorf("deb: %s: %q, want %q", path, got, w)
		}
	}
	for _, c := range []string{"restore", "freeze", "thaw"} {
		if _, ok := listing["./usr/share/bash-completion/completions/cryophile-"+c]; !ok {
			t.Errorf("deb: no bash completion for cryophile-%s", c)
		}
	}
	if _, ok := listing["./var/spool/cryophile/"]; ok {
		t.Errorf("deb ships /var/spool/cryophile: tmpfiles.d creates it")
	}

	// Install into a fresh root.
	hostPasswd := readFile(t, "/etc/passwd")
	root := filepath.Join(work, "root")
	initRoot(t, root)
	dpkg := func(args ...string) string {
		return run(t, work, nil, "dpkg", append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	}
	dpkg("--install", deb)
	if got := strings.TrimSpace(run(t, work, nil, "dpkg-query", "--root="+root, "--show", "--showformat=${Status}", "cryophile")); got != "install ok installed" {
		t.Fatalf("dpkg-query status %q", got)
	}
	if got := run(t, work, nil, "dpkg-query", "--root="+root, "--show", "--showformat=${Conffiles}", "cryophile"); !strings.Contains(got, "/etc/cryophile/cryophile.toml ") {
		t.Errorf("installed conffiles %q, want /etc/cryophile/cryophile.toml", got)
	}
	if readFile(t, "/etc/passwd") != hostPasswd {
		t.Errorf("installing into %s changed the host's /etc/passwd", root)
	}
	checkInstalledUserAndSpool(t, root)
	for path, w := range want {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("installed: %v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%s %d/%d", fi.Mode(), st.Uid, st.Gid); got != strings.Fields(w)[0]+" 0/0" {
			t.Errorf("installed %s: %s, want %s root", path, got, strings.Fields(w)[0])
		}
	}
	if compare := readFile(t, filepath.Join(src, "config/example.toml")); readFile(t, filepath.Join(root, "etc/cryophile/cryophile.toml")) != compare {
		t.Errorf("installed /etc/cryophile/cryophile.toml is not config/example.toml")
	}
	// Nothing enabled: no unit linked into a target's .wants.
	filepath.WalkDir(filepath.Join(root, "etc/systemd"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "cryophile") {
			t.Errorf("postinst enabled a unit: %s", p)
		}
		return nil
	})
	for _, c := range []string{"backup", "restore", "freeze", "thaw"} {
		cmd := exec.Command(filepath.Join(root, "usr/bin/cryophile-"+c), "--help")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + work}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "cryophile-"+c) || !strings.Contains(string(out), "--spool") {
			t.Errorf("installed cryophile-%s --help: %v\n%s", c, err, out)
		}
		cmd = exec.Command(filepath.Join(root, "usr/bin/cryophile-"+c), "--version")
		out, err = cmd.CombinedOutput()
		if version := strings.TrimPrefix(vars[0], "VERSION="); err != nil || !strings.Contains(string(out), version) {
			t.Errorf("installed cryophile-%s --version: %v: %q, want %s", c, err, out, version)
		}
	}

	// An upgrade (here: the same version again) keeps a changed conffile.
	conf := filepath.Join(root, "etc/cryophile/cryophile.toml")
	changed := readFile(t, conf) + "\n# changed by the administrator\nspool = \"/srv/spool\"\n"
	writeFile(t, conf, changed)
	dpkg("--force-confold", "--install", deb)
	if readFile(t, conf) != changed {
		t.Errorf("reinstalling replaced the administrator's %s", conf)
	}

	// Remove: binaries go, configuration and spool stay; purge: the
	// configuration goes, the spool (it may hold unsent fragments) stays.
	dpkg("--remove", "cryophile")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/cryophile-backup")); !os.IsNotExist(err) {
		t.Errorf("after remove, /usr/bin/cryophile-backup: %v", err)
	}
	if readFile(t, conf) != changed {
		t.Errorf("remove touched %s", conf)
	}
	dpkg("--purge", "cryophile")
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("after purge, %s: %v", conf, err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/spool/cryophile/freeze")); err != nil {
		t.Errorf("purge removed the spool: %v", err)
	}
}

// TestDebPostinstWithoutSystemd runs the package's postinst on a scratch
// root with no systemd-sysusers or systemd-tmpfiles on PATH (a container
// without systemd): it must create the same user, group and spool with
// groupadd, useradd and mkdir, and not fail.
func TestDebPostinstWithoutSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown in the scratch root")
	}
	tools := t.TempDir()
	for _, tool := range []string{"grep", "awk", "groupadd", "useradd", "mkdir", "chown", "chmod"} {
		if err := os.Symlink(need(t, tool), filepath.Join(tools, tool)); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	initRoot(t, root)
	postinst := filepath.Join(repoRoot(t), "packaging", "postinst")
	for i := 0; i < 2; i++ { // twice: a reconfigure finds everything in place
		cmd := exec.Command("/bin/sh", postinst, "configure", "")
		cmd.Env = []string{"PATH=" + tools, "DPKG_ROOT=" + root}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postinst configure without systemd (run %d): %v\n%s", i+1, err, out)
		}
	}
	checkInstalledUserAndSpool(t, root)
}

// initRoot makes the smallest root dpkg --root and the user tools accept.
func initRoot(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "")
	writeFile(t, filepath.Join(root, "var/lib/dpkg/available"), "")
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n")
	writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\n")
	writeFile(t, filepath.Join(root, "etc/shadow"), "root:*:20000:0:99999:7:::\n")
	writeFile(t, filepath.Join(root, "etc/gshadow"), "root:*::\n")
	for _, f := range []string{"etc/passwd", "etc/group"} {
		if err := os.Chmod(filepath.Join(root, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkInstalledUserAndSpool checks the user and group cryophile in root's
// /etc/passwd and /etc/group, and the spool: the root and its four queues,
// directories of mode 2770 owned by cryophile:cryophile.
func checkInstalledUserAndSpool(t *testing.T, root string) {
	t.Helper()
	var uid, gid int = -1, -1
	for _, line := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == "cryophile" {
			uid, _ = strconv.Atoi(f[2])
			if f[5] != "/var/spool/cryophile" || f[6] != "/usr/sbin/nologin" {
				t.Errorf("%s/etc/passwd: %q: want home /var/spool/cryophile, shell /usr/sbin/nologin", root, line)
			}
			if n, _ := strconv.Atoi(f[2]); n == 0 || n >= 1000 {
				t.Errorf("%s/etc/passwd: %q: not a system user", root, line)
			}
		}
	}
	for _, line := range strings.Split(readFile(t, filepath.Join(root, "etc/group")), "\n") {
		if f := strings.Split(line, ":"); len(f) == 4 && f[0] == "cryophile" {
			gid, _ = strconv.Atoi(f[2])
		}
	}
	if uid < 0 || gid < 0 {
		t.Fatalf("%s: no user or group cryophile (uid %d, gid %d)", root, uid, gid)
	}
	for _, q := range []string{"", "backup", "freeze", "thaw", "restore"} {
		p := filepath.Join(root, "var/spool/cryophile", q)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("spool: %v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got, want := fi.Mode(), fs.ModeDir|fs.ModeSetgid|0o770; got != want || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: %s %d:%d, want %s %d:%d", p, got, st.Uid, st.Gid, want, uid, gid)
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, readFile(t, from))
	if err := os.Chmod(to, 0o644); err != nil {
		t.Fatal(err)
	}
}
