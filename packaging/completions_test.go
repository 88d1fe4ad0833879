//go:build integration

package packaging_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpFlags returns the long flags that `cryophile-CMD [SUB] --help` lists.
func helpFlags(t *testing.T, bin, cmd string, sub ...string) []string {
	t.Helper()
	out, err := exec.Command(filepath.Join(bin, "cryophile-"+cmd), append(sub, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("cryophile-%s %v --help: %v\n%s", cmd, sub, err, out)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(--[a-z][a-z-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 5 {
		t.Fatalf("cryophile-%s %v --help lists %v: parsed wrong?", cmd, sub, flags)
	}
	return flags
}

// bashComplete runs the bash completion function on words (the last one
// being completed) and returns the candidates.
func bashComplete(t *testing.T, words ...string) []string {
	t.Helper()
	script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cryophile; printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command("bash", append([]string{"-c", script, "bash", filepath.Join(repoRoot(t), "packaging/completions/cryophile.bash")}, words...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

// TestCompletionsAndManPages keeps the bash and zsh completions and the man
// pages in step with the commands: every long flag a command's --help
// lists must be offered by bash completion, appear in the zsh function,
// and be documented in the command's man page.
func TestCompletionsAndManPages(t *testing.T) {
	need(t, "bash")
	root := repoRoot(t)
	bin := buildBinaries(t, "backup", "restore", "freeze", "thaw")
	zsh := readFile(t, filepath.Join(root, "packaging/completions/_cryophile"))
	for _, c := range []struct {
		cmd, man string
		sub      []string
	}{
		{"backup", "cryophile-backup.1.md", nil},
		{"restore", "cryophile-restore.1.md", nil},
		{"freeze", "cryophile-freeze.8.md", nil},
		{"thaw", "cryophile-thaw.8.md", nil},
		{"thaw", "cryophile-thaw.8.md", []string{"list"}},
		{"thaw", "cryophile-thaw.8.md", []string{"estimate"}},
	} {
		words := append(append([]string{"cryophile-" + c.cmd}, c.sub...), "--")
		offered := bashComplete(t, words...)
		man := strings.ReplaceAll(readFile(t, filepath.Join(root, "docs/man", c.man)), `\_`, "_")
		for _, f := range helpFlags(t, bin, c.cmd, c.sub...) {
			if !slices.Contains(offered, f) {
				t.Errorf("bash completion of %v does not offer %s", words[:len(words)-1], f)
			}
			if !strings.Contains(zsh, f+"[") && !strings.Contains(zsh, f+"}") {
				t.Errorf("zsh completion has no %s (cryophile-%s %v)", f, c.cmd, c.sub)
			}
			if !strings.Contains(man, "**"+f+"**") {
				t.Errorf("docs/man/%s does not document %s", c.man, f)
			}
		}
	}
	// Values and files.
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"cryophile-backup", "--compression", ""}, "lz4"},
		{[]string{"cryophile-restore", "--tier", "ex"}, "expedited"},
		{[]string{"cryophile-thaw", ""}, "estimate"},
		{[]string{"cryophile-backup", "--stdin-from-command", "--", "bas"}, "bash"},
	} {
		if got := bashComplete(t, tc.words...); !slices.Contains(got, tc.want) {
			t.Errorf("bash completion of %q = %v, want %s among them", tc.words, got, tc.want)
		}
	}
	if zshBin, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command(zshBin, "-n", filepath.Join(root, "packaging/completions/_cryophile")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n _cryophile: %v\n%s", err, out)
		}
	} else {
		t.Log("no zsh: its completion's syntax is not checked")
	}
}
