// Package glacier is a test-only reverse proxy that adds Amazon S3's
// archive-class behaviour to an S3-compatible server that lacks it.
//
// None of the S3 servers we can run locally emulates Glacier: versitygw
// accepts any x-amz-storage-class but reports STANDARD, never refuses a GET,
// and answers RestoreObject with 501 NotImplemented. The Proxy sits in front
// of such a server (path-style requests only), forwards every request
// unchanged — the Host header included, so SigV4 signatures still verify
// upstream — and layers on what AWS documents:
//
//   - Storage classes are remembered from PutObject, CopyObject and
//     CreateMultipartUpload (applied at CompleteMultipartUpload) and reported
//     in the x-amz-storage-class header of HeadObject and GetObject (absent
//     for STANDARD, as AWS does) and in the <StorageClass> elements of
//     ListObjects, ListObjectsV2, ListObjectVersions and ListMultipartUploads.
//     An unknown class is refused with 400 InvalidStorageClass.
//   - Objects in GLACIER (Flexible Retrieval) and DEEP_ARCHIVE are not
//     readable until restored: GetObject and CopyObject/UploadPartCopy with
//     such a source answer 403 InvalidObjectState.
//   - POST /bucket/key?restore (RestoreObject) answers 202 Accepted when it
//     starts a restore, 409 RestoreAlreadyInProgress while one is running
//     (202 when the new request asks for a faster tier, which upgrades it),
//     200 OK when a restored copy exists (its expiry is reset to Days from
//     now), 403 InvalidObjectState for classes that need no restore, 400
//     InvalidArgument for Expedited on DEEP_ARCHIVE, 404 NoSuchKey for keys
//     the proxy has not seen written.
//   - HeadObject and GetObject carry x-amz-restore: ongoing-request="true"
//     while a restore runs, then ongoing-request="false",
//     expiry-date="<RFC 1123 date>" until the restored copy expires, after
//     which the object is archived again and the header disappears.
//
// AWS documentation this follows:
//   - RestoreObject API: https://docs.aws.amazon.com/AmazonS3/latest/API/API_RestoreObject.html
//   - Restoring an archived object, retrieval tiers, upgrading the speed of
//     an in-progress restore, expiry rounding:
//     https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects.html and
//     https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects-retrieval-options.html
//   - x-amz-restore in HeadObject: https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
//   - InvalidObjectState from GetObject: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
//     and the error code list: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
//
// Restores take a per-tier delay scaled down for tests (Expedited 1 s,
// Standard 3 s, Bulk 5 s by default) and a restored copy lives Days × Options.Day.
// Time comes from Options.Now, so tests can drive it with a fake clock. State
// lives in memory: the proxy knows only objects written through it; others
// are passed through as the upstream reports them.
//
// Options.Fault (or SetFault) injects failures — 503 SlowDown, 500
// InternalError, dropped connections, latency — into matching requests, for
// reliability tests; Schedule builds such a hook from a list.
package glacier
