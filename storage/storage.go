// Package storage defines the vault: where freeze puts archives and thaw
// gets them back. One small interface, Store, is implemented by one package
// per backend (storage/s3, storage/file); storage/storagetest is the one
// conformance suite every backend passes.
//
// Object keys are slash-separated paths relative to the vault's root (the
// vault URL's key prefix is the backend's business):
// PREFIX/ULID/chunk.NNNNNN and PREFIX/ULID/manifest.json.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors callers branch on. Backends wrap them so errors.Is works.
var (
	// ErrNotExist: the object does not exist.
	ErrNotExist = errors.New("object does not exist")
	// ErrArchived: the object is in an archive class (GLACIER,
	// DEEP_ARCHIVE) and must be restored before it can be read.
	ErrArchived = errors.New("object is archived; restore it first")
	// ErrRestoreInProgress: a restore of the object is already running.
	ErrRestoreInProgress = errors.New("restore already in progress")
	// ErrExist: a conditional put found the object already there.
	ErrExist = errors.New("object already exists")
	// ErrChecksum: the bytes a put read did not match PutOptions.SHA256;
	// nothing was stored under the key.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrPermanent: the request can never succeed as configured (access
	// denied, no such bucket, invalid storage class); retrying is useless
	// and the message says what to fix.
	ErrPermanent = errors.New("permanent vault error")
)

// Storage classes.
const (
	ClassStandard    = "STANDARD"
	ClassStandardIA  = "STANDARD_IA"
	ClassGlacierIR   = "GLACIER_IR"
	ClassGlacier     = "GLACIER"
	ClassDeepArchive = "DEEP_ARCHIVE"
)

// NeedsRestore reports whether objects of class must be restored before
// they can be read.
func NeedsRestore(class string) bool {
	return class == ClassGlacier || class == ClassDeepArchive
}

// Restore tiers.
const (
	TierBulk      = "Bulk"
	TierStandard  = "Standard"
	TierExpedited = "Expedited"
)

// PutOptions say how an object is stored.
type PutOptions struct {
	// Class is the storage class; empty means ClassStandard.
	Class string
	// SHA256 is the object's expected digest (32 bytes). The backend has the
	// service verify it and fails if what was stored differs.
	SHA256 []byte
	// IfNoneMatch makes the put fail with ErrExist when the key exists
	// (where the service supports conditional writes).
	IfNoneMatch bool
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key   string
	Size  int64
	Class string
	// SHA256 is the full-object digest when the backend knows one
	// (empty otherwise, e.g. composite multipart checksums).
	SHA256 []byte
	// Restore is the restore status of an archived object.
	Restore RestoreStatus
	// Modified is the object's last-modified time.
	Modified time.Time
}

// RestoreStatus is the state of an archived object's temporary copy.
type RestoreStatus struct {
	// Ongoing: a restore was requested and has not completed.
	Ongoing bool
	// Expiry: when the restored copy goes away; zero if not restored.
	Expiry time.Time
}

// Readable reports whether the object can be read now.
func (o ObjectInfo) Readable() bool {
	return !NeedsRestore(o.Class) || (!o.Restore.Ongoing && !o.Restore.Expiry.IsZero())
}

// Store is one vault.
type Store interface {
	// Put stores the size bytes of r under key. r is read once, from its
	// current position; an io.ReadSeeker may be rewound for retries.
	// The object appears under key whole or not at all. A digest that does
	// not match opts.SHA256 wraps ErrChecksum; opts.IfNoneMatch on an
	// existing key wraps ErrExist; in both cases nothing is stored.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error
	// Head describes key; a missing key wraps ErrNotExist.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Get returns length bytes of key from offset (length < 0: to the end).
	// A length past the end stops at the end; length 0 gives no bytes; an
	// offset past the end, or negative, is an error. A missing key wraps
	// ErrNotExist; an unrestored archived object wraps ErrArchived.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order, until fn returns an error (returned as is).
	// Each ObjectInfo has Key, Size, Class and Modified; SHA256 and
	// Restore only where the backend's listing gives them (S3's does not:
	// Head the key for those).
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Restore asks for a temporary readable copy of an archived key for
	// days days at tier. A restore already running wraps
	// ErrRestoreInProgress; a key of a class that needs no restore returns
	// nil; asking again once restored extends the copy's life. Expedited is
	// refused for DEEP_ARCHIVE, as AWS refuses it.
	Restore(ctx context.Context, key string, days int, tier string) error
	// Delete removes key; a missing key is not an error. Used to clean up
	// incomplete uploads, never by the normal freeze/thaw path.
	Delete(ctx context.Context, key string) error
}
