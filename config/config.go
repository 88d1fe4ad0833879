package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/storage"
)

// DefaultSpool is the spool directory when neither the flag, the
// environment nor the configuration names one.
const DefaultSpool = "/var/spool/cryophile"

// Fragment size limits: an S3 object holds at most 5 TiB, and fragments
// smaller than 1 MiB would only multiply requests.
const (
	MinFragmentSize = 1 * MiB
	MaxFragmentSize = 5 * TiB
)

// Compression names accepted in backup.compression.
const (
	CompressionZstd = "zstd"
	CompressionLZ4  = "lz4"
	CompressionNone = "none"
)

// Zstd levels accepted in backup.level; "" means the default, fastest.
const (
	LevelFastest = "fastest"
	LevelDefault = "default"
	LevelBetter  = "better"
	LevelBest    = "best"
)

// Config is the whole configuration. Each field's TOML key is in its tag;
// DESIGN.md ("Configuration") fixes the names, example.toml documents
// every key with its default.
type Config struct {
	// Spool is the spool directory (key "spool"), an absolute path.
	// $CRYOPHILE_SPOOL overrides it (see ApplyEnv), --spool overrides both.
	Spool string `toml:"spool"`
	// Budget limits what the spool may hold (table [budget]).
	Budget Budget `toml:"budget"`
	// Backup holds cryophile-backup's defaults (table [backup]).
	Backup Backup `toml:"backup"`
	// Vaults are the configured storage locations (tables [[vault]]).
	Vaults []Vault `toml:"vault"`
	// Freeze configures the uploading daemon (table [freeze]).
	Freeze Freeze `toml:"freeze"`
	// Thaw configures the restoring daemon (table [thaw]).
	Thaw Thaw `toml:"thaw"`

	// file is the file the configuration was loaded from, "" for defaults.
	file string
}

// Budget is the spool's back-pressure (DESIGN.md, hand-off rule 7). It is
// a table of its own because the top-level key "spool" is the directory.
type Budget struct {
	// MaxBytes (key "max_bytes"): backup waits while the spool holds more
	// than this. 0 means no limit but the free-space reserve.
	MaxBytes Size `toml:"max_bytes"`
	// Reserve (key "reserve"): free space kept on the spool's file system;
	// backup waits and thaw stops downloading below it. 0 means
	// 2×backup.fragment_size + 1 GiB (see ReserveFor).
	Reserve Size `toml:"reserve"`
	// RestoreMaxBytes (key "restore_max_bytes"): thaw stops downloading
	// ahead while restore/ holds more than this. 0 means no limit but the
	// free-space reserve.
	RestoreMaxBytes Size `toml:"restore_max_bytes"`
}

// ReserveFor returns the free-space reserve for fragments of the given
// size: Reserve if set, else 2×fragmentSize + 1 GiB.
func (b Budget) ReserveFor(fragmentSize int64) int64 {
	if b.Reserve > 0 {
		return int64(b.Reserve)
	}
	return 2*fragmentSize + GiB
}

// Backup holds cryophile-backup's defaults; its flags override them.
type Backup struct {
	// Compression (key "compression"): zstd, lz4 or none. Default zstd.
	Compression string `toml:"compression"`
	// Level (key "level"): zstd level, fastest, default, better or best;
	// "" means fastest. Only valid with zstd.
	Level string `toml:"level"`
	// FragmentSize (key "fragment_size"): MinFragmentSize to
	// MaxFragmentSize. Default 1 GiB.
	FragmentSize Size `toml:"fragment_size"`
	// Recipients (key "recipients"): OpenPGP certificate files, armored or
	// binary. A relative path in a configuration file is relative to the
	// file's directory.
	Recipients []string `toml:"recipients"`
	// AEAD (key "aead"): encrypt with RFC 9580 SEIPDv2 AES-256-GCM, which
	// GnuPG cannot decrypt (DESIGN.md, "Archive format"). Default false.
	AEAD bool `toml:"aead"`
}

