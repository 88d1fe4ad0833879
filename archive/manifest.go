package archive

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ManifestName is the file and object name of an archive's manifest.
const ManifestName = "manifest.json"

// FormatVersion is the format this package writes. Readers accept any
// "cryophile/1" or "cryophile/1.N" and refuse other major versions.
const FormatVersion = "cryophile/1"

// Compression names, as recorded in the manifest.
const (
	CompressionZstd = "zstd"
	CompressionLZ4  = "lz4"
	CompressionNone = "none"
)

// Encryption modes, as recorded in the manifest.
const (
	// ModeSEIPDv1 is OpenPGP SEIPD version 1 (AES-256 + MDC), readable by gpg.
	ModeSEIPDv1 = "seipdv1"
	// ModeSEIPDv2GCM is RFC 9580 SEIPD version 2 with AES-256-GCM; not
	// readable by GnuPG.
	ModeSEIPDv2GCM = "seipdv2-aes256-gcm"
)

// ErrUnknownFormat is wrapped when a manifest's format major version is not
// one this package understands.
var ErrUnknownFormat = errors.New("unknown manifest format")

// ErrCorrupt is wrapped by every error about data that is damaged: a
// malformed manifest, a fragment whose size or SHA-256 does not match, a
// failed OpenPGP authentication.
var ErrCorrupt = errors.New("corrupt archive")

// Manifest describes a complete archive. Field order is the JSON key order.
type Manifest struct {
	Format          string     `json:"format"`
	BackupID        string     `json:"backup_id"`
	Created         time.Time  `json:"created"`
	Host            string     `json:"host,omitempty"`
	Label           string     `json:"label,omitempty"`
	Compression     string     `json:"compression"`
	Encryption      Encryption `json:"encryption"`
	PlaintextBytes  int64      `json:"plaintext_bytes"`
	CiphertextBytes int64      `json:"ciphertext_bytes"`
	FragmentSize    int64      `json:"fragment_size"`
	Fragments       []Fragment `json:"fragments"`
}

// Encryption records how the OpenPGP message was made.
type Encryption struct {
	Mode string `json:"mode"`
	// Recipients are the fingerprints (upper-case hex) of the encryption
	// subkeys the session key was encrypted to.
	Recipients []string `json:"recipients"`
}

// Fragment is one piece of the ciphertext.
type Fragment struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex of the fragment's bytes
}

// ID parses the manifest's backup ID.
func (m *Manifest) ID() (ID, error) { return ParseID(m.BackupID) }

// Marshal returns the manifest as indented JSON with a final newline.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.BackupID, err)
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes and validates a manifest. Unknown fields are
// ignored; an unknown format major version wraps ErrUnknownFormat, any other
// problem wraps ErrCorrupt.
func ParseManifest(b []byte) (*Manifest, error) {
	var probe struct {
		Format *string `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: manifest is not JSON: %v", ErrCorrupt, err)
	}
	if probe.Format == nil {
		return nil, fmt.Errorf("%w: manifest has no \"format\" field", ErrCorrupt)
	}
	if err := checkFormat(*probe.Format); err != nil {
		return nil, err
	}
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func checkFormat(f string) error {
	rest, ok := strings.CutPrefix(f, "cryophile/")
	major, _, _ := strings.Cut(rest, ".")
	if !ok || major != "1" {
		if n, err := strconv.Atoi(major); ok && err == nil && n > 1 {
			return fmt.Errorf("%w %q: this cryophile reads cryophile/1; a newer cryophile wrote this archive", ErrUnknownFormat, f)
		}
		return fmt.Errorf("%w %q: this cryophile reads cryophile/1", ErrUnknownFormat, f)
	}
	return nil
}

// Validate checks the manifest's internal consistency: a known format,
// compression and mode, a parseable backup ID, fragments named chunk.000001
// onwards in order, sizes that add up to CiphertextBytes, well-formed
// SHA-256 digests.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: manifest %s: %s", ErrCorrupt, m.BackupID, fmt.Sprintf(format, a...))
	}
	if err := checkFormat(m.Format); err != nil {
		return err
	}
	if _, err := ParseID(m.BackupID); err != nil {
		return bad("%v", err)
	}
	switch m.Compression {
	case CompressionZstd, CompressionLZ4, CompressionNone:
	default:
		return bad("unknown compression %q", m.Compression)
	}
	switch m.Encryption.Mode {
	case ModeSEIPDv1, ModeSEIPDv2GCM:
	default:
		return bad("unknown encryption mode %q", m.Encryption.Mode)
	}
	if m.PlaintextBytes < 0 || m.FragmentSize <= 0 {
		return bad("negative plaintext_bytes or non-positive fragment_size")
	}
	if len(m.Fragments) == 0 {
		return bad("no fragments")
	}
	var sum int64
	for i, f := range m.Fragments {
		if want := FragmentName(i + 1); f.Name != want {
			return bad("fragment %d is named %q, want %q", i+1, f.Name, want)
		}
		if f.Size <= 0 || f.Size > m.FragmentSize {
			return bad("fragment %s has size %d (fragment_size %d)", f.Name, f.Size, m.FragmentSize)
		}
		if d, err := hex.DecodeString(f.SHA256); err != nil || len(d) != 32 || strings.ToLower(f.SHA256) != f.SHA256 {
			return bad("fragment %s: sha256 %q is not 64 lower-case hex digits", f.Name, f.SHA256)
		}
		sum += f.Size
	}
	if sum != m.CiphertextBytes {
		return bad("fragment sizes add up to %d, ciphertext_bytes is %d", sum, m.CiphertextBytes)
	}
	return nil
}

// Fragment returns the manifest entry named name.
func (m *Manifest) Fragment(name string) (Fragment, bool) {
	n, err := ParseFragmentName(name)
	if err != nil || n > len(m.Fragments) {
		return Fragment{}, false
	}
	return m.Fragments[n-1], true
}
