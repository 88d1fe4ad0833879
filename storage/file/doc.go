// Package file is the file:///PATH vault: a local, NFS or USB directory
// that behaves like a Glacier-class S3 bucket, so the whole pipeline runs
// with no S3 at all.
//
// # Layout
//
// Objects are plain files at the same slash paths as their S3 keys, so a
// vault can be read with standard tools (cat ROOT/PREFIX/ULID/chunk.* |
// gpg --decrypt). Everything else lives in one hidden directory that no key
// may start with:
//
//	ROOT/PREFIX/ULID/chunk.000001           object bytes
//	ROOT/PREFIX/ULID/manifest.json
//	ROOT/.cryophile/meta/PREFIX/ULID/chunk.000001   sidecar JSON: class,
//	                                        size, SHA-256, restore state
//	ROOT/.cryophile/tmp/                    uploads in progress
//	ROOT/.cryophile/lock                    flock serialising commits
//
// Sidecar files, rather than extended attributes, because NFS v3 and FAT
// USB sticks have no xattrs. The meta tree mirrors the object tree name for
// name, so it can only clash where the object tree would.
//
// # Crash safety
//
// Put streams into a temporary file under ROOT/.cryophile/tmp (same file
// system, so the commit is a rename), fsyncs it, checks its SHA-256, then,
// holding ROOT/.cryophile/lock (flock, so several processes may share a
// vault), writes the sidecar and then renames (or, for IfNoneMatch, links)
// the object into place and fsyncs the directories. The object's rename is
// the commit point: a crash before it leaves at most an orphan sidecar,
// which is invisible because objects are found by their data files. A
// sidecar whose recorded size differs from its object's (a crash in the
// middle of overwriting an existing key with different bytes) is ignored,
// and the object is reported as STANDARD with no SHA-256, as is an object
// with no sidecar at all (files copied in by hand).
//
// Temporary files left by a crashed process are removed by New once they
// are an hour old and no live process holds their lock.
//
// # Archive emulation
//
// Objects stored as GLACIER or DEEP_ARCHIVE refuse Get with
// storage.ErrArchived until a restore requested with Restore has
// completed, Options.RestoreDelay after the request (the same delay for
// every tier). The restored copy stays readable for the requested number
// of days, each Options.DayLength long; requesting again while it is
// readable extends it, as AWS does. Restore state lives in the sidecar, so
// freeze and thaw, separate processes, see the same state.
package file
