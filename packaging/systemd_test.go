//go:build integration

package packaging_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// units are the services systemd/ ships, by the command each starts.
var units = map[string]string{
	"cryophile-freeze.service": "freeze",
	"cryophile-thaw.service":   "thaw",
}

// scratchUnits copies the units into a directory with ExecStart= pointing
// at freshly built binaries (systemd-analyze verify wants the program to
// exist, and /usr/bin has none here).
func scratchUnits(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	bin := buildBinaries(t, "freeze", "thaw")
	dir := t.TempDir()
	for unit, cmd := range units {
		text, err := os.ReadFile(filepath.Join(root, "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		from, to := "ExecStart=/usr/bin/cryophile-"+cmd+"\n", "ExecStart="+filepath.Join(bin, "cryophile-"+cmd)+"\n"
		if !strings.Contains(string(text), from) {
			t.Fatalf("%s: no line %q", unit, strings.TrimSpace(from))
		}
		writeFile(t, filepath.Join(dir, unit), strings.Replace(string(text), from, to, 1))
	}
	return dir
}

// TestSystemdVerify runs systemd-analyze verify on each unit: exit 0 and
// not one warning.
func TestSystemdVerify(t *testing.T) {
	sa := need(t, "systemd-analyze")
	dir := scratchUnits(t)
	for unit := range units {
		cmd := exec.Command(sa, "verify", "./"+unit)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
}

// TestSystemdSecurity rates each unit's hardening with systemd-analyze
// security --offline=yes: the overall exposure must be at most 2.0 ("OK").
func TestSystemdSecurity(t *testing.T) {
	sa := need(t, "systemd-analyze")
	dir := scratchUnits(t)
	re := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for unit := range units {
		// --threshold is in tenths: 20 is an exposure of 2.0.
		cmd := exec.Command(sa, "security", "--offline=yes", "--threshold=20", "--no-pager", "./"+unit)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		m := re.FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: no overall exposure in:\n%s", unit, out)
		}
		level, perr := strconv.ParseFloat(string(m[1]), 64)
		if perr != nil || level > 2.0 || err != nil {
			t.Errorf("%s: exposure %s (exit %v), want <= 2.0:\n%s", unit, m[1], err, out)
			continue
		}
		t.Logf("%s: exposure %.1f", unit, level)
	}
}

// TestSystemdUnitContracts checks what the issue asks of the units and
// what systemd-analyze does not: no comment after a value (systemd would
// take it as part of the value), the settings the packaging relies on.
func TestSystemdUnitContracts(t *testing.T) {
	root := repoRoot(t)
	for unit := range units {
		text, err := os.ReadFile(filepath.Join(root, "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string][]string{}
		sc := bufio.NewScanner(strings.NewReader(string(text)))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s:%d: not KEY=VALUE: %q", unit, n, line)
				continue
			}
			if strings.Contains(v, "#") || strings.Contains(v, ";") {
				t.Errorf("%s:%d: %q: a comment after a value is part of the value", unit, n, line)
			}
			keys[k] = append(keys[k], v)
		}
		for k, want := range map[string]string{
			"Type":           "notify",
			"User":           "cryophile",
			"Group":          "cryophile",
			"ReadWritePaths": "/var/spool/cryophile",
			"UMask":          "0007",
			"LoadCredential": "aws-credentials:/etc/cryophile/aws-credentials",
			"ProtectSystem":  "strict",
			"WantedBy":       "multi-user.target",
		} {
			if got := keys[k]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: %s=%v, want %s", unit, k, got, want)
			}
		}
		if len(keys["WatchdogSec"]) != 1 {
			t.Errorf("%s: no WatchdogSec=", unit)
		}
		if len(keys["CapabilityBoundingSet"]) != 1 || keys["CapabilityBoundingSet"][0] != "" {
			t.Errorf("%s: CapabilityBoundingSet=%v, want empty", unit, keys["CapabilityBoundingSet"])
		}
	}
}

// TestSysusersTmpfiles applies systemd/cryophile.sysusers and
// systemd/cryophile.tmpfiles to a scratch root and checks the user, the
// group and the spool's directories; and that no spool line has an age
// (systemd-tmpfiles --clean must never remove a queued fragment).
func TestSysusersTmpfiles(t *testing.T) {
	sysusers, tmpfiles := need(t, "systemd-sysusers"), need(t, "systemd-tmpfiles")
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown in the scratch root")
	}
	root := repoRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "systemd", "cryophile.tmpfiles"))
	if err != nil {
		t.Fatal(err)
	}
	spoolLines := 0
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 6 {
			t.Errorf("tmpfiles: %q: want Type Path Mode User Group Age", line)
			continue
		}
		if strings.HasPrefix(f[1], "/var/spool/cryophile") {
			spoolLines++
			if f[5] != "-" {
				t.Errorf("tmpfiles: %q: age %q, want -", line, f[5])
			}
		}
	}
	if spoolLines != 5 {
		t.Errorf("tmpfiles: %d spool lines, want 5 (the spool and its four queues)", spoolLines)
	}

	scratch := t.TempDir()
	for _, d := range []string{"etc", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d"} {
		if err := os.MkdirAll(filepath.Join(scratch, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(scratch, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n")
	writeFile(t, filepath.Join(scratch, "etc/group"), "root:x:0:\n")
	copyFile(t, filepath.Join(root, "systemd/cryophile.sysusers"), filepath.Join(scratch, "usr/lib/sysusers.d/cryophile.conf"))
	copyFile(t, filepath.Join(root, "systemd/cryophile.tmpfiles"), filepath.Join(scratch, "usr/lib/tmpfiles.d/cryophile.conf"))
	run(t, scratch, nil, sysusers, "--root="+scratch, "cryophile.conf")
	run(t, scratch, nil, tmpfiles, "--root="+scratch, "--create", "cryophile.conf")
	checkInstalledUserAndSpool(t, scratch)
}
