// Package freeze is the engine of cryophile-freeze: it moves the archives
// that cryophile-backup publishes into the spool's freeze/ queue to their
// vaults, one fragment at a time, as soon as each is published, and never
// deletes a local copy before the vault has confirmed it (hand-off rule 5 of
// package spool).
//
// # Per fragment
//
// For freeze/VAULT/PREFIX/ULID/chunk.N, in this order:
//
//  1. If a receipt for chunk.N exists, the object is already verified in
//     the vault: go to step 6.
//  2. Hash the local file (SHA-256, streamed). If the manifest is already
//     there, the digest and size must be the ones it lists.
//  3. Put it to key PREFIX/ULID/chunk.N with the vault's storage class, the
//     SHA-256 (the service verifies what it stores) and If-None-Match. The
//     file is streamed; nothing holds a whole fragment in memory.
//  4. If the key exists already (a crash between the upload and the
//     receipt), Head it: the same size (and SHA-256, where the backend
//     reports one) counts as uploaded; anything else is a conflict
//     (ErrConflict) that stops the archive. Freeze never overwrites or
//     deletes an object in a vault.
//  5. Verify with Head: same size, same SHA-256 where reported.
//  6. Publish the receipt (below), fsynced, with spool.PublishBytes.
//  7. Unlink the local fragment and fsync its directory.
//
// A crash between any two steps is recovered by doing the fragment again
// from step 1: every step is idempotent, and If-None-Match turns a
// repeated upload into a Head.
//
// # Receipts
//
// A receipt is the durable record that one fragment is verified in the
// vault. It lives in the archive's own directory, in a dot-directory that
// every consumer of the spool ignores:
//
//	freeze/VAULT/PREFIX/ULID/.receipts/chunk.NNNNNN.json
//
// holding {"key", "size", "sha256", "class", "uploaded"}. Receipts are
// staged in freeze/.staging and published with one rename, so a receipt is
// whole or absent; one is only written after the object's verification
// and before the fragment is unlinked. Keeping them in the archive
// directory means they go with it: spool.RemoveArchive removes them once
// the manifest is in the vault, and a quarantined archive keeps them.
//
// # Per archive
//
// Once manifest.json is published and every fragment it lists has a
// receipt whose size and SHA-256 match the manifest, the manifest is put
// with the vault's manifest class (STANDARD by default) and If-None-Match,
// verified with Head, and the archive directory is removed with its
// receipts. A manifest that cannot be parsed, is for another backup ID, or
// lists a fragment that is neither in the spool nor receipted (or whose
// receipt does not match) makes the archive broken (ErrBroken): its
// directory is moved, whole, to
//
//	freeze/.quarantine/VAULT/PREFIX/ULID
//
// (a dot-directory, invisible to every consumer) and freeze goes on with
// the others. Nothing in it is deleted.
//
// An archive directory without manifest whose writer is alive
// (spool.LiveWriter) is uploaded fragment by fragment while backup writes
// the next ones. Without a manifest and without a live writer the archive
// can never complete: its fragments are not uploaded (they are a dead
// writer's, for spool.CleanupDeadWriters), and a directory that holds
// nothing but receipts (what Outbox.Abort leaves when freeze had already
// uploaded some fragments) is removed.
//
// # Errors
//
// Vault errors wrapping storage.ErrPermanent (access denied, no such
// bucket, invalid storage class) stop that vault's work until the next
// rescan, with an error that says what to fix; other vaults go on. Every
// other error (network, 5xx, throttling, a full local disk) is retried
// with exponential backoff and jitter: for ever by Run, a few times by
// Once, after which the fragment counts as failed (ErrUnavailable for the
// vault's errors). An archive directory in freeze/ for a vault that is not
// configured is logged (ErrUnknownVault) and left alone.
//
// # Incomplete uploads
//
// A multipart upload cut short by a crash, or whose creation request was
// cancelled before its ID came back, stays on the service (billed) until
// it is aborted. Freeze assumes one freeze per vault (key prefix): for a
// store that implements IncompleteUploadAborter, it aborts every
// incomplete upload in a vault before its first upload there, and again
// ("sweeps") whenever the vault has no upload in flight: at each rescan,
// at the end of Once and when Run stops.
//
// # Status file
//
// Run and Once keep SPOOL/freeze.status.json (StatusPath), format
// "cryophile-daemon-status/1" (package internal/daemon): program, pid,
// version, start and update times, ready, stopped, the queue (a Status)
// and the last 20 errors with their archive, key and fragment. It is
// replaced atomically (temporary file in the spool's root, fsync, rename
// over the old one, fsync of the root) at most once per
// Options.StatusInterval when something changed, at least once a minute
// otherwise, and a last time, with "stopped": true, when they return.
// Options.MetricsFile adds a Prometheus textfile with the same figures.
// Errors are recorded where they are logged.
//
// # Concurrency and locking
//
// Run and Once take the spool's "freeze" daemon lock (spool.LockDaemon):
// a second instance fails with an error wrapping spool.ErrLocked. At most
// Options.Concurrency uploads (fragments and manifests) run at once.
// Cancelling the context abandons the uploads in flight: the storage layer
// aborts an interrupted multipart upload, no receipt is written and
// nothing is deleted, so the next start picks the fragments up again.
package freeze
