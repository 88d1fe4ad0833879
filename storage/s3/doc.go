// Package s3 is the s3://BUCKET[/KEYPREFIX] vault: Amazon S3 and its
// archive classes (GLACIER, DEEP_ARCHIVE), or any S3-compatible service
// reached through a custom endpoint, behind the storage.Store interface.
//
// # Uploads
//
// Objects up to Options.MultipartThreshold go up in one PutObject; larger
// ones as a multipart upload whose part size keeps the part count within
// S3's 10,000. Every upload carries SHA-256 checksums so that the service
// verifies what it stores: the whole object's (x-amz-checksum-sha256) for a
// single PUT, each part's for a multipart upload. The same digests are the
// SigV4 payload hashes, so the SDK never hashes a body a second time.
//
// A single PUT given PutOptions.SHA256 sends it as the expected digest and
// the service refuses bytes that differ (storage.ErrChecksum). A multipart
// upload cannot have its whole-object SHA-256 checked by S3 (multipart
// SHA-256 checksums are composite: a digest of the part digests), so the
// store hashes the source in order while the parts go up and completes the
// upload only if the digest matches; otherwise it aborts it and nothing is
// stored.
//
// Sources that are io.ReaderAt and io.Seeker (an *os.File, as freeze gives)
// are streamed: each part is an io.SectionReader over the file, re-read on
// a retry, and no part is held in memory. Any other io.Reader is buffered:
// the whole object for a single PUT (so at most MultipartThreshold bytes),
// one part per concurrent part upload above it. Sources must not change
// while they are uploaded (spool files never do).
//
// A multipart upload that fails is aborted. One interrupted by a crash is
// left behind on the service. The next Put of the same key and class
// resumes it: it lists the parts already up and sends only those whose
// SHA-256 differs from the source's. One never resumed is billed by S3 at
// the STANDARD rate until it is aborted: AbortIncompleteUploads, called by
// the freeze daemon at start-up, aborts those older than a given age.
//
// # Reliability
//
// Retries are the SDK's standard retryer with more attempts and a capped
// backoff, and without its client-side retry token bucket (see New). The
// HTTP transport has a response-header timeout, and every request body and
// response body is watched for stalls (Options.StallTimeout): a black-holed
// connection otherwise hangs for ever. A GetObject body cut mid-stream is
// not retried by the SDK; the reader Get returns re-requests the rest of
// the range (pinned to the object's ETag) a few times before it gives up.
//
// # Errors
//
// Service errors are mapped to the storage sentinels: NoSuchKey to
// storage.ErrNotExist, InvalidObjectState on GET to storage.ErrArchived,
// RestoreAlreadyInProgress to storage.ErrRestoreInProgress, a failed
// If-None-Match precondition to storage.ErrExist, BadDigest to
// storage.ErrChecksum, and configuration errors (access denied, unknown
// access key, bad signature, no such bucket, invalid storage class, wrong
// region) to storage.ErrPermanent with a message that says what to fix.
// Every error names the operation and the s3:// URL of the object.
package s3
