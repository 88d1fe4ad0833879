//go:build integration

package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/internal/s3test/glacier"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/s3"
	"github.com/cryophile/cryophile/storage/storagetest"
)

// storeOptions returns Options for bucket of env, with small parts so that
// tests exercise multipart uploads on small objects.
func storeOptions(env *s3test.Env, bucket string) s3.Options {
	return s3.Options{
		Bucket:             bucket,
		KeyPrefix:          "vault/root",
		Region:             env.Region,
		Endpoint:           env.Endpoint,
		PathStyle:          true,
		Credentials:        credentials.NewStaticCredentialsProvider(env.AccessKey, env.SecretKey, ""),
		PartSize:           s3.MinPartSize,
		MultipartThreshold: 8 << 20,
		MaxBackoff:         time.Second,
	}
}

func newStore(t *testing.T, opts s3.Options) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	env := s3test.Start(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return newStore(t, storeOptions(env, env.CreateBucket(t)))
	}, storagetest.Options{RestoreTimeout: 30 * time.Second, IfNoneMatch: true, LargeSize: 23 << 20})
}

// randomFile writes size pseudo-random bytes to a file and returns it open
// at its start, with its SHA-256.
func randomFile(t *testing.T, seed uint64, size int64) (*os.File, []byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	h := sha256.New()
	var s [32]byte
	s[0] = byte(seed)
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.NewChaCha8(s), size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f, h.Sum(nil)
}

func readAll(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// TestMultipartGlacier uploads 23 MiB in 5 MiB parts to GLACIER from a file
// and from a plain reader, and checks what the service recorded.
func TestMultipartGlacier(t *testing.T) {
	var parts atomic.Int32
	env := s3test.StartWith(t, glacier.Options{Fault: onUploadPart(func(*http.Request) { parts.Add(1) })})
	st := newStore(t, storeOptions(env, env.Bucket))
	ctx := context.Background()
	const size = 23 << 20
	f, sum := randomFile(t, 1, size)
	for _, tt := range []struct {
		key string
		r   io.Reader
	}{
		{"a/chunk.000001", f},
		{"a/chunk.000002", struct{ io.Reader }{f}}, // unseekable: buffered parts
	} {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		parts.Store(0)
		if err := st.Put(ctx, tt.key, tt.r, size, storage.PutOptions{Class: storage.ClassGlacier, SHA256: sum}); err != nil {
			t.Fatalf("Put(%s): %v", tt.key, err)
		}
		if got, want := parts.Load(), int32(5); got != want {
			t.Errorf("Put(%s) sent %d parts, want %d", tt.key, got, want)
		}
		info, err := st.Head(ctx, tt.key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Class != storage.ClassGlacier || info.Size != size || info.Readable() {
			t.Errorf("Head(%s) = %+v, want GLACIER, %d bytes, unreadable", tt.key, info, size)
		}
		if info.SHA256 != nil {
			t.Errorf("Head(%s).SHA256 = %x, want none (composite checksum)", tt.key, info.SHA256)
		}
		// The object really is in the bucket under the key prefix.
		out, err := env.Client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &env.Bucket, Key: aws.String("vault/root/" + tt.key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: checksum %s type %s", tt.key, aws.ToString(out.ChecksumSHA256), out.ChecksumType)
		if !strings.HasSuffix(aws.ToString(out.ChecksumSHA256), "-5") {
			t.Errorf("service checksum %q, want a composite SHA-256 of 5 parts", aws.ToString(out.ChecksumSHA256))
		}
	}
	// A wrong SHA-256 is found before completion: nothing stored, upload aborted.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(sum)
	bad[0] ^= 1
	err := st.Put(ctx, "a/bad", f, size, storage.PutOptions{Class: storage.ClassGlacier, SHA256: bad})
	if !errors.Is(err, storage.ErrChecksum) {
		t.Errorf("Put with a wrong SHA-256 = %v, want ErrChecksum", err)
	}
	if _, err := st.Head(ctx, "a/bad"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Head(a/bad) = %v, want ErrNotExist", err)
	}
	checkNoUploads(t, env, env.Bucket)
}

func checkNoUploads(t *testing.T, env *s3test.Env, bucket string) {
	t.Helper()
	out, err := env.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind, want none", len(out.Uploads))
	}
}

// TestServiceChecksum shows that the service itself refuses a body whose
// SHA-256 is not the one announced, and Put maps that to ErrChecksum.
func TestServiceChecksum(t *testing.T) {
	env := s3test.Start(t)
	ctx := context.Background()
	body := []byte("hello, glacier")
	wrong := sha256.Sum256([]byte("something else"))
	_, err := env.Client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:            &env.Bucket,
		Key:               aws.String("k"),
		Body:              bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(wrong[:])),
	})
	if err == nil {
		t.Fatal("PutObject with a wrong x-amz-checksum-sha256: no error")
	}
	t.Logf("versitygw on a wrong x-amz-checksum-sha256: %v", err)
	if !errors.Is(s3.WrapErr(s3.OpPut, err), storage.ErrChecksum) {
		t.Errorf("mapped %v, want ErrChecksum", err)
	}
	right := sha256.Sum256(body)
	out, err := env.Client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:            &env.Bucket,
		Key:               aws.String("k"),
		Body:              bytes.NewReader(body),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(right[:])),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("versitygw PutObject answer: x-amz-checksum-sha256 %q, type %q", aws.ToString(out.ChecksumSHA256), out.ChecksumType)
}

