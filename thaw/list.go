package thaw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// Entry is one archive found in a vault.
type Entry struct {
	BackupID string    `json:"backup_id"`
	Time     time.Time `json:"time"`
	// Bytes is the ciphertext size: the manifest's, or for an incomplete
	// archive the sum of the fragments found.
	Bytes     int64  `json:"bytes"`
	Fragments int    `json:"fragments"`
	Class     string `json:"class,omitempty"`
	// Incomplete: fragments without a manifest (an upload that did not
	// finish, or is still running). Such an archive cannot be restored.
	Incomplete bool `json:"incomplete,omitempty"`
	// Plaintext is the manifest's plaintext byte count (0 if incomplete).
	Plaintext int64  `json:"plaintext_bytes,omitempty"`
	Label     string `json:"label,omitempty"`
	Host      string `json:"host,omitempty"`
}

// ID parses the entry's backup ID.
func (e Entry) ID() (archive.ID, error) { return archive.ParseID(e.BackupID) }

// List returns the archives of vault in store whose prefix is prefix or
// below it (all archives for ""), oldest first. It reads each manifest
// (kept in a class that needs no restore); keys that are not archive
// objects are ignored.
func List(ctx context.Context, store storage.Store, vault uuid.UUID, prefix string) ([]Entry, error) {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	keyPrefix := ""
	if prefix != "" {
		keyPrefix = prefix + "/"
	}
	type acc struct {
		id       archive.ID
		manifest bool
		frags    int
		bytes    int64
		class    string
	}
	found := map[string]*acc{}
	err := store.List(ctx, keyPrefix, func(o storage.ObjectInfo) error {
		dir, name := path.Split(o.Key)
		dir = strings.TrimSuffix(dir, "/")
		_, isFrag := archive.ParseFragmentName(name)
		if name != archive.ManifestName && isFrag != nil {
			return nil
		}
		id, err := archive.ParseID(vault.String() + "/" + dir)
		if err != nil {
			return nil
		}
		a := found[dir]
		if a == nil {
			a = &acc{id: id}
			found[dir] = a
		}
		if name == archive.ManifestName {
			a.manifest = true
			return nil
		}
		a.frags++
		a.bytes += o.Size
		if a.class == "" {
			a.class = o.Class
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("thaw: list vault %s: %w", vault, err)
	}
	var out []Entry
	for dir, a := range found {
		e := Entry{BackupID: a.id.String(), Time: a.id.Time(), Bytes: a.bytes, Fragments: a.frags, Class: a.class, Incomplete: !a.manifest}
		if a.manifest {
			m, err := getManifest(ctx, store, a.id)
			if err != nil {
				return nil, fmt.Errorf("thaw: list vault %s: %s: %w", vault, dir, err)
			}
			e.Bytes, e.Fragments, e.Plaintext, e.Label, e.Host = m.CiphertextBytes, len(m.Fragments), m.PlaintextBytes, m.Label, m.Host
			if e.Time.IsZero() {
				e.Time = m.Created
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.BackupID[37:], b.BackupID[37:]) })
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// getManifest reads and checks archive id's manifest from the vault.
func getManifest(ctx context.Context, store storage.Store, id archive.ID) (*archive.Manifest, error) {
	key := id.Key() + "/" + archive.ManifestName
	rc, err := store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	m, err := archive.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if m.BackupID != id.String() {
		return nil, fmt.Errorf("%s: %w: manifest is for %s", key, archive.ErrCorrupt, m.BackupID)
	}
	return m, nil
}

// Latest returns the newest complete archive among entries whose prefix
// is exactly prefix, created before before (zero: any time). ok is false
// when there is none.
func Latest(entries []Entry, prefix string, before time.Time) (archive.ID, bool) {
	var best archive.ID
	ok := false
	for _, e := range entries {
		id, err := e.ID()
		if err != nil || e.Incomplete || id.Prefix != prefix {
			continue
		}
		if !before.IsZero() && !id.Time().Before(before) {
			continue
		}
		if !ok || id.ULID.Compare(best.ULID) > 0 {
			best, ok = id, true
		}
	}
	return best, ok
}

// Listing is thaw's answer to a list request, published as
// restore/.listings/KEY.json (ListingPath) and replaced by each newer
// answer.
type Listing struct {
	Format    string    `json:"format"`
	Vault     string    `json:"vault"`
	Prefix    string    `json:"prefix"`
	Request   string    `json:"request"`
	Generated time.Time `json:"generated"`
	Archives  []Entry   `json:"archives"`
	// Failure is set when the vault could not be listed.
	Failure *Failure `json:"failure,omitempty"`
}

// ListingFormat is the format of listing files.
const ListingFormat = "cryophile-listing/1"

// listingDir is where thaw publishes listings, below restore/.
const listingDir = ".listings"

// ListingPath returns the listing file for vault and prefix.
func ListingPath(sp *spool.Spool, vault uuid.UUID, prefix string) string {
	return filepath.Join(sp.Dir(spool.QueueRestore, archive.ID{}), listingDir, listKey(vault.String(), prefix)+".json")
}

// ReadListing reads the listing of vault and prefix; a missing one wraps
// fs.ErrNotExist.
func ReadListing(sp *spool.Spool, vault uuid.UUID, prefix string) (*Listing, error) {
	b, err := os.ReadFile(ListingPath(sp, vault, prefix))
	if err != nil {
		return nil, err
	}
	var l Listing
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", ListingPath(sp, vault, prefix), archive.ErrCorrupt, err)
	}
	if l.Format != ListingFormat {
		return nil, fmt.Errorf("%s: unknown format %q", ListingPath(sp, vault, prefix), l.Format)
	}
	return &l, nil
}

// failureOf classifies an error about a whole request.
func failureOf(err error) *Failure {
	switch {
	case errors.Is(err, storage.ErrPermanent), errors.Is(err, config.ErrUnknownVault):
		return &Failure{Code: FailUnavailable, Message: err.Error()}
	case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrUnknownFormat):
		return &Failure{Code: FailCorrupt, Message: err.Error()}
	}
	return nil
}
