//go:build integration

package glacier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/internal/s3test/glacier"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// status is the HTTP status of a successful SDK call.
func status(md middleware.Metadata) int {
	if r, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		return r.StatusCode
	}
	return 0
}

// apiError returns the S3 error code and HTTP status of err.
func apiError(err error) (code string, httpStatus int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		httpStatus = re.HTTPStatusCode()
	}
	return code, httpStatus
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) *string {
	s := sha256.Sum256(b)
	return aws.String(base64.StdEncoding.EncodeToString(s[:]))
}

func restoreInput(bucket, key string, days int32, tier types.Tier) *s3.RestoreObjectInput {
	return &s3.RestoreObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		RestoreRequest: &types.RestoreRequest{Days: aws.Int32(days),
			GlacierJobParameters: &types.GlacierJobParameters{Tier: tier}}}
}

func TestIntegrationArchiveLifecycle(t *testing.T) {
	clk := newClock()
	env := s3test.StartWith(t, glacier.Options{Now: clk.Now, Day: time.Minute})
	c, b, key := env.Client, env.Bucket, "host/pool/01J0000000000000000000000/chunk.000001"
	data := randomBytes(t, 100_000)
	_, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(data),
		StorageClass: types.StorageClassGlacier, ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatalf("PutObject GLACIER: %v", err)
	}
	head, err := c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if head.StorageClass != types.StorageClassGlacier || head.Restore != nil {
		t.Fatalf("HeadObject: class %q restore %v, want GLACIER and no restore", head.StorageClass, head.Restore)
	}
	if got, want := aws.ToString(head.ChecksumSHA256), aws.ToString(sha(data)); got != want {
		t.Errorf("HeadObject ChecksumSHA256 = %q, want %q", got, want)
	}

	_, err = c.GetObject(ctx(t), &s3.GetObjectInput{Bucket: &b, Key: &key})
	var ios *types.InvalidObjectState
	if !errors.As(err, &ios) || ios.StorageClass != types.StorageClassGlacier {
		t.Fatalf("GetObject of archived: %v, want *types.InvalidObjectState with class GLACIER", err)
	}
	if code, st := apiError(err); code != "InvalidObjectState" || st != 403 {
		t.Fatalf("GetObject of archived: code %q status %d, want InvalidObjectState 403", code, st)
	}

	out, err := c.RestoreObject(ctx(t), restoreInput(b, key, 2, types.TierBulk))
	if err != nil || status(out.ResultMetadata) != 202 {
		t.Fatalf("RestoreObject: %v, status %d, want 202", err, status(out.ResultMetadata))
	}
	_, err = c.RestoreObject(ctx(t), restoreInput(b, key, 2, types.TierBulk))
	if code, st := apiError(err); code != "RestoreAlreadyInProgress" || st != 409 {
		t.Fatalf("RestoreObject again: %v, want 409 RestoreAlreadyInProgress", err)
	}
	head, err = c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: &key})
	if err != nil || aws.ToString(head.Restore) != `ongoing-request="true"` {
		t.Fatalf("HeadObject while restoring: %v, restore %q", err, aws.ToString(head.Restore))
	}

	clk.Advance(5 * time.Second) // Bulk
	head, err = c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	wantRestore := glacier.RestoreHeader(false, time.Date(2026, 3, 1, 10, 0, 5, 0, time.UTC).Add(2*time.Minute))
	if got := aws.ToString(head.Restore); got != wantRestore || head.StorageClass != types.StorageClassGlacier {
		t.Fatalf("HeadObject after restore: restore %q class %q, want %q GLACIER", got, head.StorageClass, wantRestore)
	}
	get, err := c.GetObject(ctx(t), &s3.GetObjectInput{Bucket: &b, Key: &key})
	if err != nil {
		t.Fatalf("GetObject restored: %v", err)
	}
	got, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetObject restored: %d bytes, err %v; bytes differ from what was put", len(got), err)
	}
	if aws.ToString(get.Restore) != wantRestore {
		t.Errorf("GetObject restored: x-amz-restore %q, want %q", aws.ToString(get.Restore), wantRestore)
	}
	out, err = c.RestoreObject(ctx(t), restoreInput(b, key, 2, types.TierBulk))
	if err != nil || status(out.ResultMetadata) != 200 {
		t.Fatalf("RestoreObject of restored copy: %v, status %d, want 200", err, status(out.ResultMetadata))
	}

	// Lukewarm: the restored copy expires and the object is archived again.
	clk.Advance(3 * time.Minute)
	if _, err = c.GetObject(ctx(t), &s3.GetObjectInput{Bucket: &b, Key: &key}); !errors.As(err, &ios) {
		t.Fatalf("GetObject after expiry: %v, want InvalidObjectState", err)
	}

	// CopyObject of an archived source is refused; DeleteObject forgets.
	_, err = c.CopyObject(ctx(t), &s3.CopyObjectInput{Bucket: &b, Key: aws.String("copy"),
		CopySource: aws.String(b + "/" + key)})
	if code, st := apiError(err); code != "InvalidObjectState" || st != 403 {
		t.Fatalf("CopyObject of archived: %v, want 403 InvalidObjectState", err)
	}
	if _, err = c.DeleteObject(ctx(t), &s3.DeleteObjectInput{Bucket: &b, Key: &key}); err != nil {
		t.Fatal(err)
	}
	if _, ok := env.Proxy.Object(b, key); ok {
		t.Fatal("proxy still knows the deleted object")
	}
}

