package thaw

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/ulid/v2"
	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// RequestFormat is the format of request files this package writes and
// reads ("cryophile-request/1"; minor versions are accepted).
const RequestFormat = "cryophile-request/1"

// Request kinds.
const (
	// KindRestore asks thaw to bring one archive into restore/.
	KindRestore = "restore"
	// KindList asks thaw to list the archives of a vault and prefix into
	// a listing file (see ListingPath).
	KindList = "list"
)

// ErrRequest is wrapped by errors about a malformed request file.
var ErrRequest = errors.New("invalid request")

// maxRequestSize bounds what ParseRequest reads.
const maxRequestSize = 64 << 10

// Request is one request file in thaw/. Field order is the JSON key order.
type Request struct {
	Format string `json:"format"`
	Kind   string `json:"kind"`
	// ID is the request's own ULID: its time is when it was filed, and it
	// makes the file name unique.
	ID string `json:"id"`
	// BackupID is the archive to restore (KindRestore).
	BackupID string `json:"backup_id,omitempty"`
	// Vault and Prefix are what to list (KindList).
	Vault  string `json:"vault,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Tier and Days are the restore's (KindRestore).
	Tier string `json:"tier,omitempty"`
	Days int    `json:"days,omitempty"`
	// RequestedBy is the user who filed it, RequestedAt when.
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
}

// NewRestoreRequest returns a restore request for id, filed now by the
// current user. tier must be one of storage's tiers (any case) and days
// 1 to 365.
func NewRestoreRequest(id archive.ID, tier string, days int) (*Request, error) {
	r := &Request{Format: RequestFormat, Kind: KindRestore, BackupID: id.String(), Tier: tier, Days: days}
	if err := r.stamp(); err != nil {
		return nil, err
	}
	t, err := ParseTier(tier)
	if err != nil {
		return nil, err
	}
	r.Tier = t
	return r, r.Validate()
}

// NewListRequest returns a request to list the archives of vault whose
// prefix is prefix.
func NewListRequest(vault uuid.UUID, prefix string) (*Request, error) {
	r := &Request{Format: RequestFormat, Kind: KindList, Vault: vault.String(), Prefix: prefix}
	if err := r.stamp(); err != nil {
		return nil, err
	}
	return r, r.Validate()
}

func (r *Request) stamp() error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	id, err := archive.NewID(uuid.Nil, "", now)
	if err != nil {
		return err
	}
	r.ID, r.RequestedAt = id.ULID.String(), now
	r.RequestedBy = "unknown"
	if u, err := user.Current(); err == nil {
		r.RequestedBy = u.Username
	}
	return nil
}

// ParseTier accepts bulk, standard or expedited in any case and returns
// storage's spelling (Bulk, Standard, Expedited).
func ParseTier(s string) (string, error) {
	for _, t := range []string{storage.TierBulk, storage.TierStandard, storage.TierExpedited} {
		if strings.EqualFold(s, t) {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w: tier %q: want bulk, standard or expedited", ErrRequest, s)
}

// Validate checks a request's fields.
func (r *Request) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrRequest, fmt.Sprintf(format, a...))
	}
	rest, ok := strings.CutPrefix(r.Format, "cryophile-request/")
	if major, _, _ := strings.Cut(rest, "."); !ok || major != "1" {
		return bad("format %q: this cryophile reads %s", r.Format, RequestFormat)
	}
	if _, err := ulid.ParseStrict(r.ID); err != nil {
		return bad("id %q is not a ULID", r.ID)
	}
	if strings.ContainsAny(r.RequestedBy, "\x00\n") || len(r.RequestedBy) > 256 {
		return bad("requested_by %q", r.RequestedBy)
	}
	switch r.Kind {
	case KindRestore:
		if _, err := archive.ParseID(r.BackupID); err != nil {
			return bad("%v", err)
		}
		if t, err := ParseTier(r.Tier); err != nil || t != r.Tier {
			return bad("tier %q: want Bulk, Standard or Expedited", r.Tier)
		}
		if r.Days < 1 || r.Days > 365 {
			return bad("days %d: want 1 to 365", r.Days)
		}
	case KindList:
		if _, err := archive.ParseVault(r.Vault); err != nil {
			return bad("%v", err)
		}
		if err := archive.ValidatePrefix(r.Prefix); err != nil {
			return bad("%v", err)
		}
	default:
		return bad("kind %q: want %q or %q", r.Kind, KindRestore, KindList)
	}
	return nil
}

// Archive returns the archive a restore request is about.
func (r *Request) Archive() (archive.ID, error) { return archive.ParseID(r.BackupID) }

// Marshal returns the request as indented JSON with a final newline.
func (r *Request) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseRequest decodes and validates a request file. Unknown fields are
// ignored (a newer restore may add some); errors wrap ErrRequest.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) > maxRequestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrRequest, maxRequestSize)
	}
	var r Request
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrRequest, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Key is the short name of an archive (or of a vault and prefix, for
// listings) used in request file names and thaw's private directories:
// 24 hex digits of the SHA-256 of the backup ID. A backup ID can be
// 1,000 bytes long, far over a file name's 255.
func Key(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:12])
}

// listKey is the Key of a vault and prefix.
func listKey(vault, prefix string) string { return Key("list:" + vault + "/" + prefix) }

// Name returns the request's file name in thaw/:
// restore-KEY-REQUESTULID.json or list-KEY-REQUESTULID.json.
func (r *Request) Name() string {
	if r.Kind == KindList {
		return "list-" + listKey(r.Vault, r.Prefix) + "-" + r.ID + ".json"
	}
	return "restore-" + Key(r.BackupID) + "-" + r.ID + ".json"
}

// File publishes the request into sp's thaw/ queue (staging, fsync,
// rename: thaw never sees a partial request).
func File(sp *spool.Spool, r *Request) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	staging, err := sp.StagingDir(spool.QueueThaw)
	if err != nil {
		return err
	}
	return spool.PublishBytes(staging, sp.Dir(spool.QueueThaw, archive.ID{}), r.Name(), b)
}

// PendingRequest is a request file found in thaw/.
type PendingRequest struct {
	// Path is the request file.
	Path string
	*Request
}

// Requests returns the valid request files in sp's thaw/ queue, oldest
// first. Invalid files are returned in bad (their paths) for the caller
// to report or set aside.
func Requests(sp *spool.Spool) (reqs []PendingRequest, bad map[string]error, err error) {
	dir := sp.Dir(spool.QueueThaw, archive.ID{})
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("thaw: list requests: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		p := filepath.Join(dir, name)
		r, err := readRequest(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // consumed or withdrawn meanwhile
		}
		if err == nil && r.Name() != name {
			err = fmt.Errorf("%w: named %s, its content says %s", ErrRequest, name, r.Name())
		}
		if err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[p] = err
			continue
		}
		reqs = append(reqs, PendingRequest{Path: p, Request: r})
	}
	slices.SortFunc(reqs, func(a, b PendingRequest) int { return strings.Compare(a.ID, b.ID) })
	return reqs, bad, nil
}

func readRequest(p string) (*Request, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%w: %s is a symlink", ErrRequest, p)
		}
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrRequest, p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRequestSize+1))
	if err != nil {
		return nil, err
	}
	r, err := ParseRequest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return r, nil
}

// RestoreRequests returns the pending restore requests for archive id,
// oldest first.
func RestoreRequests(sp *spool.Spool, id archive.ID) ([]PendingRequest, error) {
	reqs, _, err := Requests(sp)
	if err != nil {
		return nil, err
	}
	var out []PendingRequest
	for _, r := range reqs {
		if r.Kind == KindRestore && r.BackupID == id.String() {
			out = append(out, r)
		}
	}
	return out, nil
}

// Withdraw removes every pending restore request for archive id and
// returns how many there were. A running thaw notices on its next scan,
// stops working on the archive and removes what it staged and published
// for it.
func Withdraw(sp *spool.Spool, id archive.ID) (int, error) {
	reqs, err := RestoreRequests(sp, id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range reqs {
		if err := os.Remove(r.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("thaw: withdraw %s: %w", r.Path, err)
		}
		n++
	}
	if n > 0 {
		_ = syncDir(sp.Dir(spool.QueueThaw, archive.ID{}))
	}
	return n, nil
}

// Running reports whether a cryophile-thaw holds sp's daemon lock. The
// test takes the lock and releases it at once when nobody holds it.
func Running(sp *spool.Spool) (bool, error) { return sp.DaemonRunning(DaemonName) }

// DaemonName is the name of thaw's per-spool lock (spool.LockDaemon).
const DaemonName = "thaw"
