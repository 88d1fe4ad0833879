package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/cryophile/cryophile/config"
)

// FuzzLoad checks that Load never panics, that every error wraps ErrConfig
// and names the file, and that an accepted configuration is valid and
// survives a round trip through TOML unchanged.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add(uncommentedExample(f))
	f.Add("[[vault]]\nid = \"" + id0 + "\"\nurl = \"file:///srv/v\"\nrestore_delay = \"1s\"\n")
	f.Add("[thaw.prices.glacier]\nbulk = { per_gb = 1e3 }\n")
	f.Add("[backup]\nfragment_size = 1.5\n")
	f.Add("[freeze]\nrescan = 300\n")
	f.Add("vault = [{ id = \"x\", url = 1 }]\n")

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc string) {
		path := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			if !errors.Is(err, config.ErrConfig) {
				t.Fatalf("Load error %q does not wrap ErrConfig", err)
			}
			if !strings.HasPrefix(err.Error(), "config "+path) {
				t.Fatalf("Load error %q does not name the file", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a configuration that Validate refuses: %v\n%s", err, doc)
		}
		out, err := toml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal accepted configuration: %v", err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := config.Load(path)
		if err != nil {
			t.Fatalf("Load(Marshal(Load(doc))) = %v\ndoc:\n%s\nmarshalled:\n%s", err, doc, out)
		}
		if !sameSettings(c, again) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v\nmarshalled:\n%s", c, again, out)
		}
	})
}