// Vault is one storage location (a [[vault]] table).
type Vault struct {
	// ID (key "id", required): the vault's UUID, unique in the file.
	// Validate puts it in canonical lower-case form.
	ID string `toml:"id"`
	// URL (key "url", required): s3://BUCKET[/KEYPREFIX] or
	// file:///ABSOLUTE/PATH.
	URL string `toml:"url"`
	// StorageClass (key "storage_class"): class of fragments, one of
	// STANDARD, STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE. Default
	// GLACIER. A file vault with GLACIER or DEEP_ARCHIVE emulates archive
	// behaviour.
	StorageClass string `toml:"storage_class"`
	// ManifestClass (key "manifest_class"): class of manifests, one that
	// needs no restore (STANDARD, STANDARD_IA, GLACIER_IR) so listing never
	// waits for a thaw. Default STANDARD.
	ManifestClass string `toml:"manifest_class"`
	// Region (key "region", s3 only): the bucket's region; "" lets the AWS
	// SDK decide (AWS_REGION, the profile).
	Region string `toml:"region"`
	// Endpoint (key "endpoint", s3 only): http(s) URL of an S3-compatible
	// service; "" means AWS.
	Endpoint string `toml:"endpoint"`
	// PathStyle (key "path_style", s3 only): path-style addressing, which
	// most S3-compatible services need.
	PathStyle bool `toml:"path_style"`
	// Profile (key "profile", s3 only): AWS shared-config profile; ""
	// means the SDK's default chain.
	Profile string `toml:"profile"`
	// RestoreDelay (key "restore_delay", file only): how long an emulated
	// restore of an archived object takes. Default 0s.
	RestoreDelay Duration `toml:"restore_delay"`
}

// Freeze configures cryophile-freeze.
type Freeze struct {
	// Concurrency (key "concurrency"): fragments uploaded at once, 1 to 64.
	// Default 4.
	Concurrency int `toml:"concurrency"`
	// PartSize (key "part_size"): multipart upload part size, 5 MiB to
	// 5 GiB; freeze raises it for a fragment that would need more than
	// 10,000 parts. Default 64 MiB.
	PartSize Size `toml:"part_size"`
	// MultipartThreshold (key "multipart_threshold"): fragments at least
	// this large are uploaded in parts, 5 MiB to 5 GiB. Default 64 MiB.
	MultipartThreshold Size `toml:"multipart_threshold"`
	// Rescan (key "rescan"): period of the full rescan of freeze/ that
	// backs up file-system events, at least 1s. Default 5m.
	Rescan Duration `toml:"rescan"`
}

// Thaw configures cryophile-thaw.
type Thaw struct {
	// Tier (key "tier"): restore tier, Bulk, Standard or Expedited (any
	// case; Validate normalises it). Default Bulk.
	Tier string `toml:"tier"`
	// Days (key "days"): how long restored copies stay readable, 1 to 365.
	// Default 7.
	Days int `toml:"days"`
	// PollInterval (key "poll_interval"): base interval between restore
	// status checks (backoff and jitter are added), at least 1s. Default 1m.
	PollInterval Duration `toml:"poll_interval"`
	// Concurrency (key "concurrency"): downloads at once, 1 to 64.
	// Default 4.
	Concurrency int `toml:"concurrency"`
	// Prices (table [thaw.prices]) lets thaw estimate what a restore
	// costs before it starts. Default DefaultPrices.
	Prices Prices `toml:"prices"`
}

// Price is the price of restoring from one class with one tier, in USD.
type Price struct {
	// PerThousandRequests (key "per_1000_requests"): per 1,000 restore
	// requests (one request per fragment).
	PerThousandRequests float64 `toml:"per_1000_requests"`
	// PerGB (key "per_gb"): per GB retrieved (AWS bills GB of 2³⁰ bytes).
	PerGB float64 `toml:"per_gb"`
}

// Prices maps a storage class that needs a restore (GLACIER, DEEP_ARCHIVE)
// and a tier (Bulk, Standard, Expedited) to a Price:
//
//	[thaw.prices.GLACIER]
//	Bulk = { per_1000_requests = 0.0, per_gb = 0.0 }
//
// Entries in a configuration file are merged into DefaultPrices: only the
// ones given are replaced.
type Prices map[string]map[string]Price

