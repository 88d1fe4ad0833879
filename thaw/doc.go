// Package thaw is the engine of cryophile-thaw, which brings archives
// back from a vault into the spool's restore/ queue, and the request
// protocol through which cryophile-restore asks for them. cmd/thaw only
// wires it; cmd/restore uses the request, status and listing functions.
//
// # Requests (thaw/)
//
// A request is a JSON file (Request, format "cryophile-request/1")
// published into thaw/ with staging → fsync → rename (File):
//
//	thaw/restore-KEY-REQID.json   {"kind":"restore","backup_id":…,"tier":"Bulk","days":7,
//	                               "requested_by":"alice","requested_at":…}
//	thaw/list-LKEY-REQID.json     {"kind":"list","vault":…,"prefix":…}
//
// KEY is Key(backup ID) (24 hex digits of its SHA-256: a backup ID may be
// longer than a file name), REQID the request's own ULID. The file's
// presence is the request: thaw removes it when the request is done
// (complete or permanently failed) and the answer is in status.json.
// Ctrl-C in restore leaves it in place and thaw keeps working; a later
// restore finds it and waits again. Withdraw removes it (restore
// --cancel): on its next scan (every second) thaw stops the work, removes
// its partial downloads and the archive's restore/ directory. Withdrawal
// while thaw is not running leaves partial downloads that thaw removes
// when it starts. Invalid request files are moved to thaw/.rejected/.
//
// Several restore requests for one archive: the newest wins and the
// older files are removed. restore files a new one when an earlier
// request already published fragments that an interrupted restore has
// since consumed: a restore always reads from the first fragment, so
// those must come again. For the same reason a restore that finds its
// request done (status.json complete, or the file gone) while the
// manifest is not in restore/ files a new one: thaw removes a request up to a poll
// interval after its last fragment, so the request a restore finds may be
// the one an earlier restore of the archive has just consumed. A restore
// waiting for fragments whose request vanished unfinished (withdrawn)
// stops with an error naming it.
//
// # Listings
//
// --latest and --before need the vault's list of archives, which only
// thaw can read (restore has no vault access). restore files a list
// request; thaw lists the vault (List) and publishes the answer
// atomically as restore/.listings/LKEY.json (Listing; replaced by each
// newer answer) and then removes the request. restore waits for its
// request file to disappear and reads the listing.
//
// # What thaw publishes (restore/VAULT/PREFIX/ULID/)
//
// For each restore request thaw reads the manifest from the vault (kept in
// a class that needs no restore), and publishes it first. It then heads
// every fragment: readable now (STANDARD, STANDARD_IA, GLACIER_IR, or
// restored with enough life left) → download; archived → RestoreObject
// with the request's tier and days, at most RestoreRate (1,000) per
// second; a restore already running is fine. Expedited is refused for
// DEEP_ARCHIVE by AWS: thaw uses Standard and says so in status.json
// (tier_note) and the log. A restored copy that expires before the
// download can be expected to finish (less than Lukewarm, default 1 h,
// plus the fragment's size at 10 MB/s) is restored again first, once
// ("lukewarm"). Unreadable fragments are headed again with exponential
// backoff and ±20% jitter between PollMin and PollMax
// (thaw.poll_interval).
//
// Downloads start in fragment order, Concurrency at a time (over all
// archives), into restore/.thaw/KEY/chunk.N.part. The partial file is
// kept across crashes and restarts, and the download resumes with a byte
// range from its size; the whole file is then verified against the
// manifest's SHA-256 (a bad resume costs one re-download). A mismatch is
// downloaded again, up to VerifyAttempts (3) times in all; the last bad
// copy is moved to ROOT/.quarantine/thaw/VAULT/PREFIX/ULID/ (never
// deleted) and the request fails permanently with status.json naming the
// fragment. A verified file is renamed to chunk.N.ready and published
// with renameat2(RENAME_NOREPLACE) and an fsync of the directory.
//
// Never twice per request: before publishing, thaw creates (and syncs)
// a marker restore/.thaw/KEY/req-REQID/chunk.N. After a crash, marker and
// .ready both present means "not yet published", the marker alone means
// "published" — whether or not restore has consumed and deleted it since —
// so nothing is published twice and no partial file is ever visible.
// (On a file system without renameat2 flags publication falls back to
// link+unlink, and a crash between the two could publish once more.)
//
// Back-pressure: a download starts only while restore/ (its fragments,
// partial downloads, manifests) plus the downloads in flight stay within
// RestoreMaxBytes (budget.restore_max_bytes; 0 means 4 fragments of the
// archive), and while the spool's file system keeps Reserve
// (budget.reserve) free. Two exceptions keep it from deadlocking: the fragment restore
// is waiting for (everything before it consumed) always goes, and so
// does a download when nothing at all waits in restore/ (a fragment larger
// than the budget).
//
// status.json (Status, "cryophile-status/1") is replaced atomically on
// every change: fragment counts per state (published, downloading,
// ready, restoring, pending, quarantined), tier and tier note, class,
// typical wait, the estimate (requests, bytes, wait, cost from the
// config's price table) made before the first restore request, bytes
// downloaded, recent errors with the fragment they are about, complete,
// and a permanent failure with a code: not_found (no such archive),
// incomplete (fragments but no manifest), corrupt (quarantined fragment,
// or a fragment the manifest lists that the vault lacks), unavailable
// (unknown vault, access denied, no bucket, or with --once transient
// errors that did not go away: GiveUpAfter, 8 in a row). The daemon
// retries transient vault errors forever with backoff and only reports
// them. Once the manifest is
// published thaw never recreates the directory for a status update, so a
// directory restore removed when it finished stays removed.
//
// # Daemon status file
//
// Besides each archive's status.json, Run and Once keep one status file
// for the daemon, SPOOL/thaw.status.json (DaemonStatusPath), format
// "cryophile-daemon-status/1" (package internal/daemon): program, pid,
// version, start and update times, ready, stopped, the queue (a Queue:
// requests in progress, their fragments per state) and the last 20 errors
// of all requests with their archive and fragment. It is replaced
// atomically (temporary file in the spool's root, fsync, rename over the
// old one) at most once per Options.StatusInterval when something
// changed, at least once a minute otherwise, and a last time, with
// "stopped": true, when they return. Options.MetricsFile adds a Prometheus
// textfile with the same figures.
//
// # Guarantee to restore
//
// Every fragment in restore/ matched the manifest's SHA-256. With a
// corrupt fragment in the vault, thaw publishes the fragments before it
// and never that one; restore stops at the end of the last good fragment
// with exit status 65. What it wrote to stdout up to there went through
// the decryptor but, for SEIPDv1, is not authenticated (the MDC comes at
// the end of the message); with --output the partial file is removed.
package thaw
