package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/s3"
)

func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		url, bucket, prefix string
		ok                  bool
	}{
		{"s3://bucket", "bucket", "", true},
		{"s3://bucket/", "bucket", "", true},
		{"s3://my-bucket/cryophile", "my-bucket", "cryophile", true},
		{"s3://my.bucket/a/b/c/", "my.bucket", "a/b/c", true},
		{"s3://b/a//c", "", "", false},
		{"s3://b/a/../c", "", "", false},
		{"s3://b/./c", "", "", false},
		{"s3:///prefix", "", "", false},
		{"s3://", "", "", false},
		{"file:///srv/vault", "", "", false},
		{"http://bucket/x", "", "", false},
		{"s3:bucket", "", "", false},
		{"s3://user@bucket/x", "", "", false},
		{"s3://bucket:9000/x", "", "", false},
		{"s3://bucket/x?region=eu", "", "", false},
		{"s3://bucket/x#y", "", "", false},
		{"bucket/x", "", "", false},
	} {
		bucket, prefix, err := s3.ParseURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("ParseURL(%q) error = %v, want ok %v", tt.url, err, tt.ok)
			continue
		}
		if bucket != tt.bucket || prefix != tt.prefix {
			t.Errorf("ParseURL(%q) = %q, %q; want %q, %q", tt.url, bucket, prefix, tt.bucket, tt.prefix)
		}
	}
}

func TestChoosePartSize(t *testing.T) {
	const mib, gib, tib = 1 << 20, 1 << 30, 1 << 40
	for _, tt := range []struct {
		size, want, got int64
	}{
		{100 * mib, 64 * mib, 64 * mib},
		{100 * mib, 1 * mib, s3.MinPartSize}, // at least 5 MiB
		{1 * gib, 64 * mib, 64 * mib},
		{10000 * 64 * mib, 64 * mib, 64 * mib}, // exactly 10,000 parts
		{10000*64*mib + 1, 64 * mib, 65 * mib}, // one byte more: grown by 1 MiB
		{1 * tib, 64 * mib, 105 * mib},         // 1 TiB / 10,000 = 104.9 MiB
		{5 * tib, 64 * mib, 525 * mib},         // S3's largest object
		{5 * tib, 1 * gib, 1 * gib},            // a bigger wish stands
		{5 * tib, 6 * gib, s3.MaxPartSize},     // but not beyond S3's limit
		{50000 * s3.MinPartSize, 0, 25 * mib},  // default 0 → at least the minimum
		{1, 64 * mib, 64 * mib},
	} {
		got := s3.ChoosePartSize(tt.size, tt.want)
		if got != tt.got {
			t.Errorf("choosePartSize(%d, %d) = %d, want %d", tt.size, tt.want, got, tt.got)
		}
		if parts := (tt.size + got - 1) / got; parts > s3.MaxParts {
			t.Errorf("choosePartSize(%d, %d) = %d: %d parts, more than %d", tt.size, tt.want, got, parts, s3.MaxParts)
		}
		if got < s3.MinPartSize || got > s3.MaxPartSize {
			t.Errorf("choosePartSize(%d, %d) = %d, outside S3's part size limits", tt.size, tt.want, got)
		}
	}
}

func TestParseRestore(t *testing.T) {
	expiry := time.Date(2012, 12, 23, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		header string
		want   storage.RestoreStatus
		ok     bool
	}{
		{`ongoing-request="true"`, storage.RestoreStatus{Ongoing: true}, true},
		{`ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"`, storage.RestoreStatus{Expiry: expiry}, true},
		{`ongoing-request="false",expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"`, storage.RestoreStatus{Expiry: expiry}, true},
		{`expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", ongoing-request="false"`, storage.RestoreStatus{Expiry: expiry}, true},
		{`ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", restore-request-date="Fri, 21 Dec 2012 00:00:00 GMT"`, storage.RestoreStatus{Expiry: expiry}, true},
		{`Ongoing-Request="true"`, storage.RestoreStatus{Ongoing: true}, true},
		{`ongoing-request="false"`, storage.RestoreStatus{}, true}, // expired
		{``, storage.RestoreStatus{}, false},
		{`ongoing-request=true`, storage.RestoreStatus{}, false},
		{`ongoing-request="maybe"`, storage.RestoreStatus{}, false},
		{`ongoing-request="false", expiry-date="tomorrow"`, storage.RestoreStatus{}, false},
		{`ongoing-request="false", expiry-date="Fri, 23 Dec`, storage.RestoreStatus{}, false},
	} {
		got, err := s3.ParseRestore(tt.header)
		if (err == nil) != tt.ok {
			t.Errorf("parseRestore(%q) error = %v, want ok %v", tt.header, err, tt.ok)
			continue
		}
		if got.Ongoing != tt.want.Ongoing || !got.Expiry.Equal(tt.want.Expiry) {
			t.Errorf("parseRestore(%q) = %+v, want %+v", tt.header, got, tt.want)
		}
	}
}