// DefaultPrices returns AWS's list prices in us-east-1 for restores, in USD,
// as published on https://aws.amazon.com/s3/pricing/ (unchanged since bulk
// restores from Glacier Flexible Retrieval became free in November 2021;
// last checked 2026-06). Deep Archive has no Expedited tier.
func DefaultPrices() Prices {
	return Prices{
		storage.ClassGlacier: {
			storage.TierBulk:      {PerThousandRequests: 0, PerGB: 0},
			storage.TierStandard:  {PerThousandRequests: 0.05, PerGB: 0.01},
			storage.TierExpedited: {PerThousandRequests: 10, PerGB: 0.03},
		},
		storage.ClassDeepArchive: {
			storage.TierBulk:     {PerThousandRequests: 0.025, PerGB: 0.0025},
			storage.TierStandard: {PerThousandRequests: 0.10, PerGB: 0.02},
		},
	}
}

// Cost estimates the price in USD of restoring requests objects holding
// bytes bytes in total from class with tier. ok is false when the table
// has no price for that class and tier.
func (p Prices) Cost(class, tier string, requests int, bytes int64) (usd float64, ok bool) {
	pr, ok := p[class][tier]
	if !ok {
		return 0, false
	}
	return float64(requests)/1000*pr.PerThousandRequests + float64(bytes)/float64(GiB)*pr.PerGB, true
}

// Default returns the built-in configuration: what a missing file means.
// It has no vault.
func Default() *Config {
	return &Config{
		Spool: DefaultSpool,
		Backup: Backup{
			Compression:  CompressionZstd,
			FragmentSize: Size(GiB),
		},
		Freeze: Freeze{
			Concurrency:        4,
			PartSize:           Size(64 * MiB),
			MultipartThreshold: Size(64 * MiB),
			Rescan:             Duration{5 * time.Minute},
		},
		Thaw: Thaw{
			Tier:         storage.TierBulk,
			Days:         7,
			PollInterval: Duration{time.Minute},
			Concurrency:  4,
			Prices:       DefaultPrices(),
		},
	}
}

// File returns the file c was loaded from, "" for the built-in defaults.
func (c *Config) File() string { return c.file }

var (
	classes         = []string{storage.ClassStandard, storage.ClassStandardIA, storage.ClassGlacierIR, storage.ClassGlacier, storage.ClassDeepArchive}
	manifestClasses = []string{storage.ClassStandard, storage.ClassStandardIA, storage.ClassGlacierIR}
	archiveClasses  = []string{storage.ClassGlacier, storage.ClassDeepArchive}
	tiers           = []string{storage.TierBulk, storage.TierStandard, storage.TierExpedited}
	compressions    = []string{CompressionZstd, CompressionLZ4, CompressionNone}
	levels          = []string{LevelFastest, LevelDefault, LevelBetter, LevelBest}
)

// Validate checks every value and puts c in canonical form: enumerated
// values (compression, level, classes, tiers) in their canonical spelling
// whatever the case they were written in, vault IDs in lower case, empty
// vault classes set to their defaults. It returns nil or an error wrapping
// ErrConfig that joins one *Error per problem, each naming its key.
func (c *Config) Validate() error {
	return joinErrors(c.validate())
}

func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

// validator collects the problems of one Validate.
type validator struct{ errs []*Error }

func (v *validator) add(key, format string, a ...any) {
	v.errs = append(v.errs, &Error{Key: key, Err: fmt.Errorf("%s: "+format, append([]any{key}, a...)...)})
}

// oneOf returns the canonical spelling of s in allowed (compared without
// case) and reports a problem when there is none.
func (v *validator) oneOf(key, s string, allowed []string) string {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a
		}
	}
	v.add(key, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return s
}

func (v *validator) sizeRange(key string, s Size, min, max int64) {
	if int64(s) < min || int64(s) > max {
		v.add(key, "%s is out of range: must be between %s and %s", s.display(), Size(min), Size(max))
	}
}

