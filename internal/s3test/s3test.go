package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cryophile/cryophile/internal/s3test/glacier"
)

// The server scripts/s3-server.sh installs, and the test credentials it and
// this package use (fixed values, meaningful only on loopback).
const (
	VersitygwModule  = "github.com/versity/versitygw"
	VersitygwVersion = "v1.8.0"
	AccessKey        = "cryophile-test-access"
	SecretKey        = "cryophile-test-secret-key-0123456789"
	Region           = "us-east-1"
)

// Env is one local S3 service for one test.
type Env struct {
	// Endpoint is the URL clients use: the Glacier proxy.
	Endpoint string
	// Bucket is a fresh, empty bucket.
	Bucket string
	// AccessKey, SecretKey and Region are the credentials to sign with.
	AccessKey, SecretKey, Region string
	// Client is an S3 client for Endpoint, path-style, static credentials.
	Client *s3.Client
	// Proxy is the Glacier proxy, for inspecting state or injecting faults.
	Proxy *glacier.Proxy
	// Server is the versitygw process behind the proxy.
	Server *Server
}

// Start starts versitygw and the Glacier proxy with default options (see
// StartWith), creates a bucket and returns the Env; everything is stopped
// and removed when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, glacier.Options{})
}

// StartWith is Start with Glacier proxy options (a fake clock, restore
// delays, faults). Nil opts.AccessKeys becomes []string{AccessKey}.
func StartWith(t testing.TB, opts glacier.Options) *Env {
	t.Helper()
	srv := StartServer(t)
	if opts.AccessKeys == nil {
		opts.AccessKeys = []string{AccessKey}
	}
	endpoint, proxy := glacier.StartWith(t, srv.URL, opts)
	env := &Env{
		Endpoint:  endpoint,
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		Region:    Region,
		Proxy:     proxy,
		Server:    srv,
	}
	env.Client = env.NewClient()
	env.Bucket = env.CreateBucket(t)
	return env
}

// NewClient returns a new S3 client for the Env (path-style, the test
// credentials), with opts applied last: e.g. to change the credentials or
// the retryer.
func (e *Env) NewClient(opts ...func(*s3.Options)) *s3.Client {
	o := s3.Options{
		Region:       e.Region,
		BaseEndpoint: aws.String(e.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(e.AccessKey, e.SecretKey, ""),
	}
	return s3.New(o, opts...)
}

// CreateBucket creates another fresh bucket and returns its name.
func (e *Env) CreateBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "cryophile-test-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	return name
}

// Server is a versitygw process serving a posix data directory on
// 127.0.0.1. Stop and Restart let tests take the service away and bring it
// back (same port, same data).
type Server struct {
	// URL is the server's endpoint, http://127.0.0.1:PORT.
	URL string
	// Dir is the data directory (one subdirectory per bucket).
	Dir string

	t    testing.TB
	bin  string
	addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// Binary returns the path of the installed versitygw and an error saying
// how to install it when it is missing or not VersitygwVersion. It looks at
// $CRYOPHILE_VERSITYGW, then $GOBIN, then GOPATH/bin, then $PATH.
func Binary() (string, error) {
	var candidates []string
	if p := os.Getenv("CRYOPHILE_VERSITYGW"); p != "" {
		candidates = append(candidates, p)
	}
	if d := os.Getenv("GOBIN"); d != "" {
		candidates = append(candidates, filepath.Join(d, "versitygw"))
	}
	if gp := build.Default.GOPATH; gp != "" {
		candidates = append(candidates, filepath.Join(filepath.SplitList(gp)[0], "bin", "versitygw"))
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		candidates = append(candidates, p)
	}
	wrong := ""
	for _, p := range candidates {
		info, err := buildinfo.ReadFile(p)
		if err != nil || info.Path != VersitygwModule+"/cmd/versitygw" {
			continue
		}
		if info.Main.Version == VersitygwVersion {
			return p, nil
		}
		wrong = fmt.Sprintf(" (%s is %s)", p, info.Main.Version)
	}
	return "", fmt.Errorf("versitygw %s is not installed%s (looked in %s): run scripts/s3-server.sh install",
		VersitygwVersion, wrong, strings.Join(candidates, ", "))
}

// StartServer starts versitygw on a free loopback port with a data
// directory under t.TempDir() and stops it when the test ends. It skips the
// test when versitygw is not installed, or fails it under
// CRYOPHILE_INTEGRATION=1.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CRYOPHILE_INTEGRATION") != "" {
			t.Fatalf("s3test: %v", err)
		}
		t.Skipf("s3test: %v", err)
	}
	s := &Server{t: t, bin: bin, Dir: t.TempDir()}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("s3test: %v", err)
		}
	})
	// The free port is found by binding :0 and letting it go; another
	// process may grab it in between, so try a few.
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("s3test: find a free port: %v", err)
		}
		s.addr = ln.Addr().String()
		ln.Close()
		s.URL = "http://" + s.addr
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("s3test: %v", err)
		}
	}
}

// start runs versitygw on s.addr and waits until it answers HTTP.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("versitygw already running on %s", s.addr)
	}
	s.log = &syncBuffer{}
	cmd := exec.Command(s.bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", s.addr, "--quiet", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Any answer will do: an unsigned request gets 403.
		if resp, err := client.Get(s.URL + "/"); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("versitygw on %s exited at start-up: %s", s.addr, s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("versitygw on %s did not answer within 15 s: %s", s.addr, s.log.String())
		}
	}
	s.cmd, s.done = cmd, done
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s). Stopping a
// stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	select {
	case <-done:
		return fmt.Errorf("versitygw on %s had died: %v: %s", s.addr, cmd.ProcessState, s.log.String())
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	return nil
}

// Restart starts a stopped server again on the same address and data
// directory.
func (s *Server) Restart() error {
	return s.start()
}

// syncBuffer collects a process's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 64<<10 {
		return len(p), nil // enough to diagnose; keep memory bounded
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.b.String())
}
