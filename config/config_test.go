package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/config"
)

const (
	id0 = "0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00"
	id1 = "5f0c9d6e-2b7a-4c1d-8e3f-a1b2c3d4e5f6"
)

// writeConfig writes doc to a temporary cryophile.toml and returns its path.
func writeConfig(t testing.TB, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cryophile.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameSettings reports whether a and b hold the same settings (the file
// they came from aside, and an empty list being the same as none).
func sameSettings(a, b *config.Config) bool {
	a, b = noEmptyLists(a), noEmptyLists(b)
	return a.Spool == b.Spool &&
		reflect.DeepEqual(a.Budget, b.Budget) &&
		reflect.DeepEqual(a.Backup, b.Backup) &&
		reflect.DeepEqual(a.Vaults, b.Vaults) &&
		reflect.DeepEqual(a.Freeze, b.Freeze) &&
		reflect.DeepEqual(a.Thaw, b.Thaw)
}

func noEmptyLists(c *config.Config) *config.Config {
	cc := *c
	if len(cc.Vaults) == 0 {
		cc.Vaults = nil
	}
	if len(cc.Backup.Recipients) == 0 {
		cc.Backup.Recipients = nil
	}
	return &cc
}

func TestDefaultIsValid(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if !sameSettings(c, config.Default()) {
		t.Fatalf("Validate changed the defaults: %+v", c)
	}
	if got, want := c.Spool, "/var/spool/cryophile"; got != want {
		t.Errorf("Spool = %q, want %q", got, want)
	}
	if got, want := int64(c.Backup.FragmentSize), int64(1<<30); got != want {
		t.Errorf("FragmentSize = %d, want %d", got, want)
	}
	if got, want := c.Thaw.Tier, "Bulk"; got != want {
		t.Errorf("Tier = %q, want %q", got, want)
	}
	if got, want := c.Freeze.Rescan.Duration, 5*time.Minute; got != want {
		t.Errorf("Rescan = %v, want %v", got, want)
	}
	if len(c.Vaults) != 0 {
		t.Errorf("Default has vaults: %+v", c.Vaults)
	}
}

// The example, as installed, is all comments: it must mean the defaults.
func TestExampleIsDefaults(t *testing.T) {
	c, err := config.Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !sameSettings(c, config.Default()) {
		t.Fatalf("example.toml = %+v, want Default() %+v", c, config.Default())
	}
}

// commentedSetting matches the example's commented-out settings, "#key = …"
// and "#[table]", as opposed to explanations, "# …".
var commentedSetting = regexp.MustCompile(`(?m)^#(\[|[A-Za-z0-9_]+ = )`)

func uncommentedExample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return commentedSetting.ReplaceAllString(string(b), "$1")
}

// Every commented-out setting of the example, uncommented, loads and shows
// the defaults it claims (plus the two example vaults and recipient).
func TestExampleUncommented(t *testing.T) {
	doc := uncommentedExample(t)
	if n := strings.Count(doc, "\n#") - strings.Count(doc, "\n# ") - strings.Count(doc, "\n#\n"); n != 0 {
		t.Fatalf("%d commented lines are neither settings nor explanations", n)
	}
	c, err := config.Load(writeConfig(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Backup.Recipients = []string{"/etc/cryophile/recipients.pgp"}
	want.Vaults = []config.Vault{
		{ID: id0, URL: "s3://my-bucket/cryophile", StorageClass: "GLACIER", ManifestClass: "STANDARD", Region: "eu-west-1"},
		{ID: id1, URL: "file:///srv/cryophile-vault", StorageClass: "GLACIER", ManifestClass: "STANDARD"},
	}
	if !sameSettings(c, want) {
		t.Fatalf("uncommented example.toml =\n%+v\nwant\n%+v", c, want)
	}
	// Every key of Config appears in the example.
	for _, key := range []string{"spool", "max_bytes", "reserve", "restore_max_bytes", "compression", "level",
		"fragment_size", "recipients", "aead", "id", "url", "storage_class", "manifest_class", "region", "endpoint",
		"path_style", "profile", "restore_delay", "concurrency", "part_size", "multipart_threshold", "rescan",
		"tier", "days", "poll_interval", "per_1000_requests", "per_gb"} {
		if !regexp.MustCompile(`(?m)(^|[{,] )` + key + ` = `).MatchString(doc) {
			t.Errorf("example.toml does not show key %q", key)
		}
	}
}

func TestLoad(t *testing.T) {
	doc := `spool = "/srv/spool"

[budget]
max_bytes = "20GiB"
reserve = 1073741824

[backup]
compression = "ZSTD"
level = "Best"
fragment_size = "256M"
recipients = ["keys/a.pgp", "/etc/b.pgp"]
aead = true

[[vault]]
id = "0B5D7A7E-6C1E-4A8E-9A55-3F4B2E1D9C00"
url = "s3://bucket/some/prefix/"
storage_class = "deep_archive"
endpoint = "http://127.0.0.1:9000"
path_style = true

[[vault]]
id = "` + id1 + `"
url = "file:///srv//vault/"
restore_delay = "2s"

[thaw]
tier = "expedited"
days = 1

[thaw.prices.GLACIER]
Bulk = { per_gb = 0.5 }
`
	path := writeConfig(t, doc)
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"File", c.File(), path},
		{"Spool", c.Spool, "/srv/spool"},
		{"MaxBytes", c.Budget.MaxBytes, config.Size(20 << 30)},
		{"Reserve", c.Budget.Reserve, config.Size(1 << 30)},
		{"ReserveFor", c.Budget.ReserveFor(1 << 20), int64(1 << 30)},
		{"ReserveFor default", config.Budget{}.ReserveFor(1 << 30), int64(3 << 30)},
		{"Compression", c.Backup.Compression, "zstd"},
		{"Level", c.Backup.Level, "best"},
		{"FragmentSize", c.Backup.FragmentSize, config.Size(256 << 20)},
		{"Recipients", c.Backup.Recipients, []string{filepath.Join(dir, "keys/a.pgp"), "/etc/b.pgp"}},
		{"AEAD", c.Backup.AEAD, true},
		{"vault[0].ID", c.Vaults[0].ID, id0},
		{"vault[0].StorageClass", c.Vaults[0].StorageClass, "DEEP_ARCHIVE"},
		{"vault[0].ManifestClass", c.Vaults[0].ManifestClass, "STANDARD"},
		{"vault[0].Scheme", c.Vaults[0].Scheme(), "s3"},
		{"vault[0].Bucket", c.Vaults[0].Bucket(), "bucket"},
		{"vault[0].KeyPrefix", c.Vaults[0].KeyPrefix(), "some/prefix"},
		{"vault[0].Path", c.Vaults[0].Path(), ""},
		{"vault[0].PathStyle", c.Vaults[0].PathStyle, true},
		{"vault[1].StorageClass", c.Vaults[1].StorageClass, "GLACIER"},
		{"vault[1].Scheme", c.Vaults[1].Scheme(), "file"},
		{"vault[1].Path", c.Vaults[1].Path(), "/srv/vault"},
		{"vault[1].Bucket", c.Vaults[1].Bucket(), ""},
		{"vault[1].RestoreDelay", c.Vaults[1].RestoreDelay.Duration, 2 * time.Second},
		{"Tier", c.Thaw.Tier, "Expedited"},
		{"Days", c.Thaw.Days, 1},
		{"Concurrency (default)", c.Thaw.Concurrency, 4},
		{"GLACIER Bulk", c.Thaw.Prices["GLACIER"]["Bulk"], config.Price{PerGB: 0.5}},
		{"GLACIER Standard (default kept)", c.Thaw.Prices["GLACIER"]["Standard"], config.Price{PerThousandRequests: 0.05, PerGB: 0.01}},
		{"DEEP_ARCHIVE Bulk (default kept)", c.Thaw.Prices["DEEP_ARCHIVE"]["Bulk"], config.Price{PerThousandRequests: 0.025, PerGB: 0.0025}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	vault := func(lines ...string) string {
		return "[[vault]]\n" + strings.Join(lines, "\n") + "\n"
	}
	okVault := vault(`id = "`+id0+`"`, `url = "s3://bucket"`)
	for _, tc := range []struct {
		name string
		doc  string
		want string // after "config FILE"
	}{
		{"unknown key", "[backup]\ncompresion = \"lz4\"\n",
			`:2: unknown key "backup.compresion" (did you mean "backup.compression"?)`},
		{"unknown top-level key", "spool = \"/s\"\nspol_max = 1\n", `:2: unknown key "spol_max"`},
		{"unknown table", "[bakup]\n", `:1: unknown table "bakup"`},
		{"unknown key in second vault", okVault + vault(`id = "`+id1+`"`, `url = "s3://b2b"`, `regoin = "x"`),
			`:7: unknown key "vault[1].regoin" (did you mean "vault.region"?)`},
		{"wrong type int", "[thaw]\ndays = \"seven\"\n", `:2: thaw.days: wrong type: want an integer, not a TOML string`},
		{"wrong type string", "spool = 1\n", `:1: spool: wrong type: want a string, not a TOML integer`},
		{"wrong type duration", "[freeze]\nrescan = 300\n", `:2: freeze.rescan: wrong type: want a duration string`},
		{"wrong type in vault", okVault + "path_style = \"yes\"\n", `:4: vault[0].path_style: wrong type: want true or false`},
		{"bad size", "[backup]\nfragment_size = \"1GB\"\n", `:2: backup.fragment_size: size "1GB": decimal unit "GB" is ambiguous`},
		{"float size", "[backup]\nfragment_size = 1.5\n", `:2: backup.fragment_size: size "1.5": not a whole number of bytes`},
		{"bad duration", "[thaw]\npoll_interval = \"1 minute\"\n", `:2: thaw.poll_interval: duration "1 minute"`},
		{"syntax error", "[backup\n", `:1: syntax error`},
		{"duplicate key", "spool = \"/a\"\nspool = \"/b\"\n", `:2: spool: key spool is already defined`},
		{"relative spool", "spool = \"spool\"\n", `:1: spool: "spool" is not an absolute path`},
		{"budget too small", "[budget]\nmax_bytes = \"1G\"\n", `:2: budget.max_bytes: 1GiB is less than two fragments`},
		{"negative budget", "[budget]\nreserve = -1\n", `:2: budget.reserve: -1 is negative`},
		{"bad compression", "[backup]\ncompression = \"gzip\"\n", `:2: backup.compression: "gzip" is not one of zstd, lz4, none`},
		{"level without zstd", "[backup]\ncompression = \"lz4\"\nlevel = \"best\"\n", `:3: backup.level: "best" applies only to compression = "zstd"`},
		{"fragment too small", "[backup]\nfragment_size = \"512K\"\n", `:2: backup.fragment_size: 512KiB is out of range: must be between 1MiB and 5TiB`},
		{"fragment too large", "[backup]\nfragment_size = \"6T\"\n", `:2: backup.fragment_size: 6TiB is out of range`},
		{"empty recipient", "[backup]\nrecipients = [\"\"]\n", `:2: backup.recipients[0]: empty file name`},
		{"missing id", vault(`url = "s3://bucket"`), `:1: vault[0].id: missing`},
		{"bad uuid", vault(`id = "not-a-uuid"`, `url = "s3://bucket"`), `:2: vault[0].id: "not-a-uuid" is not a UUID`},
		{"uuid with braces", vault(`id = "{`+id0+`}"`, `url = "s3://bucket"`), `:2: vault[0].id: "{` + id0 + `}" is not a UUID`},
		{"duplicate id", okVault + vault(`id = "`+strings.ToUpper(id0)+`"`, `url = "s3://other"`),
			`:5: vault[1].id: ` + id0 + ` is already the id of vault[0]`},
		{"missing url", vault(`id = "` + id0 + `"`), `:1: vault[0].url: missing`},
		{"bad scheme", vault(`id = "`+id0+`"`, `url = "http://bucket"`), `:3: vault[0].url: "http://bucket": unsupported scheme "http"`},
		{"no scheme", vault(`id = "`+id0+`"`, `url = "/srv/vault"`), `:3: vault[0].url: "/srv/vault": not a URL`},
		{"relative file path", vault(`id = "`+id0+`"`, `url = "file://srv/vault"`), `:3: vault[0].url: "file://srv/vault": want file:///ABSOLUTE/PATH`},
		{"opaque file path", vault(`id = "`+id0+`"`, `url = "file:srv/vault"`), `:3: vault[0].url: "file:srv/vault": want file:///ABSOLUTE/PATH`},
		{"file root", vault(`id = "`+id0+`"`, `url = "file:///"`), `:3: vault[0].url: "file:///": the root directory cannot be a vault`},
		{"s3 without bucket", vault(`id = "`+id0+`"`, `url = "s3:///prefix"`), `:3: vault[0].url: "s3:///prefix": want s3://BUCKET[/KEYPREFIX]`},
		{"bad bucket", vault(`id = "`+id0+`"`, `url = "s3://a"`), `:3: vault[0].url: "s3://a": "a" is not a bucket name`},
		{"bad key prefix", vault(`id = "`+id0+`"`, `url = "s3://bucket/a//b"`), `:3: vault[0].url: "s3://bucket/a//b": key prefix "a//b" has an empty`},
		{"s3 query", vault(`id = "`+id0+`"`, `url = "s3://bucket?region=x"`), `:3: vault[0].url: "s3://bucket?region=x": a vault URL has no query`},
		{"bad class", okVault + "storage_class = \"GLACIERR\"\n",
			`:4: vault[0].storage_class: "GLACIERR" is not one of STANDARD, STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE`},
		{"archived manifests", okVault + "manifest_class = \"DEEP_ARCHIVE\"\n", `:4: vault[0].manifest_class: "DEEP_ARCHIVE" needs a restore`},
		{"region on file vault", vault(`id = "`+id0+`"`, `url = "file:///srv/v"`, `region = "eu-west-1"`),
			`:4: vault[0].region: applies only to s3:// vaults`},
		{"restore_delay on s3 vault", okVault + "restore_delay = \"1s\"\n", `:4: vault[0].restore_delay: applies only to file:// vaults`},
		{"bad endpoint", okVault + "endpoint = \"127.0.0.1:9000\"\n", `:4: vault[0].endpoint: "127.0.0.1:9000" is not an http:// or https:// URL`},
		{"bad tier", "[thaw]\ntier = \"Bulky\"\n", `:2: thaw.tier: "Bulky" is not one of Bulk, Standard, Expedited`},
		{"days zero", "[thaw]\ndays = 0\n", `:2: thaw.days: 0 is out of range: must be between 1 and 365`},
		{"days too many", "[thaw]\ndays = 366\n", `:2: thaw.days: 366 is out of range`},
		{"poll too fast", "[thaw]\npoll_interval = \"10ms\"\n", `:2: thaw.poll_interval: 10ms is too short`},
		{"concurrency", "[freeze]\nconcurrency = 0\n", `:2: freeze.concurrency: 0 is out of range: must be between 1 and 64`},
		{"part size", "[freeze]\npart_size = \"1M\"\n", `:2: freeze.part_size: 1MiB is out of range: must be between 5MiB and 5GiB`},
		{"price class", "[thaw.prices.STANDARD]\nBulk = { per_gb = 1.0 }\n", `:1: thaw.prices.STANDARD: "STANDARD" is not one of GLACIER, DEEP_ARCHIVE`},
		{"price tier", "[thaw.prices.GLACIER]\nFast = { per_gb = 1.0 }\n", `:2: thaw.prices.GLACIER.Fast: "Fast" is not one of Bulk, Standard, Expedited`},
		{"negative price", "[thaw.prices.GLACIER]\nBulk = { per_gb = -1.0 }\n", `:2: thaw.prices.GLACIER.Bulk.per_gb: -1 is not a price`},
		{"nan price", "[thaw.prices.GLACIER]\nBulk = { per_gb = nan }\n", `:2: thaw.prices.GLACIER.Bulk.per_gb: NaN is not a price`},
		{"unknown price key", "[thaw.prices.GLACIER]\nBulk = { per_tb = 1.0 }\n", `:2: unknown key "thaw.prices.GLACIER.Bulk.per_tb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.doc)
			c, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, want error %q", tc.doc, c, tc.want)
			}
			if !errors.Is(err, config.ErrConfig) {
				t.Errorf("error %q does not wrap ErrConfig", err)
			}
			if got, want := err.Error(), "config "+path+tc.want; !strings.HasPrefix(got, want) {
				t.Errorf("Load(%q) error\n got %s\nwant %s…", tc.doc, got, want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := writeConfig(t, "[backup]\ncompression = \"gzip\"\n[thaw]\ndays = 0\n")
	_, err := config.Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{path + ":2: backup.compression", path + ":4: thaw.days"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	var e *config.Error
	if !errors.As(err, &e) || e.File != path || e.Line == 0 || e.Key == "" {
		t.Errorf("errors.As(%v) = %+v, want an *Error with file, line and key", err, e)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.toml")
	_, err := config.Load(path)
	if !errors.Is(err, config.ErrConfig) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want ErrConfig and fs.ErrNotExist", err)
	}
	if got, want := err.Error(), "config "+path+": no such file or directory"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestValidateNamesKey(t *testing.T) {
	c := config.Default()
	c.Vaults = []config.Vault{
		{ID: id0, URL: "s3://bucket"},
		{ID: id1, URL: "s3://bucket", StorageClass: "GLACIERR"},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	if got, want := err.Error(), `config: vault[1].storage_class: "GLACIERR" is not one of STANDARD, STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE`; got != want {
		t.Errorf("Validate() = %q, want %q", got, want)
	}
	var e *config.Error
	if !errors.As(err, &e) || e.Key != "vault[1].storage_class" {
		t.Errorf("Key = %+v, want vault[1].storage_class", e)
	}
	if !errors.Is(err, config.ErrConfig) {
		t.Errorf("%v does not wrap ErrConfig", err)
	}
}

func TestVault(t *testing.T) {
	c := config.Default()
	c.Vaults = []config.Vault{{ID: id1, URL: "file:///srv/v"}, {ID: id0, URL: "s3://bucket"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := c.Vault(strings.ToUpper(id0))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.URL, "s3://bucket"; got != want {
		t.Errorf("Vault(%s).URL = %q, want %q", id0, got, want)
	}
	const other = "11111111-2222-3333-4444-555555555555"
	for _, tc := range []struct {
		name string
		c    *config.Config
		id   string
		want string
	}{
		{"unknown", c, other, "vault " + other + " is not configured: the vaults in the built-in configuration are " + id0 + ", " + id1},
		{"none configured", config.Default(), other, "vault " + other + " is not configured: the built-in configuration has no vault; add a [[vault]] table"},
		{"not a uuid", c, "my-vault", `vault "my-vault" is not a UUID`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Vault(tc.id)
			if !errors.Is(err, config.ErrUnknownVault) || !errors.Is(err, config.ErrConfig) {
				t.Fatalf("Vault(%q) = %v, want ErrUnknownVault and ErrConfig", tc.id, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Vault(%q) error\n got %s\nwant %s…", tc.id, err, tc.want)
			}
		})
	}

	path := writeConfig(t, "")
	loaded, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.Vault(other); err == nil || !strings.Contains(err.Error(), path+" has no vault") {
		t.Errorf("Vault on a loaded config = %v, want it to name %s", err, path)
	}
}

func TestPricesCost(t *testing.T) {
	p := config.DefaultPrices()
	usd, ok := p.Cost("DEEP_ARCHIVE", "Standard", 2000, 10<<30)
	if !ok {
		t.Fatal("no price for DEEP_ARCHIVE Standard")
	}
	if want := 2*0.10 + 10*0.02; usd < want-1e-9 || usd > want+1e-9 {
		t.Errorf("Cost = %v, want %v", usd, want)
	}
	if _, ok := p.Cost("DEEP_ARCHIVE", "Expedited", 1, 1); ok {
		t.Error("DEEP_ARCHIVE has a price for Expedited, which it does not offer")
	}
}
