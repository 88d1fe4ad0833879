//go:build integration

package freeze_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/s3"
)

// newS3Env returns an env whose one vault is a fresh bucket of a local S3
// service with Glacier behaviour, with 5 MiB parts so that fragments of
// more than 5 MiB go up in parts.
func newS3Env(t *testing.T, keyPrefix string) (*env, *s3test.Env, string) {
	t.Helper()
	s3env := s3test.Start(t)
	e := newEnv(t, 0)
	st, err := s3.New(context.Background(), s3.Options{
		Bucket:             s3env.Bucket,
		KeyPrefix:          keyPrefix,
		Endpoint:           s3env.Endpoint,
		PathStyle:          true,
		Region:             s3env.Region,
		Credentials:        credentials.NewStaticCredentialsProvider(s3env.AccessKey, s3env.SecretKey, ""),
		PartSize:           5 << 20,
		MultipartThreshold: 5 << 20,
		MaxAttempts:        3,
		MaxBackoff:         100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	e.vaults[id] = st
	return e, s3env, id
}

// checkS3 checks classes as the Glacier proxy recorded them and the bytes
// the server stored, and that no multipart upload is left.
func checkS3(t *testing.T, s3env *s3test.Env, keyPrefix string, b *backup, manifest []byte) {
	t.Helper()
	full := func(name string) string {
		if keyPrefix == "" {
			return b.key(name)
		}
		return keyPrefix + "/" + b.key(name)
	}
	want := map[string][]byte{archive.ManifestName: manifest}
	for i, d := range b.frags {
		want[archive.FragmentName(i+1)] = d
	}
	for name, d := range want {
		key := full(name)
		class := storage.ClassGlacier
		if name == archive.ManifestName {
			class = storage.ClassStandard
		}
		if st, ok := s3env.Proxy.Object(s3env.Bucket, key); !ok || st.Class != class {
			t.Errorf("%s: proxy saw class %q (known %v), want %s", key, st.Class, ok, class)
		}
		got, err := os.ReadFile(filepath.Join(s3env.Server.Dir, s3env.Bucket, filepath.FromSlash(key)))
		if err != nil {
			t.Errorf("%s on the server: %v", key, err)
		} else if !bytes.Equal(got, d) {
			t.Errorf("%s on the server: %d bytes differ from the %d published", key, len(got), len(d))
		}
	}
}

func noUploadsLeft(t *testing.T, s3env *s3test.Env) {
	t.Helper()
	out, err := s3env.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s3env.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind", len(out.Uploads))
	}
}

func TestIntegrationS3RoundTrip(t *testing.T) {
	e, s3env, v := newS3Env(t, "cryo/vault1")
	b1, m1 := e.publishArchive(v, "host/pool", 3, 100_000)
	b2, m2 := e.publishArchive(v, "", 2, 6<<20) // multipart
	// A leaked upload, as a crash would leave: aborted at start.
	if _, err := s3env.Client.CreateMultipartUpload(context.Background(), &awss3.CreateMultipartUploadInput{
		Bucket: aws.String(s3env.Bucket), Key: aws.String("cryo/vault1/" + b2.key("chunk.000001"))}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := e.freezer(e.options()).Once(context.Background()); err != nil {
		t.Fatalf("Once: %v\nlogs:\n%s", err, e.logs)
	}
	elapsed := time.Since(t0)
	st := e.vaults[v]
	checkInVaultSums(t, st, b1, m1, false)
	checkInVaultSums(t, st, b2, m2, true)
	checkS3(t, s3env, "cryo/vault1", b1, m1)
	checkS3(t, s3env, "cryo/vault1", b2, m2)
	noUploadsLeft(t, s3env)
	if left := spoolFiles(t, e.sp); len(left) != 0 {
		t.Errorf("freeze/ still holds %q", left)
	}
	if n := len(vaultKeys(t, st)); n != 3+1+2+1 {
		t.Errorf("vault holds %d objects, want 7", n)
	}
	t.Logf("uploaded %.1f MiB in %v", float64(300_000+12<<20)/(1<<20), elapsed.Round(time.Millisecond))
}

// TestIntegrationS3ServerRestart stops the S3 server while the daemon
// uploads and starts it again: the uploads resume and complete.
func TestIntegrationS3ServerRestart(t *testing.T) {
	e, s3env, v := newS3Env(t, "")
	st := e.vaults[v]
	o := e.options()
	o.RetryMin, o.RetryMax = 50*time.Millisecond, 300*time.Millisecond
	o.Rescan = time.Second
	ready := make(chan struct{})
	o.OnReady = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.freezer(o).Run(ctx) }()
	<-ready

	b := e.newBackup(v, "restart")
	b.publish(fragmentData(t, 200_000))
	waitFor(t, "the first fragment in the vault", 20*time.Second, func() bool {
		_, err := st.Head(context.Background(), b.key("chunk.000001"))
		return err == nil
	})
	if err := s3env.Server.Stop(); err != nil {
		t.Fatal(err)
	}
	b.publish(fragmentData(t, 200_000))
	b.publish(fragmentData(t, 6<<20))
	m := b.finish()
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	waitFor(t, "a failed attempt", 20*time.Second, func() bool { return len(e.logs.records("upload failed, retrying")) > 0 })
	if !exists(filepath.Join(dir, "chunk.000002")) || !exists(filepath.Join(dir, archive.ManifestName)) {
		t.Fatal("fragment or manifest gone from the spool while the vault is down")
	}
	if err := s3env.Server.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the archive complete", 60*time.Second, func() bool { return !exists(dir) })
	checkInVaultSums(t, st, b, m, true)
	checkS3(t, s3env, "", b, m)
	noUploadsLeft(t, s3env)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestIntegrationS3Permanent: a missing bucket stops that vault with
// ErrPermanent; the spool keeps everything.
func TestIntegrationS3Permanent(t *testing.T) {
	e, s3env, v := newS3Env(t, "")
	st, err := s3.New(context.Background(), s3.Options{
		Bucket: "cryophile-no-such-bucket", Endpoint: s3env.Endpoint, PathStyle: true, Region: s3env.Region,
		Credentials: credentials.NewStaticCredentialsProvider(s3env.AccessKey, s3env.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.vaults[v] = st
	b, _ := e.publishArchive(v, "", 2, 1000)
	err = e.freezer(e.options()).Once(context.Background())
	if !errors.Is(err, storage.ErrPermanent) {
		t.Fatalf("Once: %v, want ErrPermanent", err)
	}
	t.Logf("error: %v", err)
	dir := e.sp.Dir(spool.QueueFreeze, b.id)
	for _, n := range []string{"chunk.000001", "chunk.000002", archive.ManifestName} {
		if !exists(filepath.Join(dir, n)) {
			t.Errorf("%s gone from the spool", n)
		}
	}
}