func (v *validator) intRange(key string, n, min, max int) {
	if n < min || n > max {
		v.add(key, "%d is out of range: must be between %d and %d", n, min, max)
	}
}

func (v *validator) minDuration(key string, d Duration, min time.Duration) {
	if d.Duration < min {
		v.add(key, "%s is too short: must be at least %s", d.Duration, min)
	}
}

// display formats a Size for a message, negative ones included.
func (s Size) display() string {
	if s < 0 {
		return fmt.Sprintf("%d", int64(s))
	}
	return s.String()
}

func (c *Config) validate() []*Error {
	v := &validator{}
	switch {
	case c.Spool == "":
		v.add("spool", "must not be empty")
	case !path.IsAbs(c.Spool):
		v.add("spool", "%q is not an absolute path", c.Spool)
	}

	b := &c.Budget
	for _, s := range []struct {
		key string
		v   Size
	}{{"budget.max_bytes", b.MaxBytes}, {"budget.reserve", b.Reserve}, {"budget.restore_max_bytes", b.RestoreMaxBytes}} {
		if s.v < 0 {
			v.add(s.key, "%d is negative (0 means no limit)", int64(s.v))
		}
	}

	bk := &c.Backup
	bk.Compression = v.oneOf("backup.compression", bk.Compression, compressions)
	if bk.Level != "" {
		bk.Level = v.oneOf("backup.level", bk.Level, levels)
		if bk.Compression != CompressionZstd {
			v.add("backup.level", "%q applies only to compression = %q (compression is %q)", bk.Level, CompressionZstd, bk.Compression)
		}
	}
	v.sizeRange("backup.fragment_size", bk.FragmentSize, MinFragmentSize, MaxFragmentSize)
	if b.MaxBytes > 0 && int64(b.MaxBytes) < 2*int64(bk.FragmentSize) {
		v.add("budget.max_bytes", "%s is less than two fragments of backup.fragment_size = %s: backup could never make progress",
			b.MaxBytes, bk.FragmentSize)
	}
	for i, r := range bk.Recipients {
		if strings.TrimSpace(r) == "" {
			v.add(fmt.Sprintf("backup.recipients[%d]", i), "empty file name")
		}
	}

	seen := make(map[string]int)
	for i := range c.Vaults {
		vt := &c.Vaults[i]
		key := fmt.Sprintf("vault[%d]", i)
		v.vault(key, vt)
		if vt.ID != "" {
			if j, dup := seen[vt.ID]; dup {
				v.add(key+".id", "%s is already the id of vault[%d]", vt.ID, j)
			} else {
				seen[vt.ID] = i
			}
		}
	}

	f := &c.Freeze
	v.intRange("freeze.concurrency", f.Concurrency, 1, 64)
	v.sizeRange("freeze.part_size", f.PartSize, 5*MiB, 5*GiB)
	v.sizeRange("freeze.multipart_threshold", f.MultipartThreshold, 5*MiB, 5*GiB)
	v.minDuration("freeze.rescan", f.Rescan, time.Second)

	t := &c.Thaw
	t.Tier = v.oneOf("thaw.tier", t.Tier, tiers)
	v.intRange("thaw.days", t.Days, 1, 365)
	v.minDuration("thaw.poll_interval", t.PollInterval, time.Second)
	v.intRange("thaw.concurrency", t.Concurrency, 1, 64)
	t.Prices = v.prices(t.Prices)
	return v.errs
}

