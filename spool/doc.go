// Package spool is the queue protocol through which the four cryophile
// programs hand work to each other. They never talk directly: each one
// publishes files into a queue directory of one spool, and the next one
// consumes them. The protocol is stated here once; every program obeys it
// by going through this package.
//
// # Layout
//
//	ROOT/                                   0750 cryophile:cryophile
//	  .NAME.lock                            per-spool daemon locks (LockDaemon)
//	  NAME.status.json                      daemon status (freeze, thaw), replaced atomically
//	  backup/VAULT/PREFIX/ULID/             backup's staging directory
//	  backup/VAULT/PREFIX/ULID/.lock        flock held by the live writer
//	  backup/VAULT/PREFIX/ULID/.chunk.*.tmp the fragment being written
//	  freeze/VAULT/PREFIX/ULID/chunk.NNNNNN published fragments, consumed by freeze
//	  freeze/VAULT/PREFIX/ULID/manifest.json published last: archive complete
//	  QUEUE/.staging/                       other producers' staging (StagingDir)
//	  thaw/REQUEST.json                     restore requests, consumed by thaw
//	  restore/VAULT/PREFIX/ULID/manifest.json published first by thaw
//	  restore/VAULT/PREFIX/ULID/chunk.NNNNNN published as each is verified
//	  restore/VAULT/PREFIX/ULID/status.json thaw's progress and errors
//
// Directories are created 0750 and files 0640 (before the umask): the
// cryophile group runs backup and restore. Names starting with a dot are
// private to their writer (staging files, locks) and never reported to
// consumers.
//
// # Hand-off rules
//
//  1. A producer never writes a file where a consumer looks. It writes in a
//     staging place on the same filesystem (O_CREAT|O_EXCL|O_NOFOLLOW),
//     fsyncs the file, publishes it with one renameat2(RENAME_NOREPLACE)
//     (or link(2) where the filesystem lacks it) into the queue, then fsyncs
//     the queue directory. Publication never replaces an existing name. A
//     consumer never sees a partial file. See Stage, PublishFile,
//     PublishBytes.
//  2. The ULID directory is created exclusively (no -p on the last
//     component): an existing backup ID is never overwritten (ErrExist).
//  3. The manifest is published after every fragment it lists. It is the
//     only completion marker.
//  4. Consumers watch with fsnotify (create and rename events) but never rely
//     on events alone: they watch first, then scan, and rescan periodically,
//     at start-up and on event-queue overflow, so nothing published while a
//     daemon was down, or before its watch, is missed. Duplicate events are
//     harmless. See Watch and Archives.
//  5. Nothing is deleted before its next home is verified: freeze deletes a
//     local fragment only after the vault confirmed it with a matching
//     checksum; restore deletes a restored fragment (RestoreSource.Done)
//     only after its SHA-256 matched the manifest and its bytes went through
//     the decryptor.
//  6. Two instances of the same daemon on one spool must not corrupt
//     anything: they take LockDaemon (flock, never fcntl locks), and a
//     crashed instance's leftovers are picked up on the next start
//     (CleanupDeadWriters, rescans).
//  7. Back-pressure: backup waits, with a message, instead of failing when
//     the spool holds more than its budget or the filesystem's free space
//     falls below a reserve (Budget); thaw stops downloading ahead when
//     restore/ holds more than its budget (Usage). A 10 TB stream passes
//     through a 20 GB spool.
//
// # Who writes, reads and deletes what
//
//   - cryophile-backup (Outbox) creates and deletes backup/…/ULID, publishes
//     fragments then the manifest into freeze/…/ULID, and on failure takes
//     back what it published (Outbox.Abort).
//   - cryophile-freeze reads freeze/, deletes each fragment once the vault
//     verified it, and the manifest and directory last (RemoveArchive).
//   - cryophile-restore publishes requests into thaw/, reads restore/…/ULID
//     (WaitManifest, RestoreSource), deletes each fragment it consumed and
//     finally the directory (RemoveRestored).
//   - cryophile-thaw consumes thaw/ and publishes into restore/, staging in
//     restore/.staging (StagingDir); restore stages its requests in
//     thaw/.staging. Staging files a crash left there are removed by
//     CleanupStaging.
//
// # Symlinks
//
// Nothing below the root is followed: files are opened with O_NOFOLLOW,
// directories are checked with lstat (or opened O_NOFOLLOW|O_DIRECTORY)
// before use, and listings skip or flag what is not a regular file. A
// symlink planted in the spool gives an error wrapping ErrSpool or
// ErrNotRegular. Checks of intermediate directories are lstat-based, not
// openat walks: the spool is writable by its owner and group only, who are
// trusted not to race renames against the programs.
//
// # Locks and crash clean-up
//
// A backup creates its staging directory exclusively, then a flock on
// .lock inside it, then its freeze/ directory exclusively; it holds the
// lock until Close or Abort, which remove the staging directory before
// releasing it. A staging directory whose lock nobody holds therefore
// belongs to a dead writer: CleanupDeadWriters takes the lock, removes the
// freeze/ counterpart unless it has a manifest, then the staging directory.
// Lock re-checks after flock that the lock file is still the one at its
// path, so a lock file removed by its previous holder excludes nobody by
// mistake. Empty VAULT/PREFIX directories are pruned with rmdir(2), which
// cannot remove anything a concurrent writer put there; a writer whose
// parent vanished under it recreates it.
package spool