// apiError makes an error as the SDK returns it for an S3 error answer.
func apiError(status int, code string) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "Op",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "message from the service"},
		},
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		op     string
		err    error
		want   error  // nil: no sentinel
		saying string // part of the message
	}{
		{"head", apiError(404, "NotFound"), storage.ErrNotExist, ""},
		{"get", apiError(404, "NoSuchKey"), storage.ErrNotExist, ""},
		{"get", apiError(403, "InvalidObjectState"), storage.ErrArchived, ""},
		{"restore", apiError(409, "RestoreAlreadyInProgress"), storage.ErrRestoreInProgress, ""},
		{s3.OpPut, apiError(412, "PreconditionFailed"), storage.ErrExist, ""},
		{s3.OpPut, apiError(412, ""), storage.ErrExist, ""},
		{"get", apiError(412, "PreconditionFailed"), nil, ""}, // an If-Match on resume: not ErrExist
		{s3.OpPut, apiError(400, "BadDigest"), storage.ErrChecksum, ""},
		{s3.OpPut, apiError(400, "XAmzContentSHA256Mismatch"), storage.ErrChecksum, ""},
		{"get", apiError(403, "AccessDenied"), storage.ErrPermanent, "check the credentials"},
		{"head", apiError(403, "Forbidden"), storage.ErrPermanent, "check the credentials"},
		{s3.OpPut, apiError(403, "InvalidAccessKeyId"), storage.ErrPermanent, "fix the credentials"},
		{s3.OpPut, apiError(403, "SignatureDoesNotMatch"), storage.ErrPermanent, "fix the secret access key"},
		{s3.OpPut, apiError(404, "NoSuchBucket"), storage.ErrPermanent, "bucket bucket does not exist: create it or fix the vault url"},
		{"list", apiError(400, "InvalidBucketName"), storage.ErrPermanent, "fix the vault url"},
		{s3.OpPut, apiError(400, "InvalidStorageClass"), storage.ErrPermanent, "fix the vault's storage_class"},
		{"list", apiError(301, "PermanentRedirect"), storage.ErrPermanent, "fix the vault's region"},
		{"list", apiError(400, "AuthorizationHeaderMalformed"), storage.ErrPermanent, "fix the vault's region"},
		{"restore", apiError(501, "NotImplemented"), storage.ErrPermanent, "does not implement restore"},
		{"restore", apiError(400, "InvalidArgument"), storage.ErrPermanent, ""},
		{s3.OpPut, apiError(403, ""), storage.ErrPermanent, "reason was lost"}, // error document cut off
		{"list", apiError(403, ""), storage.ErrPermanent, "check the credentials"},
		{"get", apiError(403, ""), nil, ""}, // may be InvalidObjectState: not permanent
		{s3.OpPut, apiError(503, "SlowDown"), nil, ""},
		{s3.OpPut, apiError(500, "InternalError"), nil, ""},
		{s3.OpPut, errors.New("connection reset by peer"), nil, ""},
		{s3.OpPut, context.DeadlineExceeded, nil, ""},
	} {
		err := s3.WrapErr(tt.op, tt.err)
		name := fmt.Sprintf("%s %v", tt.op, tt.err)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: mapped error %v does not wrap the original", name, err)
		}
		if !strings.HasPrefix(err.Error(), "s3: "+tt.op+" s3://bucket/key: ") {
			t.Errorf("%s: message %q does not start with the operation and object", name, err)
		}
		for _, sentinel := range []error{storage.ErrNotExist, storage.ErrArchived, storage.ErrRestoreInProgress,
			storage.ErrExist, storage.ErrChecksum, storage.ErrPermanent} {
			if got, want := errors.Is(err, sentinel), sentinel == tt.want; got != want {
				t.Errorf("%s: errors.Is(%v, %v) = %v, want %v", name, err, sentinel, got, want)
			}
		}
		if !strings.Contains(err.Error(), tt.saying) {
			t.Errorf("%s: message %q does not say %q", name, err, tt.saying)
		}
	}
	if err := s3.WrapErr(s3.OpPut, nil); err != nil {
		t.Errorf("WrapErr(nil) = %v", err)
	}
}

