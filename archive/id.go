package archive

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/ulid/v2"
)

// MaxPrefixLen is the longest prefix accepted, in bytes. It leaves room under
// S3's 1,024-byte key limit for a key prefix, the ULID and a fragment name.
const MaxPrefixLen = 900

// ErrInvalidID is wrapped by every error about a malformed vault UUID, prefix,
// ULID, backup ID or fragment name.
var ErrInvalidID = errors.New("invalid archive name")

// ID names one archive: VAULT/PREFIX/ULID, or VAULT/ULID without a prefix.
type ID struct {
	Vault  uuid.UUID
	Prefix string // validated by ValidatePrefix; may be empty
	ULID   ulid.ULID
}

// String returns the backup ID as printed by cryophile-backup.
func (id ID) String() string { return path.Join(id.Vault.String(), id.Key()) }

// Key returns PREFIX/ULID (or ULID alone): the archive's path inside a vault
// and, below the vault directory, inside each spool queue.
func (id ID) Key() string {
	if id.Prefix == "" {
		return id.ULID.String()
	}
	return id.Prefix + "/" + id.ULID.String()
}

// Dir returns VAULT/PREFIX/ULID as a slash-separated relative path, the
// archive's directory below each spool queue.
func (id ID) Dir() string { return id.String() }

// Time returns the time encoded in the ULID.
func (id ID) Time() time.Time { return ulid.Time(id.ULID.Time()).UTC() }

// ParseVault parses a vault UUID in its canonical textual form.
func ParseVault(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("vault %q: %w: not a UUID (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s, ErrInvalidID)
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("vault %q: %w: %v", s, ErrInvalidID, err)
	}
	return u, nil
}

// ParseULID parses a ULID in its canonical 26-character form.
func ParseULID(s string) (ulid.ULID, error) {
	u, err := ulid.ParseStrict(s)
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("ulid %q: %w: %v", s, ErrInvalidID, err)
	}
	return u, nil
}

// ValidatePrefix reports whether p is an acceptable archive prefix: only the
// S3-safe characters [A-Za-z0-9/!_.*'()-], relative, with no empty, "." or
// ".." component, at most MaxPrefixLen bytes. The empty prefix is valid.
func ValidatePrefix(p string) error {
	if p == "" {
		return nil
	}
	bad := func(why string) error { return fmt.Errorf("prefix %q: %w: %s", p, ErrInvalidID, why) }
	if len(p) > MaxPrefixLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxPrefixLen))
	}
	for i := 0; i < len(p); i++ {
		if !prefixByte(p[i]) {
			return bad(fmt.Sprintf("character %s not allowed (only A-Z a-z 0-9 / ! _ . * ' ( ) -)", strconv.QuoteRune(rune(p[i]))))
		}
	}
	if p[0] == '/' {
		return bad("absolute path; a prefix is relative")
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			return bad("empty path component")
		case ".", "..":
			return bad(fmt.Sprintf("%q path component", c))
		}
	}
	if isULID(path.Base(p)) {
		// A prefix ending in a ULID-shaped component would make VAULT/PREFIX
		// ambiguous with VAULT/PREFIX/ULID when IDs are parsed.
		return bad("last component looks like a ULID")
	}
	return nil
}

func prefixByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("/!_.*'()-", c) >= 0
}

func isULID(s string) bool {
	_, err := ulid.ParseStrict(s)
	return err == nil && len(s) == ulid.EncodedSize
}

// NewID returns a fresh ID for an archive taken at time t (normally now, or
// the time of the snapshot being backed up). The vault and prefix must
// already be valid.
func NewID(vault uuid.UUID, prefix string, t time.Time) (ID, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return ID{}, err
	}
	u, err := newULID(t)
	if err != nil {
		return ID{}, err
	}
	return ID{Vault: vault, Prefix: prefix, ULID: u}, nil
}

var (
	entropyMu sync.Mutex
	entropy   = ulid.Monotonic(rand.Reader, 0)
)

func newULID(t time.Time) (ulid.ULID, error) {
	entropyMu.Lock()
	defer entropyMu.Unlock()
	u, err := ulid.New(ulid.Timestamp(t), entropy)
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("new ulid for %s: %w", t.Format(time.RFC3339), err)
	}
	return u, nil
}

// ParseID parses a backup ID, VAULT/PREFIX/ULID or VAULT/ULID.
func ParseID(s string) (ID, error) {
	vault, rest, ok := strings.Cut(s, "/")
	if !ok {
		return ID{}, fmt.Errorf("backup id %q: %w: want VAULT/[PREFIX/]ULID", s, ErrInvalidID)
	}
	v, err := ParseVault(vault)
	if err != nil {
		return ID{}, fmt.Errorf("backup id %q: %w", s, err)
	}
	prefix, last := "", rest
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		prefix, last = rest[:i], rest[i+1:]
	}
	u, err := ParseULID(last)
	if err != nil {
		return ID{}, fmt.Errorf("backup id %q: %w", s, err)
	}
	if err := ValidatePrefix(prefix); err != nil {
		return ID{}, fmt.Errorf("backup id %q: %w", s, err)
	}
	return ID{Vault: v, Prefix: prefix, ULID: u}, nil
}

// FragmentName returns the name of fragment n (1-based): chunk.000001, …,
// chunk.999999, chunk.1000000, …
func FragmentName(n int) string { return fmt.Sprintf("chunk.%06d", n) }

// ParseFragmentName returns the 1-based number of the fragment named name,
// the inverse of FragmentName: it accepts exactly the names FragmentName
// returns.
func ParseFragmentName(name string) (int, error) {
	digits, ok := strings.CutPrefix(name, "chunk.")
	if !ok || len(digits) < 6 || len(digits) > 12 || (len(digits) > 6 && digits[0] == '0') {
		return 0, fmt.Errorf("fragment name %q: %w", name, ErrInvalidID)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("fragment name %q: %w", name, ErrInvalidID)
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("fragment name %q: %w", name, ErrInvalidID)
	}
	return n, nil
}
