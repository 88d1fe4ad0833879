package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cryophile/cryophile/config"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	file := func(name, spool string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("spool = \""+spool+"\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	explicit := file("explicit.toml", "/explicit")
	fromEnv := file("env.toml", "/env")
	user := file("user.toml", "/user")
	system := file("system.toml", "/system")
	missing := filepath.Join(dir, "missing.toml")

	for _, tc := range []struct {
		name             string
		explicit         string
		env              map[string]string
		user, system     string
		wantPath         string
		wantSpool        string
		wantErrNotExists bool
	}{
		{"explicit first", explicit, map[string]string{"CRYOPHILE_CONFIG": fromEnv}, user, system, explicit, "/explicit", false},
		{"explicit missing is an error", missing, map[string]string{"CRYOPHILE_CONFIG": fromEnv}, user, system, missing, "", true},
		{"then CRYOPHILE_CONFIG", "", map[string]string{"CRYOPHILE_CONFIG": fromEnv}, user, system, fromEnv, "/env", false},
		{"CRYOPHILE_CONFIG missing is an error", "", map[string]string{"CRYOPHILE_CONFIG": missing}, user, system, missing, "", true},
		{"then the user file", "", nil, user, system, user, "/user", false},
		{"then the system file", "", nil, missing, system, system, "/system", false},
		{"then the defaults", "", nil, missing, missing, "", config.DefaultSpool, false},
		{"CRYOPHILE_SPOOL overrides the file", "", map[string]string{"CRYOPHILE_SPOOL": "/from-env"}, user, system, user, "/from-env", false},
		{"CRYOPHILE_SPOOL overrides the defaults", "", map[string]string{"CRYOPHILE_SPOOL": "/from-env"}, missing, missing, "", "/from-env", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := config.Finder{UserFile: tc.user, SystemFile: tc.system, Getenv: func(k string) string { return tc.env[k] }}
			cfg, path, err := f.Find(tc.explicit)
			if tc.wantErrNotExists {
				if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, config.ErrConfig) {
					t.Fatalf("Find(%q) = %v, want ErrConfig and fs.ErrNotExist", tc.explicit, err)
				}
				if path != tc.wantPath {
					t.Errorf("path = %q, want %q", path, tc.wantPath)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if path != tc.wantPath || cfg.Spool != tc.wantSpool || cfg.File() != tc.wantPath {
				t.Errorf("Find(%q) = spool %q from %q (File %q), want spool %q from %q",
					tc.explicit, cfg.Spool, path, cfg.File(), tc.wantSpool, tc.wantPath)
			}
		})
	}
}

// The zero Finder reads the real environment and finds the user file under
// $XDG_CONFIG_HOME.
func TestFindUserConfigDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("CRYOPHILE_CONFIG", "")
	t.Setenv("CRYOPHILE_SPOOL", "relative/spool")
	want := filepath.Join(home, "cryophile", "cryophile.toml")
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("[thaw]\ndays = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, path, err := config.Find("")
	if err != nil {
		t.Fatal(err)
	}
	if path != want || cfg.Thaw.Days != 3 {
		t.Errorf("Find(\"\") = days %d from %q, want 3 from %q", cfg.Thaw.Days, path, want)
	}
	wd, _ := os.Getwd()
	if got, want := cfg.Spool, filepath.Join(wd, "relative/spool"); got != want {
		t.Errorf("Spool = %q, want $CRYOPHILE_SPOOL made absolute, %q", got, want)
	}
}

func TestFindUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	p := filepath.Join(t.TempDir(), "secret.toml")
	if err := os.WriteFile(p, nil, 0); err != nil {
		t.Fatal(err)
	}
	_, _, err := config.Finder{UserFile: p, SystemFile: p, Getenv: func(string) string { return "" }}.Find("")
	if !errors.Is(err, config.ErrConfig) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Find with an unreadable file = %v, want ErrConfig and fs.ErrPermission", err)
	}
}

func TestApplyEnv(t *testing.T) {
	t.Setenv("CRYOPHILE_SPOOL", "/srv/spool")
	c := config.Default()
	if err := c.ApplyEnv(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Spool, "/srv/spool"; got != want {
		t.Errorf("Spool = %q, want %q", got, want)
	}
	t.Setenv("CRYOPHILE_SPOOL", "")
	c = config.Default()
	if err := c.ApplyEnv(); err != nil || c.Spool != config.DefaultSpool {
		t.Errorf("ApplyEnv with CRYOPHILE_SPOOL empty: spool %q, %v", c.Spool, err)
	}
}