func TestIntegrationRestoreNotNeeded(t *testing.T) {
	env := s3test.Start(t)
	c, b := env.Client, env.Bucket
	for _, class := range []types.StorageClass{"", types.StorageClassStandard, types.StorageClassGlacierIr} {
		key := "k-" + string(class)
		if _, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: &key,
			Body: strings.NewReader("x"), StorageClass: class}); err != nil {
			t.Fatalf("PutObject %s: %v", class, err)
		}
		_, err := c.RestoreObject(ctx(t), restoreInput(b, key, 1, types.TierBulk))
		if code, st := apiError(err); code != "InvalidObjectState" || st != 403 {
			t.Errorf("RestoreObject of %q object: %v, want 403 InvalidObjectState", class, err)
		}
		if _, err := c.GetObject(ctx(t), &s3.GetObjectInput{Bucket: &b, Key: &key}); err != nil {
			t.Errorf("GetObject of %q object: %v", class, err)
		}
	}
	_, err := c.RestoreObject(ctx(t), restoreInput(b, "missing", 1, types.TierBulk))
	if code, st := apiError(err); code != "NoSuchKey" || st != 404 {
		t.Errorf("RestoreObject of missing key: %v, want 404 NoSuchKey", err)
	}
	_, err = c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("bogus"),
		Body: strings.NewReader("x"), StorageClass: "BOGUS"})
	if code, st := apiError(err); code != "InvalidStorageClass" || st != 400 {
		t.Errorf("PutObject with class BOGUS: %v, want 400 InvalidStorageClass", err)
	}
}

// TestIntegrationRestoreRealTime waits for a real (short) delay, polling
// HeadObject as thaw will.
func TestIntegrationRestoreRealTime(t *testing.T) {
	env := s3test.StartWith(t, glacier.Options{Delays: map[string]time.Duration{"Expedited": 300 * time.Millisecond}})
	c, b, key := env.Client, env.Bucket, "deep"
	if _, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: &key, Body: strings.NewReader("cold"),
		StorageClass: types.StorageClassGlacier}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RestoreObject(ctx(t), restoreInput(b, key, 1, types.TierExpedited)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		head, err := c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(aws.ToString(head.Restore), `ongoing-request="false", expiry-date=`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore not done after 10 s: %q", aws.ToString(head.Restore))
		}
		time.Sleep(50 * time.Millisecond) // polling the condition, as a client must
	}
	if _, err := c.GetObject(ctx(t), &s3.GetObjectInput{Bucket: &b, Key: &key}); err != nil {
		t.Fatalf("GetObject after restore: %v", err)
	}
}