func (v *validator) vault(key string, vt *Vault) {
	if vt.ID == "" {
		v.add(key+".id", "missing: every vault needs a UUID (generate one with uuidgen)")
	} else if u, err := parseUUID(vt.ID); err != nil {
		v.add(key+".id", "%v", err)
	} else {
		vt.ID = u.String()
	}

	if vt.StorageClass == "" {
		vt.StorageClass = storage.ClassGlacier
	}
	vt.StorageClass = v.oneOf(key+".storage_class", vt.StorageClass, classes)
	if vt.ManifestClass == "" {
		vt.ManifestClass = storage.ClassStandard
	}
	if slices.ContainsFunc(archiveClasses, func(a string) bool { return strings.EqualFold(a, vt.ManifestClass) }) {
		v.add(key+".manifest_class", "%q needs a restore before it can be read, and manifests must stay readable: want one of %s",
			vt.ManifestClass, strings.Join(manifestClasses, ", "))
	} else {
		vt.ManifestClass = v.oneOf(key+".manifest_class", vt.ManifestClass, manifestClasses)
	}

	if vt.URL == "" {
		v.add(key+".url", "missing: want s3://BUCKET[/KEYPREFIX] or file:///ABSOLUTE/PATH")
		return
	}
	u, err := parseVaultURL(vt.URL)
	if err != nil {
		v.add(key+".url", "%v", err)
		return
	}
	if vt.RestoreDelay.Duration < 0 {
		v.add(key+".restore_delay", "%s is negative", vt.RestoreDelay.Duration)
	}
	switch u.scheme {
	case "s3":
		if vt.RestoreDelay.Duration != 0 {
			v.add(key+".restore_delay", "applies only to file:// vaults (S3 decides how long a restore takes)")
		}
		if vt.Endpoint != "" {
			e, err := url.Parse(vt.Endpoint)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				v.add(key+".endpoint", "%q is not an http:// or https:// URL", vt.Endpoint)
			}
		}
	case "file":
		for _, k := range []struct {
			name string
			set  bool
		}{{"region", vt.Region != ""}, {"endpoint", vt.Endpoint != ""}, {"path_style", vt.PathStyle}, {"profile", vt.Profile != ""}} {
			if k.set {
				v.add(key+"."+k.name, "applies only to s3:// vaults (url is %q)", vt.URL)
			}
		}
	}
}

func (v *validator) prices(p Prices) Prices {
	out := make(Prices, len(p))
	for class, byTier := range p {
		key := "thaw.prices." + class
		canon := v.oneOf(key, class, archiveClasses)
		if out[canon] == nil {
			out[canon] = make(map[string]Price, len(byTier))
		}
		for tier, pr := range byTier {
			tkey := key + "." + tier
			ct := v.oneOf(tkey, tier, tiers)
			if !finite(pr.PerThousandRequests) || pr.PerThousandRequests < 0 {
				v.add(tkey+".per_1000_requests", "%v is not a price: want a number of USD >= 0", pr.PerThousandRequests)
			}
			if !finite(pr.PerGB) || pr.PerGB < 0 {
				v.add(tkey+".per_gb", "%v is not a price: want a number of USD >= 0", pr.PerGB)
			}
			out[canon][ct] = pr
		}
	}
	return out
}

// parseUUID accepts only the canonical 36-character form (any case), as
// archive.ParseVault does for --vault.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("%q is not a UUID (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s)
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("%q is not a UUID: %v", s, err)
	}
	return u, nil
}

// vaultURL is a parsed vault URL.
type vaultURL struct {
	scheme    string // "s3" or "file"
	bucket    string // s3
	keyPrefix string // s3, without leading or trailing slash
	path      string // file, absolute and clean
}

// maxKeyPrefix bounds an S3 key prefix so that the longest object key,
// KEYPREFIX/PREFIX/ULID/chunk.NNNNNNNN with an archive prefix of up to 900
// bytes, stays under S3's 1024-byte key limit.
const maxKeyPrefix = 64

