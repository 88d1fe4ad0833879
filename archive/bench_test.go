package archive_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/cryophile/cryophile/archive"
)

// discardSink counts and drops fragments: the benchmarks measure the
// pipeline, not a disk.
type discardSink struct{}

func (discardSink) Create(string) (archive.FragmentFile, error) { return discardFile{}, nil }

type discardFile struct{}

func (discardFile) Write(p []byte) (int, error) { return len(p), nil }
func (discardFile) Commit() error               { return nil }
func (discardFile) Abort() error                { return nil }

const benchSize = 64 << 20

var benchCases = []struct {
	name        string
	data        func(int) []byte
	compression string
}{
	{"compressible/zstd", compressible, archive.CompressionZstd},
	{"compressible/lz4", compressible, archive.CompressionLZ4},
	{"random/zstd", random, archive.CompressionZstd},
	{"random/none", random, archive.CompressionNone},
}

func BenchmarkWriter(b *testing.B) {
	k := newKey(b, "alice")
	for _, aead := range []bool{false, true} {
		for _, bc := range benchCases {
			b.Run(fmt.Sprintf("%s/aead=%v", bc.name, aead), func(b *testing.B) {
				data := bc.data(benchSize)
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					w, err := archive.NewWriter(discardSink{}, archive.WriterOptions{
						ID: testID(b), Recipients: k.cert, Compression: bc.compression, AEAD: aead,
						FragmentSize: 16 << 20,
					})
					if err != nil {
						b.Fatal(err)
					}
					for p := data; len(p) > 0; p = p[min(len(p), 1<<20):] {
						if _, err := w.Write(p[:min(len(p), 1<<20)]); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkReader(b *testing.B) {
	k := newKey(b, "alice")
	for _, aead := range []bool{false, true} {
		for _, bc := range benchCases {
			b.Run(fmt.Sprintf("%s/aead=%v", bc.name, aead), func(b *testing.B) {
				data := bc.data(benchSize)
				m, sink := backup(b, data, archive.WriterOptions{Recipients: k.cert, Compression: bc.compression, AEAD: aead, FragmentSize: 16 << 20})
				src := newMemSource(sink.committed)
				b.SetBytes(int64(len(data)))
				buf := make([]byte, 1<<20)
				for b.Loop() {
					r, err := archive.NewReader(b.Context(), src, m, k.secret)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(io.Discard, onlyReader{r}, buf); err != nil {
						b.Fatal(err)
					}
					r.Close()
				}
			})
		}
	}
}

type onlyReader struct{ io.Reader }
