//go:build integration

package freeze_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/storage/s3"
)

// Sizes of the upload benchmark: FACTS.md's loopback figures were taken
// with 64 MiB files, 8 MiB parts and concurrency 4.
const (
	benchFiles       = 8
	benchFileSize    = 64 << 20
	benchPartSize    = 8 << 20
	benchConcurrency = 4
)

// BenchmarkIntegrationUpload compares freeze's throughput to the local S3
// service with that of the SDK's upload manager pushing the same files
// with the same concurrency (files at once, parts at once), both with
// SHA-256 checksums. Run with
//
//	go test -tags integration -run '^$' -bench IntegrationUpload -benchtime 2x ./freeze
func BenchmarkIntegrationUpload(b *testing.B) {
	s3env := s3test.Start(b)
	data := fragmentData(b, benchFileSize)

	b.Run("freeze", func(b *testing.B) {
		b.SetBytes(benchFiles * benchFileSize)
		for range b.N {
			b.StopTimer()
			e := newEnv(b, 0)
			st, err := s3.New(context.Background(), s3.Options{
				Bucket: s3env.CreateBucket(b), Endpoint: s3env.Endpoint, PathStyle: true, Region: s3env.Region,
				Credentials: credentials.NewStaticCredentialsProvider(s3env.AccessKey, s3env.SecretKey, ""),
				PartSize:    benchPartSize, MultipartThreshold: benchPartSize, Concurrency: benchConcurrency,
			})
			if err != nil {
				b.Fatal(err)
			}
			v := uuid.NewString()
			e.vaults[v] = st
			bk := e.newBackup(v, "bench")
			for range benchFiles {
				bk.publish(data) // the same bytes: no 512 MiB in memory
			}
			bk.finish()
			o := e.options()
			o.Concurrency = benchConcurrency
			f := e.freezer(o)
			b.StartTimer()
			if err := f.Once(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			n := 0
			st.List(context.Background(), "", func(o storage.ObjectInfo) error {
				if o.Size == benchFileSize {
					n++
				}
				return nil
			})
			if n != benchFiles {
				b.Fatalf("%d fragments of %d bytes in the vault, want %d", n, benchFileSize, benchFiles)
			}
			b.StartTimer()
		}
		reportRSS(b)
	})

	b.Run("manager", func(b *testing.B) {
		b.SetBytes(benchFiles * benchFileSize)
		dir := b.TempDir()
		var paths []string
		for range benchFiles {
			p := filepath.Join(dir, uuid.NewString())
			if err := os.WriteFile(p, data, 0o600); err != nil {
				b.Fatal(err)
			}
			paths = append(paths, p)
		}
		for range b.N {
			b.StopTimer()
			bucket := s3env.CreateBucket(b)
			up := manager.NewUploader(s3env.NewClient(), func(u *manager.Uploader) {
				u.PartSize = benchPartSize
				u.Concurrency = benchConcurrency
			})
			b.StartTimer()
			var g errgroup.Group
			g.SetLimit(benchConcurrency)
			for _, p := range paths {
				g.Go(func() error {
					f, err := os.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = up.Upload(context.Background(), &awss3.PutObjectInput{
						Bucket: aws.String(bucket), Key: aws.String(filepath.Base(p)),
						Body: f, StorageClass: types.StorageClassGlacier, ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
					})
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		reportRSS(b)
	})
}

// reportRSS reports the process's peak RSS so far (proxy included; the
// S3 server is another process).
func reportRSS(b *testing.B) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
}