func parseVaultURL(s string) (vaultURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return vaultURL{}, fmt.Errorf("%q: %v", s, err)
	}
	switch {
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return vaultURL{}, fmt.Errorf("%q: a vault URL has no query or fragment", s)
	case u.User != nil:
		return vaultURL{}, fmt.Errorf("%q: credentials do not belong in the URL (use the AWS credential chain or profile)", s)
	}
	switch u.Scheme {
	case "s3":
		if u.Opaque != "" || u.Host == "" {
			return vaultURL{}, fmt.Errorf("%q: want s3://BUCKET[/KEYPREFIX]", s)
		}
		if u.Port() != "" || !validBucket(u.Host) {
			return vaultURL{}, fmt.Errorf("%q: %q is not a bucket name (letters, digits, '.', '-' and '_', 3 to 255 characters)", s, u.Host)
		}
		prefix := strings.Trim(u.Path, "/")
		if err := validKeyPrefix(prefix); err != nil {
			return vaultURL{}, fmt.Errorf("%q: key prefix %q %v", s, prefix, err)
		}
		return vaultURL{scheme: "s3", bucket: u.Host, keyPrefix: prefix}, nil
	case "file":
		if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) {
			return vaultURL{}, fmt.Errorf("%q: want file:///ABSOLUTE/PATH (three slashes: the path must be absolute)", s)
		}
		if p := path.Clean(u.Path); p == "/" {
			return vaultURL{}, fmt.Errorf("%q: the root directory cannot be a vault", s)
		}
		return vaultURL{scheme: "file", path: path.Clean(u.Path)}, nil
	case "":
		return vaultURL{}, fmt.Errorf("%q: not a URL: want s3://BUCKET[/KEYPREFIX] or file:///ABSOLUTE/PATH", s)
	default:
		return vaultURL{}, fmt.Errorf("%q: unsupported scheme %q: want s3:// or file://", s, u.Scheme)
	}
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 255 {
		return false
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// validKeyPrefix applies the rules of archive prefixes (S3-safe characters,
// no empty, "." or ".." component) to a vault URL's key prefix.
func validKeyPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxKeyPrefix {
		return fmt.Errorf("is longer than %d bytes", maxKeyPrefix)
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/!_.*'()-", r)) {
			return fmt.Errorf("has character %q (allowed: A-Z a-z 0-9 / ! _ . * ' ( ) -)", r)
		}
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("has an empty, \".\" or \"..\" component")
		}
	}
	return nil
}

// Scheme returns "s3" or "file" for a valid vault, "" otherwise.
func (v *Vault) Scheme() string {
	u, _ := parseVaultURL(v.URL)
	return u.scheme
}

// Bucket returns an s3 vault's bucket, "" for other vaults.
func (v *Vault) Bucket() string {
	u, _ := parseVaultURL(v.URL)
	return u.bucket
}

// KeyPrefix returns an s3 vault's key prefix without leading or trailing
// slash ("" when the URL has none): object keys are KEYPREFIX/PREFIX/ULID/….
func (v *Vault) KeyPrefix() string {
	u, _ := parseVaultURL(v.URL)
	return u.keyPrefix
}

// Path returns a file vault's directory, absolute and clean; "" for other
// vaults.
func (v *Vault) Path() string {
	u, _ := parseVaultURL(v.URL)
	return u.path
}

// Vault returns the vault whose ID is id (a UUID in any case). For an ID
// that is not configured it returns an error wrapping ErrUnknownVault and
// ErrConfig that lists the configured IDs or says how to add a vault.
func (c *Config) Vault(id string) (*Vault, error) {
	u, err := parseUUID(id)
	if err != nil {
		return nil, &unknownVaultError{fmt.Sprintf("vault %v", err)}
	}
	want := u.String()
	ids := make([]string, 0, len(c.Vaults))
	for i := range c.Vaults {
		if strings.EqualFold(c.Vaults[i].ID, want) {
			return &c.Vaults[i], nil
		}
		ids = append(ids, c.Vaults[i].ID)
	}
	where := "the built-in configuration"
	if c.file != "" {
		where = c.file
	}
	if len(ids) == 0 {
		return nil, &unknownVaultError{fmt.Sprintf(
			"vault %s is not configured: %s has no vault; add a [[vault]] table with id = %q and url = \"s3://BUCKET\" or \"file:///PATH\"",
			want, where, want)}
	}
	slices.Sort(ids)
	return nil, &unknownVaultError{fmt.Sprintf("vault %s is not configured: the vaults in %s are %s", want, where, strings.Join(ids, ", "))}
}

// unknownVaultError is what Config.Vault returns for an unknown ID.
type unknownVaultError struct{ msg string }

func (e *unknownVaultError) Error() string { return e.msg }

func (e *unknownVaultError) Is(target error) bool {
	return target == ErrUnknownVault || target == ErrConfig
}