// TestIfNoneMatchService records what the service does with If-None-Match
// on PutObject and CompleteMultipartUpload.
func TestIfNoneMatchService(t *testing.T) {
	env := s3test.Start(t)
	st := newStore(t, storeOptions(env, env.Bucket))
	ctx := context.Background()
	f, sum := randomFile(t, 2, 9<<20)
	put := func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		return st.Put(ctx, "big", f, 9<<20, storage.PutOptions{SHA256: sum, IfNoneMatch: true})
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	if err := put(); !errors.Is(err, storage.ErrExist) {
		t.Errorf("second conditional multipart Put = %v, want ErrExist", err)
	}
	// The multipart path checks with HEAD first; make the service decide.
	_, err := env.Client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: &env.Bucket, Key: aws.String("vault/root/big"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*"),
	})
	t.Logf("versitygw PutObject If-None-Match on an existing key: %v", err)
	if err == nil {
		t.Errorf("PutObject If-None-Match: * over an existing key succeeded")
	}
	create, err := env.Client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String("vault/root/big")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := env.Client.UploadPart(ctx, &awss3.UploadPartInput{Bucket: &env.Bucket, Key: aws.String("vault/root/big"),
		UploadId: create.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("y")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String("vault/root/big"),
		UploadId: create.UploadId, IfNoneMatch: aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}})
	t.Logf("versitygw CompleteMultipartUpload If-None-Match on an existing key: %v", err)
	if err == nil {
		t.Errorf("CompleteMultipartUpload If-None-Match: * over an existing key succeeded")
	}
	env.Client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String("vault/root/big"), UploadId: create.UploadId})
	if got := readAll(t, st, "big"); !bytes.Equal(sha256Sum(got), sum) {
		t.Errorf("object changed by refused conditional writes")
	}
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// cutProxy is a TCP proxy that cuts the first cuts connections that carry a
// GetObject answer after limit bytes of it.
type cutProxy struct {
	ln       net.Listener
	upstream string
	limit    int
	cuts     atomic.Int32
	done     atomic.Int32
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn // to close at the end: pooled ones stay open
}

