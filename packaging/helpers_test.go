//go:build integration

package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the repository's top directory (this package's parent).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Dir(filepath.Dir(file))
}

// need returns the path of tool, skipping the test when it is missing, or
// failing it under CRYOPHILE_INTEGRATION=1.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CRYOPHILE_INTEGRATION") != "" {
			t.Fatalf("%s not found (scripts/deps.sh installs it): %v", tool, err)
		}
		t.Skipf("%s not found: %v", tool, err)
	}
	return p
}

// run runs a command in dir with extra environment and returns its
// combined output, failing the test if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// buildBinaries builds the named commands (backup, freeze, ...) into a
// fresh directory and returns it: never bin/, which other tests run.
func buildBinaries(t *testing.T, names ...string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	for _, n := range names {
		run(t, root, nil, "go", "build", "-o", filepath.Join(dir, "cryophile-"+n), "./cmd/"+n)
	}
	return dir
}