func TestIntegrationMultipartAndList(t *testing.T) {
	env := s3test.Start(t)
	c, b := env.Client, env.Bucket
	data := randomBytes(t, 11<<20)
	up := manager.NewUploader(c, func(u *manager.Uploader) {
		u.PartSize = 5 << 20
		u.Concurrency = 2
	})
	res, err := up.Upload(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("a/chunk.000001"),
		Body: bytes.NewReader(data), StorageClass: types.StorageClassGlacier,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatalf("multipart upload: %v", err)
	}
	if res.UploadID == "" {
		t.Fatal("upload was not multipart")
	}
	t.Logf("multipart: %d parts, ChecksumSHA256 %q, ChecksumType %q", len(res.CompletedParts),
		aws.ToString(res.ChecksumSHA256), res.ChecksumType)
	head, err := c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: aws.String("a/chunk.000001"),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if head.StorageClass != types.StorageClassGlacier || aws.ToInt64(head.ContentLength) != int64(len(data)) {
		t.Fatalf("HeadObject after multipart: class %q size %d", head.StorageClass, aws.ToInt64(head.ContentLength))
	}
	// versitygw returns a COMPOSITE checksum: SHA-256 of the part digests, "-N".
	if got := aws.ToString(head.ChecksumSHA256); !strings.HasSuffix(got, "-3") {
		t.Errorf("HeadObject ChecksumSHA256 = %q, want a composite of 3 parts", got)
	}

	for key, class := range map[string]types.StorageClass{"a/manifest.json": "", "b/ir": types.StorageClassGlacierIr,
		"c/deep": types.StorageClassDeepArchive} {
		if _, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String(key),
			Body: strings.NewReader("{}"), StorageClass: class}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.ListObjectsV2(ctx(t), &s3.ListObjectsV2Input{Bucket: &b})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]types.ObjectStorageClass{}
	for _, o := range list.Contents {
		got[aws.ToString(o.Key)] = o.StorageClass
	}
	want := map[string]types.ObjectStorageClass{"a/chunk.000001": "GLACIER", "a/manifest.json": "STANDARD",
		"b/ir": "GLACIER_IR", "c/deep": "DEEP_ARCHIVE"}
	if len(got) != len(want) {
		t.Fatalf("ListObjectsV2 = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("ListObjectsV2 class of %s = %q, want %q", k, got[k], w)
		}
	}
	uploads, err := c.ListMultipartUploads(ctx(t), &s3.ListMultipartUploadsInput{Bucket: &b})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Fatalf("ListMultipartUploads: %v, %d left", err, len(uploads.Uploads))
	}
}

func TestIntegrationSignatureChecked(t *testing.T) {
	env := s3test.Start(t)
	b := env.Bucket
	noRetry := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	wrongSecret := env.NewClient(noRetry, func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(env.AccessKey, "wrong-secret", "")
	})
	_, err := wrongSecret.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("k"), Body: strings.NewReader("x")})
	if code, st := apiError(err); code != "SignatureDoesNotMatch" || st != 403 {
		t.Errorf("PutObject with a wrong secret: %v, want 403 SignatureDoesNotMatch", err)
	}
	_, err = wrongSecret.RestoreObject(ctx(t), restoreInput(b, "k", 1, types.TierBulk))
	if code, st := apiError(err); code != "SignatureDoesNotMatch" || st != 403 {
		t.Errorf("RestoreObject with a wrong secret: %v, want 403 SignatureDoesNotMatch", err)
	}
	wrongKey := env.NewClient(noRetry, func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("nobody", env.SecretKey, "")
	})
	// versitygw alone answers 404 XAdminUserNotFound here; the proxy, told
	// the test access key, answers as AWS does.
	_, err = wrongKey.HeadBucket(ctx(t), &s3.HeadBucketInput{Bucket: &b})
	if _, st := apiError(err); st != 403 {
		t.Errorf("HeadBucket with an unknown access key: %v, want 403", err)
	}
	_, err = wrongKey.ListObjectsV2(ctx(t), &s3.ListObjectsV2Input{Bucket: &b})
	if code, st := apiError(err); code != "InvalidAccessKeyId" || st != 403 {
		t.Errorf("ListObjectsV2 with an unknown access key: %v, want 403 InvalidAccessKeyId", err)
	}
}

