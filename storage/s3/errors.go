package s3

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cryophile/cryophile/storage"
)

// Operation names in error messages.
const (
	opPut     = "put"
	opHead    = "head"
	opGet     = "get"
	opList    = "list"
	opRestore = "restore"
	opDelete  = "delete"
	opAbort   = "abort uploads"
)

// wrapErr turns an error from the SDK for operation op on key full (an S3
// key, or a prefix for list) into the error Store returns: "s3: OP URL: …",
// wrapping the storage sentinel the service's answer means, if any, and
// err itself.
func (s *Store) wrapErr(op, full string, err error) error {
	if err == nil {
		return nil
	}
	code, status := errorCode(err)
	sentinel, hint := classify(op, code, status, s.bucket)
	if sentinel == nil {
		return fmt.Errorf("s3: %s %s: %w", op, s.url(full), err)
	}
	if hint == "" {
		return fmt.Errorf("s3: %s %s: %w: %w", op, s.url(full), sentinel, err)
	}
	return fmt.Errorf("s3: %s %s: %w: %s: %w", op, s.url(full), sentinel, hint, err)
}

// errorCode returns the S3 error code and HTTP status of err, "" and 0 if
// it has none.
func errorCode(err error) (code string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}

// codeless marks hints given for an answer that carried no error code.
const codeless = "no error code"

// classify says which storage sentinel an S3 error code (and HTTP status)
// means for operation op, and for configuration errors what to fix.
func classify(op, code string, status int, bucket string) (sentinel error, hint string) {
	switch code {
	case "NoSuchKey":
		return storage.ErrNotExist, ""
	case "NotFound": // HEAD has no body, so no better code
		if status == http.StatusNotFound {
			return storage.ErrNotExist, ""
		}
	case "InvalidObjectState":
		return storage.ErrArchived, ""
	case "RestoreAlreadyInProgress":
		return storage.ErrRestoreInProgress, ""
	case "PreconditionFailed":
		if op == opPut {
			return storage.ErrExist, ""
		}
	case "BadDigest", "XAmzContentSHA256Mismatch":
		if op == opPut {
			return storage.ErrChecksum, "the service received bytes that differ from the given SHA-256"
		}
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return storage.ErrPermanent, fmt.Sprintf("access to bucket %s denied: check the credentials and the bucket's policy", bucket)
	case "Forbidden": // HEAD has no body to say why
		if status == http.StatusForbidden {
			return storage.ErrPermanent, fmt.Sprintf("access to bucket %s denied (HEAD gives no reason): check the credentials and the bucket's policy", bucket)
		}
	case "InvalidAccessKeyId":
		return storage.ErrPermanent, "the service does not know the access key ID: fix the credentials (AWS_ACCESS_KEY_ID, the profile, or the role)"
	case "SignatureDoesNotMatch":
		return storage.ErrPermanent, "the request signature does not match: fix the secret access key"
	case "NoSuchBucket":
		return storage.ErrPermanent, fmt.Sprintf("bucket %s does not exist: create it or fix the vault url", bucket)
	case "InvalidBucketName":
		return storage.ErrPermanent, fmt.Sprintf("%q is not a valid bucket name: fix the vault url", bucket)
	case "InvalidStorageClass":
		return storage.ErrPermanent, "the service does not accept this storage class: fix the vault's storage_class"
	case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException":
		return storage.ErrPermanent, fmt.Sprintf("bucket %s is in another region: fix the vault's region (or endpoint)", bucket)
	case "NotImplemented":
		return storage.ErrPermanent, fmt.Sprintf("the service does not implement %s", op)
	case "InvalidArgument", "InvalidRequest":
		return storage.ErrPermanent, "the service refused the request"
	}
	switch status {
	case http.StatusForbidden:
		// A 403 whose body was lost (the service may close the
		// connection while the request body is still being sent, and
		// the error document is cut). Not for GET, where a 403 may be
		// InvalidObjectState (an archived object), nor restore.
		if op == opPut || op == opList || op == opDelete {
			return storage.ErrPermanent, fmt.Sprintf("access to bucket %s denied (%s), and the service's reason was lost: check the credentials and the bucket's policy", bucket, codeless)
		}
	case http.StatusPreconditionFailed:
		if op == opPut {
			return storage.ErrExist, ""
		}
	case http.StatusNotFound:
		if op == opHead || op == opGet || op == opRestore {
			return storage.ErrNotExist, ""
		}
	}
	return nil, ""
}