func startCutProxy(t *testing.T, upstream string, limit, cuts int) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, upstream: upstream, limit: limit}
	p.cuts.Store(int32(cuts))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer u.Close()
	p.mu.Lock()
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	go func() {
		io.Copy(u, c)
		u.(*net.TCPConn).CloseWrite()
	}()
	// Pass the first response's headers, then limit bytes of what follows,
	// then reset the client's connection.
	var got []byte
	hdr := -1 // length of the first response's headers, once known
	buf := make([]byte, 32<<10)
	for {
		n, err := u.Read(buf)
		if n > 0 {
			got = append(got, buf[:n]...)
			if hdr < 0 {
				if i := bytes.Index(got, []byte("\r\n\r\n")); i >= 0 {
					hdr = i + 4
				}
			}
			if hdr >= 0 && len(got)-hdr > p.limit && p.cuts.Add(-1) >= 0 {
				c.Write(buf[:n-(len(got)-hdr-p.limit)])
				p.done.Add(1)
				c.(*net.TCPConn).SetLinger(0)
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestGetResumes cuts GetObject bodies mid-stream: the reader asks for the
// rest and returns every byte once.
func TestGetResumes(t *testing.T) {
	env := s3test.Start(t)
	ctx := context.Background()
	const size = 3 << 20
	f, sum := randomFile(t, 3, size)
	st := newStore(t, storeOptions(env, env.Bucket))
	if err := st.Put(ctx, "k", f, size, storage.PutOptions{SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	upstream := strings.TrimPrefix(env.Endpoint, "http://")
	for _, cuts := range []int{1, 3} {
		t.Run(fmt.Sprint(cuts), func(t *testing.T) {
			p := startCutProxy(t, upstream, 700<<10, cuts)
			opts := storeOptions(env, env.Bucket)
			opts.Endpoint = "http://" + p.ln.Addr().String()
			cst := newStore(t, opts)
			got := readAll(t, cst, "k")
			if !bytes.Equal(sha256Sum(got), sum) {
				t.Errorf("Get through a cutting proxy: %d bytes, SHA-256 %x, want %d, %x", len(got), sha256Sum(got), size, sum)
			}
			if got, want := p.done.Load(), int32(cuts); got < want {
				t.Errorf("proxy cut %d bodies, want %d", got, want)
			}
			// A range too.
			rc, err := cst.Get(ctx, "k", 100, 2<<20)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			want := make([]byte, 2<<20)
			f.ReadAt(want, 100)
			if err != nil || !bytes.Equal(b, want) {
				t.Errorf("ranged Get: %d bytes, %v; want the file's", len(b), err)
			}
		})
	}
	t.Run("TooMany", func(t *testing.T) {
		// Every response cut before its first body byte: no progress.
		p := startCutProxy(t, upstream, 0, 1000)
		opts := storeOptions(env, env.Bucket)
		opts.Endpoint = "http://" + p.ln.Addr().String()
		opts.GetResumes = 2
		opts.MaxAttempts = 2
		cst := newStore(t, opts)
		rc, err := cst.Get(ctx, "k", 0, -1)
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err == nil {
				t.Errorf("Get with every answer cut: %d bytes, no error", n)
			}
		}
		t.Logf("%d cuts: %v", p.done.Load(), err)
	})
}

// TestPermanentErrors checks that configuration errors say what to fix.
func TestPermanentErrors(t *testing.T) {
	env := s3test.Start(t)
	ctx := context.Background()
	b := []byte("data")
	for _, tt := range []struct {
		name string
		mod  func(*s3.Options)
		want string
	}{
		{"WrongAccessKey", func(o *s3.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider("nobody", env.SecretKey, "")
		}, "fix the credentials"},
		{"WrongSecret", func(o *s3.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider(env.AccessKey, "wrong-secret-wrong-secret", "")
		}, "fix the secret access key"},
		{"NoBucket", func(o *s3.Options) { o.Bucket = "cryophile-no-such-bucket" }, "does not exist: create it or fix the vault url"},
		{"BadClass", nil, "storage_class"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := storeOptions(env, env.Bucket)
			if tt.mod != nil {
				tt.mod(&opts)
			}
			st := newStore(t, opts)
			class := storage.ClassGlacier
			if tt.name == "BadClass" {
				class = "GLACIER_FROZEN"
			}
			start := time.Now()
			err := st.Put(ctx, "k", bytes.NewReader(b), int64(len(b)), storage.PutOptions{Class: class})
			// versitygw may refuse a PUT before reading its body and close
			// the connection, cutting the error document: then the 403
			// carries no code and the hint can only be generic.
			cut := err != nil && strings.Contains(err.Error(), "no error code") && tt.name != "BadClass"
			if !errors.Is(err, storage.ErrPermanent) || !(strings.Contains(err.Error(), tt.want) || cut) {
				t.Errorf("Put = %v, want ErrPermanent saying %q", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Put took %v: permanent errors must not be retried", d)
			}
			if tt.name == "BadClass" {
				return
			}
			err = st.List(ctx, "", func(storage.ObjectInfo) error { return nil })
			if !errors.Is(err, storage.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("List = %v, want ErrPermanent saying %q", err, tt.want)
			}
			_, err = st.Get(ctx, "k", 0, -1)
			if !errors.Is(err, storage.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Get = %v, want ErrPermanent saying %q", err, tt.want)
			}
			// HEAD answers have no body: a 403 cannot say which
			// credential is wrong, a 404 not whether the bucket is missing.
			_, err = st.Head(ctx, "k")
			if !errors.Is(err, storage.ErrPermanent) {
				t.Errorf("Head = %v, want ErrPermanent", err)
			}
			t.Logf("Head: %v", err)
		})
	}
}

// TestAbortIncompleteUploads leaks an upload as a crash would and aborts it.
func TestAbortIncompleteUploads(t *testing.T) {
	env := s3test.Start(t)
	ctx := context.Background()
	st := newStore(t, storeOptions(env, env.Bucket))
	for _, key := range []string{"vault/root/p/chunk.000001", "elsewhere/chunk.000001"} {
		create, err := env.Client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Client.UploadPart(ctx, &awss3.UploadPartInput{Bucket: &env.Bucket, Key: aws.String(key),
			UploadId: create.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("leaked")}); err != nil {
			t.Fatal(err)
		}
	}
	// Too young: spared.
	if n, err := st.AbortIncompleteUploads(ctx, "", time.Hour); err != nil || n != 0 {
		t.Errorf("AbortIncompleteUploads(1h) = %d, %v; want 0, nil", n, err)
	}
	n, err := st.AbortIncompleteUploads(ctx, "p/", -time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("AbortIncompleteUploads = %d, %v; want 1, nil", n, err)
	}
	out, err := env.Client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &env.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 1 || aws.ToString(out.Uploads[0].Key) != "elsewhere/chunk.000001" {
		t.Errorf("uploads left: %d, want only the one outside the key prefix", len(out.Uploads))
	}
}

// TestResume leaves an upload behind as a killed Put would, with part 1
// right and part 2 wrong: the next Put sends part 2 and the rest, not part 1.
func TestResume(t *testing.T) {
	var sent sync.Map // part number → times sent
	env := s3test.StartWith(t, glacier.Options{Fault: onUploadPart(func(r *http.Request) {
		n, _ := sent.LoadOrStore(r.URL.Query().Get("partNumber"), new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	})})
	ctx := context.Background()
	st := newStore(t, storeOptions(env, env.Bucket))
	const size = 23 << 20
	f, sum := randomFile(t, 7, size)
	key := "vault/root/k"
	create, err := env.Client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: &key,
		StorageClass: types.StorageClassGlacier, ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	for part, data := range [][]byte{make([]byte, s3.MinPartSize), make([]byte, s3.MinPartSize)} {
		if part == 0 {
			f.ReadAt(data, 0)
		}
		if _, err := env.Client.UploadPart(ctx, &awss3.UploadPartInput{Bucket: &env.Bucket, Key: &key, UploadId: create.UploadId,
			PartNumber: aws.Int32(int32(part + 1)), Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmSha256}); err != nil {
			t.Fatal(err)
		}
	}
	sent.Clear()
	if err := st.Put(ctx, "k", f, size, storage.PutOptions{Class: storage.ClassGlacier, SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	for part, want := range []int32{0, 1, 1, 1, 1} {
		got := int32(0)
		if n, ok := sent.Load(fmt.Sprint(part + 1)); ok {
			got = n.(*atomic.Int32).Load()
		}
		if got != want {
			t.Errorf("part %d sent %d times, want %d", part+1, got, want)
		}
	}
	checkNoUploads(t, env, env.Bucket)
	if err := st.Restore(ctx, "k", 1, storage.TierExpedited); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		info, err := st.Head(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if info.Readable() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restored within 30 s: %+v", info)
		}
		time.Sleep(100 * time.Millisecond) // polling the restore, as thaw does
	}
	if got := readAll(t, st, "k"); !bytes.Equal(sha256Sum(got), sum) {
		t.Errorf("resumed upload stored other bytes")
	}
}

// TestCanceledMultipart cancels a multipart upload midway: nothing stored,
// no upload left.
func TestCanceledMultipart(t *testing.T) {
	var parts atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := s3test.StartWith(t, glacier.Options{Fault: onUploadPart(func(*http.Request) {
		if parts.Add(1) == 2 {
			cancel()
		}
	})})
	opts := storeOptions(env, env.Bucket)
	opts.Concurrency = 1
	st := newStore(t, opts)
	f, sum := randomFile(t, 4, 23<<20)
	err := st.Put(ctx, "k", f, 23<<20, storage.PutOptions{SHA256: sum})
	if err == nil {
		t.Fatal("canceled Put: no error")
	}
	if _, err := st.Head(context.Background(), "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Head after a canceled Put = %v, want ErrNotExist", err)
	}
	checkNoUploads(t, env, env.Bucket)
}

// TestTransientFaults serves throttling, server errors and dropped
// connections to the first requests of each kind: the SDK's retryer rides
// them out (file bodies are rewound, buffered parts resent).
func TestTransientFaults(t *testing.T) {
	faults := []glacier.Fault{glacier.SlowDown, glacier.InternalError, glacier.Reset, glacier.ServiceUnavailable}
	var mu sync.Mutex
	hooks := map[string]func(*http.Request) *glacier.Fault{}
	var on atomic.Bool // once the bucket is there
	env := s3test.StartWith(t, glacier.Options{Fault: func(r *http.Request) *glacier.Fault {
		if !on.Load() {
			return nil
		}
		mu.Lock()
		hook, ok := hooks[r.Method]
		if !ok {
			hook = glacier.Schedule(nil, faults...)
			hooks[r.Method] = hook
		}
		mu.Unlock()
		return hook(r)
	}})
	on.Store(true)
	ctx := context.Background()
	st := newStore(t, storeOptions(env, env.Bucket))
	for _, size := range []int64{1 << 20, 12 << 20} {
		f, sum := randomFile(t, 8, size)
		for _, r := range []io.Reader{f, struct{ io.Reader }{f}} {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("k%d-%T", size, r)
			if err := st.Put(ctx, key, r, size, storage.PutOptions{SHA256: sum}); err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			if got := readAll(t, st, key); !bytes.Equal(sha256Sum(got), sum) {
				t.Errorf("Get(%s) after faults: other bytes", key)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range []string{http.MethodPut, http.MethodGet, http.MethodPost} {
		if hooks[m] == nil || hooks[m](&http.Request{Method: m}) != nil {
			t.Errorf("%s requests: the faults were not all served", m)
		}
	}
}

// TestUploadStall holds the first part's request unread for longer than
// StallTimeout, as a black-holed connection would: the attempt is
// abandoned and retried, and the upload completes long before the stall
// would have ended.
func TestUploadStall(t *testing.T) {
	// The proxy's handler sleeps the delay out even once the client has
	// gone (it never reads the body, so never sees the close): keep it
	// short, the test waits for it.
	const delay = 8 * time.Second
	var faults atomic.Int32
	env := s3test.StartWith(t, glacier.Options{Fault: func(r *http.Request) *glacier.Fault {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "1" && faults.Add(1) == 1 {
			return &glacier.Fault{Delay: delay}
		}
		return nil
	}})
	opts := storeOptions(env, env.Bucket)
	opts.PartSize = 32 << 20 // more than loopback socket buffers hold
	opts.StallTimeout = 300 * time.Millisecond
	st := newStore(t, opts)
	const size = 40 << 20
	f, sum := randomFile(t, 6, size)
	start := time.Now()
	if err := st.Put(context.Background(), "k", f, size, storage.PutOptions{SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if d > delay/2 {
		t.Errorf("Put took %v: the stalled attempt was not abandoned", d)
	}
	t.Logf("Put with a stalled part: %v", d)
	if got := faults.Load(); got < 2 {
		t.Errorf("part 1 sent %d times, want a retry", got)
	}
	if got := readAll(t, st, "k"); !bytes.Equal(sha256Sum(got), sum) {
		t.Errorf("object differs after a stalled part")
	}
}

// TestUploadSpeed compares Put's multipart throughput with the SDK's upload
// manager pushing the same file with the same part size and concurrency,
// alternating, best of three each (the machine is shared). It fails only
// when Put is far slower: loopback figures on a busy machine are noisy.
//
// Put does more work than the manager here, on purpose: a SHA-256 of every
// part (the service checks it; the manager sends a CRC32) and one of the
// whole file (checked against PutOptions.SHA256 before completing), and
// versitygw, on the same two cores, checks the part SHA-256 too.
func TestUploadSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	env := s3test.Start(t)
	opts := storeOptions(env, env.Bucket)
	opts.PartSize, opts.MultipartThreshold = 8<<20, 8<<20
	st := newStore(t, opts)
	const size = 256 << 20
	f, sum := randomFile(t, 5, size)
	ctx := context.Background()
	up := manager.NewUploader(env.Client, func(u *manager.Uploader) { u.PartSize, u.Concurrency = 8<<20, 4 })
	timed := func(fn func() error) time.Duration {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	ours, theirs, theirsSHA := time.Hour, time.Hour, time.Hour
	for i := range 3 {
		ours = min(ours, timed(func() error {
			return st.Put(ctx, fmt.Sprint("speed", i), f, size, storage.PutOptions{Class: storage.ClassGlacier, SHA256: sum})
		}))
		theirs = min(theirs, timed(func() error {
			_, err := up.Upload(ctx, &awss3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(fmt.Sprint("manager", i)), Body: f,
				StorageClass: types.StorageClassGlacier})
			return err
		}))
		theirsSHA = min(theirsSHA, timed(func() error {
			_, err := up.Upload(ctx, &awss3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(fmt.Sprint("manager", i)), Body: f,
				StorageClass: types.StorageClassGlacier, ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
			return err
		}))
	}
	rate := func(d time.Duration) float64 { return float64(size>>20) / d.Seconds() }
	t.Logf("%d MiB in 8 MiB parts, concurrency 4, best of 3: Put %.0f MiB/s; SDK upload manager %.0f MiB/s (Put %.0f%% of it), "+
		"with SHA-256 part checksums %.0f MiB/s (Put %.0f%%)", size>>20, rate(ours),
		rate(theirs), 100*theirs.Seconds()/ours.Seconds(), rate(theirsSHA), 100*theirsSHA.Seconds()/ours.Seconds())
	if ours > 2*theirs {
		t.Errorf("Put is less than half as fast as the SDK's upload manager")
	}
}

// onUploadPart returns a glacier proxy hook that calls fn for every
// UploadPart request.
func onUploadPart(fn func(*http.Request)) func(*http.Request) *glacier.Fault {
	return func(r *http.Request) *glacier.Fault {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			fn(r)
		}
		return nil
	}
}