func TestIntegrationChecksumVerified(t *testing.T) {
	env := s3test.Start(t)
	c, b := env.Client, env.Bucket
	data := []byte("fragment bytes")
	_, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("bad"), Body: bytes.NewReader(data),
		ChecksumSHA256: sha([]byte("other bytes")), StorageClass: types.StorageClassGlacier})
	code, st := apiError(err)
	if err == nil || st != 400 {
		t.Fatalf("PutObject with a wrong x-amz-checksum-sha256: %v, want a 400 refusal", err)
	}
	t.Logf("wrong x-amz-checksum-sha256: %d %s", st, code)
	if _, err := c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: aws.String("bad")}); err == nil {
		t.Fatal("the refused object exists")
	}
	if _, ok := env.Proxy.Object(b, "bad"); ok {
		t.Fatal("the proxy recorded a refused PUT")
	}
	out, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("good"), Body: bytes.NewReader(data),
		ChecksumSHA256: sha(data)})
	if err != nil || aws.ToString(out.ChecksumSHA256) != aws.ToString(sha(data)) {
		t.Fatalf("PutObject with the right checksum: %v, echoed %q", err, aws.ToString(out.ChecksumSHA256))
	}
}

func TestIntegrationIfNoneMatch(t *testing.T) {
	env := s3test.Start(t)
	c, b := env.Client, env.Bucket
	in := func() *s3.PutObjectInput {
		return &s3.PutObjectInput{Bucket: &b, Key: aws.String("once"), Body: strings.NewReader("x"),
			IfNoneMatch: aws.String("*"), StorageClass: types.StorageClassGlacier}
	}
	if _, err := c.PutObject(ctx(t), in()); err != nil {
		t.Fatalf("first conditional PutObject: %v", err)
	}
	_, err := c.PutObject(ctx(t), in())
	if code, st := apiError(err); code != "PreconditionFailed" || st != http.StatusPreconditionFailed {
		t.Fatalf("second conditional PutObject: %v, want 412 PreconditionFailed", err)
	}
	if st, _ := env.Proxy.Object(b, "once"); st.Class != "GLACIER" {
		t.Fatalf("class after refused overwrite = %q, want GLACIER", st.Class)
	}
}

func TestIntegrationServerRestart(t *testing.T) {
	env := s3test.Start(t)
	c, b := env.Client, env.Bucket
	if _, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("k"), Body: strings.NewReader("x"),
		StorageClass: types.StorageClassGlacier}); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Stop(); err != nil {
		t.Fatal(err)
	}
	noRetry := env.NewClient(func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	_, err := noRetry.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: aws.String("k")})
	if _, st := apiError(err); st != http.StatusBadGateway {
		t.Fatalf("HeadObject with the server down: %v, want 502", err)
	}
	if err := env.Server.Restart(); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: &b, Key: aws.String("k")})
	if err != nil || head.StorageClass != types.StorageClassGlacier {
		t.Fatalf("HeadObject after restart: %v, class %q", err, head.StorageClass)
	}
}

func TestIntegrationFaultsRetried(t *testing.T) {
	env := s3test.Start(t)
	c, b := env.Client, env.Bucket
	var hits atomic.Int32
	env.Proxy.SetFault(glacier.Schedule(func(r *http.Request) bool {
		if r.Method == http.MethodPut {
			hits.Add(1)
			return true
		}
		return false
	}, glacier.SlowDown, glacier.InternalError))
	// The SDK's standard retryer (3 attempts) rides through two faults.
	if _, err := c.PutObject(ctx(t), &s3.PutObjectInput{Bucket: &b, Key: aws.String("k"),
		Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("PutObject through 2 faults: %v", err)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("PUT attempts = %d, want 3", n)
	}
}
