package s3

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/cryophile/cryophile/storage"
)

// Head implements storage.Store. ObjectInfo.SHA256 is set for objects
// stored with a full-object SHA-256 checksum (single PUTs); multipart
// uploads have a composite one, a digest of the parts' digests, and leave
// it empty.
func (s *Store) Head(ctx context.Context, key string) (storage.ObjectInfo, error) {
	full, err := s.objectKey(opHead, key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return s.head(ctx, full)
}

// head is Head of an S3 key.
func (s *Store) head(ctx context.Context, full string) (storage.ObjectInfo, error) {
	ctx, cancel := s.metaCtx(ctx)
	defer cancel()
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(full),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		err = s.wrapErr(opHead, full, err)
		if errors.Is(err, storage.ErrNotExist) {
			err = s.checkBucket(ctx, opHead, full, err)
		}
		return storage.ObjectInfo{}, err
	}
	info := storage.ObjectInfo{
		Key:      strings.TrimPrefix(full, s.prefix),
		Size:     aws.ToInt64(out.ContentLength),
		Class:    className(out.StorageClass),
		SHA256:   fullObjectSHA256(aws.ToString(out.ChecksumSHA256), out.ChecksumType),
		Modified: aws.ToTime(out.LastModified),
	}
	if out.Restore != nil {
		rs, err := parseRestore(*out.Restore)
		if err != nil {
			return storage.ObjectInfo{}, fmt.Errorf("s3: head %s: %w", s.url(full), err)
		}
		info.Restore = rs
	}
	return info, nil
}

// checkBucket returns notExist, the error of a HEAD answered 404, unless
// the bucket itself is missing: a HEAD answer has no body to tell a missing
// key from a missing bucket, and taking one for the other would make thaw
// report lost fragments when the vault URL is wrong.
func (s *Store) checkBucket(ctx context.Context, op, full string, notExist error) error {
	_, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if code, status := errorCode(err); code == "NotFound" || code == "NoSuchBucket" || status == http.StatusNotFound {
		return s.wrapErr(op, full, &smithy.GenericAPIError{Code: "NoSuchBucket", Message: "HEAD bucket: 404"})
	}
	return notExist
}

// className maps S3's storage class to ours: S3 leaves the header out for
// STANDARD.
func className[T ~string](c T) string {
	if c == "" {
		return storage.ClassStandard
	}
	return string(c)
}

// fullObjectSHA256 decodes an x-amz-checksum-sha256 value if it is a digest
// of the whole object, not a composite multipart one ("…-N").
func fullObjectSHA256(v string, typ types.ChecksumType) []byte {
	if v == "" || typ == types.ChecksumTypeComposite || strings.Contains(v, "-") {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != sha256.Size {
		return nil
	}
	return b
}

// parseRestore parses an x-amz-restore header:
//
//	ongoing-request="true"
//	ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"
func parseRestore(h string) (storage.RestoreStatus, error) {
	var rs storage.RestoreStatus
	bad := func(why string) (storage.RestoreStatus, error) {
		return storage.RestoreStatus{}, fmt.Errorf("bad x-amz-restore header %q: %s", h, why)
	}
	seen := false
	rest := h
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		name, after, ok := strings.Cut(rest, "=")
		if !ok || !strings.HasPrefix(after, `"`) {
			return bad("want name=\"value\"")
		}
		value, after, ok := strings.Cut(after[1:], `"`)
		if !ok {
			return bad("unterminated quote")
		}
		rest = after
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "ongoing-request":
			switch value {
			case "true":
				rs.Ongoing = true
			case "false":
				rs.Ongoing = false
			default:
				return bad("ongoing-request is neither true nor false")
			}
			seen = true
		case "expiry-date":
			t, err := http.ParseTime(value)
			if err != nil {
				return bad("expiry-date: " + err.Error())
			}
			rs.Expiry = t
		}
		// Other fields (restore-request-date, …) are of no use here.
	}
	if !seen {
		return bad("no ongoing-request")
	}
	return rs, nil
}

// List implements storage.Store, with ListObjectsV2 (which gives no
// digests or restore status).
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	full := s.prefix + prefix
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(full),
	})
	for p.HasMorePages() {
		mctx, cancel := s.metaCtx(ctx)
		page, err := p.NextPage(mctx)
		cancel()
		if err != nil {
			return s.wrapErr(opList, full, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			rel, ok := strings.CutPrefix(key, s.prefix)
			if !ok || rel == "" {
				continue // not one of ours (cannot happen with Prefix set)
			}
			info := storage.ObjectInfo{
				Key:      rel,
				Size:     aws.ToInt64(o.Size),
				Class:    className(o.StorageClass),
				Modified: aws.ToTime(o.LastModified),
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Restore implements storage.Store with RestoreObject.
func (s *Store) Restore(ctx context.Context, key string, days int, tier string) error {
	full, err := s.objectKey(opRestore, key)
	if err != nil {
		return err
	}
	switch tier {
	case storage.TierBulk, storage.TierStandard, storage.TierExpedited:
	default:
		return fmt.Errorf("s3: restore %s: %w: unknown tier %q (want Bulk, Standard or Expedited)", s.url(full), storage.ErrPermanent, tier)
	}
	if days < 1 {
		return fmt.Errorf("s3: restore %s: %w: %d days (want at least 1)", s.url(full), storage.ErrPermanent, days)
	}
	ctx, cancel := s.metaCtx(ctx)
	defer cancel()
	_, err = s.client.RestoreObject(ctx, &awss3.RestoreObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(full),
		RestoreRequest: &types.RestoreRequest{
			Days:                 aws.Int32(int32(days)),
			GlacierJobParameters: &types.GlacierJobParameters{Tier: types.Tier(tier)},
		},
	})
	if code, _ := errorCode(err); code == "InvalidObjectState" {
		// S3's answer for an object whose class needs no restore.
		return nil
	}
	err = s.wrapErr(opRestore, full, err)
	if err != nil && tier == storage.TierExpedited && errors.Is(err, storage.ErrPermanent) {
		return fmt.Errorf("%w (Expedited is refused for DEEP_ARCHIVE objects)", err)
	}
	return err
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	full, err := s.objectKey(opDelete, key)
	if err != nil {
		return err
	}
	ctx, cancel := s.metaCtx(ctx)
	defer cancel()
	_, err = s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	err = s.wrapErr(opDelete, full, err)
	if errors.Is(err, storage.ErrNotExist) {
		return nil
	}
	return err
}