// isolate keeps the developer's AWS configuration out of a test.
func isolate(t *testing.T) {
	for _, v := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestNew(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	creds := credentials.NewStaticCredentialsProvider("a", "b", "")
	for _, tt := range []struct {
		name string
		opts s3.Options
		ok   bool
	}{
		{"NoBucket", s3.Options{Region: "eu-west-1"}, false},
		{"NoRegion", s3.Options{Bucket: "b"}, false},
		{"Region", s3.Options{Bucket: "b", Region: "eu-west-1"}, true},
		{"EndpointNoRegion", s3.Options{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true, Credentials: creds}, true},
		{"SmallParts", s3.Options{Bucket: "b", Region: "eu-west-1", PartSize: 1 << 20}, false},
		{"HugeParts", s3.Options{Bucket: "b", Region: "eu-west-1", PartSize: 6 << 30}, false},
		{"BadPrefix", s3.Options{Bucket: "b", Region: "eu-west-1", KeyPrefix: "a//b"}, false},
		{"Prefix", s3.Options{Bucket: "b", Region: "eu-west-1", KeyPrefix: "/a/b/"}, true},
	} {
		st, err := s3.New(ctx, tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New error = %v, want ok %v", tt.name, err, tt.ok)
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrPermanent) {
			t.Errorf("%s: New error = %v, want ErrPermanent", tt.name, err)
		}
		if err == nil && st.KeyPrefix() != strings.Trim(tt.opts.KeyPrefix, "/") {
			t.Errorf("%s: KeyPrefix() = %q", tt.name, st.KeyPrefix())
		}
	}
}

// TestBadArguments checks what is refused before any request is sent (the
// endpoint is a closed port: a request would fail differently).
func TestBadArguments(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	st, err := s3.New(ctx, s3.Options{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 1025)
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"PutEmptyKey", st.Put(ctx, "", strings.NewReader(""), 0, storage.PutOptions{})},
		{"PutLongKey", st.Put(ctx, long, strings.NewReader(""), 0, storage.PutOptions{})},
		{"PutNegativeSize", st.Put(ctx, "k", strings.NewReader(""), -1, storage.PutOptions{})},
		{"PutTooLarge", st.Put(ctx, "k", strings.NewReader(""), s3.MaxObjectSize+1, storage.PutOptions{})},
		{"PutShortSHA", st.Put(ctx, "k", strings.NewReader("x"), 1, storage.PutOptions{SHA256: []byte{1}})},
		{"PutShortFile", st.Put(ctx, "k", strings.NewReader("abc"), 4, storage.PutOptions{})},
		{"RestoreTier", st.Restore(ctx, "k", 1, "Fast")},
		{"RestoreDays", st.Restore(ctx, "k", 0, storage.TierBulk)},
		{"DeleteEmptyKey", st.Delete(ctx, "")},
	} {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		} else if strings.Contains(tt.err.Error(), "connect") {
			t.Errorf("%s: %v: a request was sent", tt.name, tt.err)
		}
	}
	if _, err := st.Get(ctx, "k", -1, 10); err == nil {
		t.Errorf("Get at a negative offset: no error")
	}
}

func ExampleParseURL() {
	bucket, prefix, err := s3.ParseURL("s3://my-bucket/cryophile/host1")
	if err != nil {
		panic(err)
	}
	fmt.Println(bucket, prefix)
	// Output: my-bucket cryophile/host1
}

func ExampleNew() {
	bucket, prefix, err := s3.ParseURL("s3://my-bucket/cryophile")
	if err != nil {
		panic(err)
	}
	// Credentials come from the SDK's standard chain.
	st, err := s3.New(context.Background(), s3.Options{Bucket: bucket, KeyPrefix: prefix, Region: "eu-west-1"})
	if err != nil {
		panic(err)
	}
	_ = st // st.Put(ctx, "host/pool/01J…/chunk.000001", f, size, storage.PutOptions{Class: storage.ClassGlacier, SHA256: sum})
}
