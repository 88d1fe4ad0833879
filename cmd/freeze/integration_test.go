//go:build integration

package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/internal/testseed"
	"github.com/cryophile/cryophile/spool"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cryophile-freeze-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cryophile-freeze")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// setup is a spool, a configuration with one S3 vault and the local S3
// service behind it.
type setup struct {
	t      *testing.T
	s3     *s3test.Env
	vault  string
	spool  *spool.Spool
	config string
	env    []string
}

func newSetup(t *testing.T, bucket, secret string) *setup {
	t.Helper()
	s3env := s3test.Start(t)
	if bucket == "" {
		bucket = s3env.Bucket
	}
	if secret == "" {
		secret = s3env.SecretKey
	}
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir))
	if err != nil {
		t.Fatal(err)
	}
	s := &setup{t: t, s3: s3env, vault: uuid.NewString(), spool: sp, config: filepath.Join(t.TempDir(), "cryophile.toml")}
	conf := fmt.Sprintf(`spool = %q
[[vault]]
id = %q
url = "s3://%s"
endpoint = %q
path_style = true
region = %q
[freeze]
part_size = "5MiB"
multipart_threshold = "5MiB"
rescan = "1s"
`, dir, s.vault, bucket, s3env.Endpoint, s3env.Region)
	if err := os.WriteFile(s.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	s.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + s3env.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	return s
}

// command returns the daemon's command with the setup's configuration.
func (s *setup) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"--config", s.config}, args...)...)
	cmd.Env = s.env
	return cmd
}

// published is one archive published into the spool.
type published struct {
	id       archive.ID
	frags    [][]byte
	manifest []byte
}

// publish publishes a complete archive of n fragments of size bytes.
func (s *setup) publish(prefix string, n, size int) *published {
	s.t.Helper()
	id, err := archive.NewID(uuid.MustParse(s.vault), prefix, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	out, err := s.spool.NewOutbox(context.Background(), id, spool.Budget{})
	if err != nil {
		s.t.Fatal(err)
	}
	p := &published{id: id}
	m := &archive.Manifest{Format: archive.FormatVersion, BackupID: id.String(), Created: time.Now().UTC(),
		Compression: archive.CompressionNone, Encryption: archive.Encryption{Mode: archive.ModeSEIPDv1, Recipients: []string{"AB"}},
		FragmentSize: int64(size)}
	for i := range n {
		d := make([]byte, size)
		rand.Read(d)
		name := archive.FragmentName(i + 1)
		w, err := out.Create(name)
		if err != nil {
			s.t.Fatal(err)
		}
		w.Write(d)
		if err := w.Commit(); err != nil {
			s.t.Fatal(err)
		}
		sum := sha256.Sum256(d)
		m.Fragments = append(m.Fragments, archive.Fragment{Name: name, Size: int64(size), SHA256: hex.EncodeToString(sum[:])})
		m.CiphertextBytes += int64(size)
		p.frags = append(p.frags, d)
	}
	m.PlaintextBytes = m.CiphertextBytes
	if err := out.PublishManifest(m); err != nil {
		s.t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		s.t.Fatal(err)
	}
	p.manifest, _ = m.Marshal()
	return p
}

// objects returns the bucket's keys.
func (s *setup) objects() []string {
	s.t.Helper()
	var keys []string
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(s.s3.Bucket)}
	for {
		out, err := s.s3.Client.ListObjectsV2(context.Background(), in)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		if !aws.ToBool(out.IsTruncated) {
			return keys
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// checkComplete checks that every archive is in the bucket, byte for byte,
// with nothing else, and no multipart upload left.
func (s *setup) checkComplete(archives ...*published) {
	s.t.Helper()
	s.checkCompleteClasses(false, archives...)
}

// checkCompleteClasses is checkComplete. With killed, objects the Glacier
// proxy never saw written are accepted: a client killed after the server
// committed its PUT or CompleteMultipartUpload cancels the proxied request
// before the proxy reads the answer, so it cannot record the class (real
// S3 stores the class with the request). Objects it did see must have the
// right class.
func (s *setup) checkCompleteClasses(killed bool, archives ...*published) {
	s.t.Helper()
	unseen := 0
	want := map[string][]byte{}
	for _, p := range archives {
		for i, d := range p.frags {
			want[p.id.Key()+"/"+archive.FragmentName(i+1)] = d
		}
		want[p.id.Key()+"/"+archive.ManifestName] = p.manifest
	}
	keys := s.objects()
	if len(keys) != len(want) {
		s.t.Errorf("bucket holds %d objects, want %d: %q", len(keys), len(want), keys)
	}
	for key, d := range want {
		got, err := os.ReadFile(filepath.Join(s.s3.Server.Dir, s.s3.Bucket, filepath.FromSlash(key)))
		if err != nil || !bytes.Equal(got, d) {
			s.t.Errorf("%s on the server: %d bytes, %v; want the %d bytes published", key, len(got), err, len(d))
		}
		class := "GLACIER"
		if strings.HasSuffix(key, archive.ManifestName) {
			class = "STANDARD"
		}
		st, ok := s.s3.Proxy.Object(s.s3.Bucket, key)
		switch {
		case !ok && killed:
			unseen++
		case st.Class != class:
			s.t.Errorf("%s: class %q, want %s", key, st.Class, class)
		}
	}
	if unseen > 0 {
		s.t.Logf("%d objects committed by requests whose client was killed: class unknown to the proxy", unseen)
	}
	out, err := s.s3.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket)})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		s.t.Errorf("%d multipart uploads leaked", len(out.Uploads))
	}
	if dirs, err := s.spool.Archives(spool.QueueFreeze); err != nil || len(dirs) != 0 {
		s.t.Errorf("freeze/ still holds %d archives (%v)", len(dirs), err)
	}
}

// notifySocket listens where $NOTIFY_SOCKET points and collects messages.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// sun_path holds 108 bytes: keep it short.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan string, 1000)}
	n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
				n.msgs <- line
			}
		}
	}()
	return n
}

// next returns the next message that starts with prefix, skipping others
// (recorded in seen).
func (n *notifySocket) next(t *testing.T, prefix string, seen *[]string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed waiting for %s; saw %q", prefix, *seen)
			}
			*seen = append(*seen, m)
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within 20 s; saw %q", prefix, *seen)
		}
	}
}

// TestIntegrationDaemonNotify runs the daemon under a fake systemd: READY
// after the first scan, STATUS lines, WATCHDOG pings, STOPPING on SIGTERM,
// exit 0; a second instance exits 75 meanwhile.
func TestIntegrationDaemonNotify(t *testing.T) {
	s := newSetup(t, "", "")
	p := s.publish("host", 2, 100_000)
	n := listenNotify(t)
	cmd := s.command()
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=300000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var seen []string
	n.next(t, "READY=1", &seen)
	// The first scan came before READY: the first status counts the
	// archive published before the start.
	st := n.next(t, "STATUS=", &seen)
	if strings.HasPrefix(st, "STATUS=0 uploading, 0 pending, 0 archives waiting for a manifest; 0 fragments") {
		t.Errorf("first status after READY shows nothing to do: %q", st)
	}
	n.next(t, "WATCHDOG=1", &seen)
	n.next(t, "WATCHDOG=1", &seen)

	second := s.command()
	var stderr2 bytes.Buffer
	second.Stderr = &stderr2
	err := second.Run()
	if code := second.ProcessState.ExitCode(); code != 75 || !strings.Contains(stderr2.String(), "another cryophile-freeze is running") {
		t.Errorf("second instance: %v, exit %d, stderr %q; want 75 and a message", err, code, stderr2.String())
	}

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(strings.Join(seen, "\n"), "2 fragments and 1 archives done") && time.Now().Before(deadline) {
		n.next(t, "STATUS=", &seen)
	}
	s.checkComplete(p)

	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	n.next(t, "STOPPING=1", &seen)
	err = cmd.Wait()
	if err != nil || time.Since(t0) > 5*time.Second {
		t.Errorf("after SIGTERM: %v after %v, want exit 0 within 5 s\n%s", err, time.Since(t0), stderr.String())
	}
}

// TestIntegrationKill kills the daemon with SIGKILL at seeded random points
// while it uploads, restarts it, and checks that every archive ends in the
// vault complete and byte-identical, with no duplicate object and no leaked
// multipart upload, and that no fragment ever left the spool before it was
// in the vault.
func TestIntegrationKill(t *testing.T) {
	s := newSetup(t, "", "")
	// Every round publishes one more archive, so that most kills land in
	// the middle of uploads (multipart ones included).
	const rounds = 10
	var archives []*published
	for i := range rounds {
		archives = append(archives, s.publish(fmt.Sprintf("host%d", i), 3, 6<<20+i*1000))
	}
	archives = append(archives, s.publish("", 4, 300_000))

	// Watch the spool: a fragment that disappears must already be in the
	// vault with its size.
	stop := make(chan struct{})
	var violations []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		present := map[string]int64{}
		for {
			now := map[string]int64{}
			for _, p := range archives {
				dir := s.spool.Dir(spool.QueueFreeze, p.id)
				for i, d := range p.frags {
					if _, err := os.Lstat(filepath.Join(dir, archive.FragmentName(i+1))); err == nil {
						now[p.id.Key()+"/"+archive.FragmentName(i+1)] = int64(len(d))
					}
				}
			}
			for key, size := range present {
				if _, ok := now[key]; ok {
					continue
				}
				out, err := s.s3.Client.HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String(s.s3.Bucket), Key: aws.String(key)})
				if err != nil || aws.ToInt64(out.ContentLength) != size {
					violations = append(violations, fmt.Sprintf("%s left the spool before it was in the vault (%v)", key, err))
				}
			}
			present = now
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	rng := mrand.New(mrand.NewPCG(testseed.Seed(t, 20261125), 3))
	kills := 0
	for round := range rounds {
		cmd := s.command()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(20+rng.IntN(250)) * time.Millisecond
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			t.Fatalf("round %d: daemon exited by itself: %v\n%s", round, err, stderr.String())
		case <-time.After(delay):
		}
		cmd.Process.Kill()
		<-exited
		kills++
		t.Logf("round %d: killed after %v, %d uploads done", round, delay, strings.Count(stderr.String(), "msg=uploaded"))
	}
	leaked, err := s.s3.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d multipart uploads left by the kills", len(leaked.Uploads))
	final := s.command("--once")
	out, err := final.CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("--once after %d kills: %v\n%s", kills, err, out)
	}
	t.Logf("final run: %d uploaded, %d found already in the vault", strings.Count(string(out), "msg=uploaded"), strings.Count(string(out), "msg=\"already in vault\""))
	for _, v := range violations {
		t.Error(v)
	}
	s.checkCompleteClasses(true, archives...)
}

// TestIntegrationPermanentErrors: wrong credentials and a missing bucket
// make --once exit 69 with a message naming the problem, and the spool
// keeps everything.
func TestIntegrationPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name, bucket, secret, want string
	}{
		{"wrong-secret", "", "not-the-secret", "secret access key"},
		{"missing-bucket", "cryophile-missing", "", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, tc.bucket, tc.secret)
			p := s.publish("", 2, 1000)
			cmd := s.command("--once")
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 69 {
				t.Errorf("exit %d, want 69\n%s", code, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
			dir := s.spool.Dir(spool.QueueFreeze, p.id)
			for _, name := range []string{"chunk.000001", "chunk.000002", archive.ManifestName} {
				if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// TestIntegrationSigtermMidUpload stops the daemon while multipart uploads
// are in flight: exit 0 within a few seconds, the interrupted uploads
// aborted, every receipt backed by an object in the vault, every other
// fragment still in the spool; a later run completes the archive.
func TestIntegrationSigtermMidUpload(t *testing.T) {
	s := newSetup(t, "", "")
	p := s.publish("sigterm", 4, 12<<20)
	cmd := s.command("--concurrency", "2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := s.s3.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket)})
		if err == nil && len(out.Uploads) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no multipart upload started within 20 s\n%s", stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if err != nil || time.Since(t0) > 5*time.Second {
		t.Fatalf("after SIGTERM: %v after %v, want exit 0 within 5 s\n%s", err, time.Since(t0), stderr.String())
	}
	out, err := s.s3.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	// The daemon aborted what it knew of and swept before exiting, but a
	// CreateMultipartUpload cut short can still be carried out by the
	// server afterwards: the next start (and its final sweep) abort it.
	if len(out.Uploads) != 0 {
		t.Logf("%d multipart uploads left right after SIGTERM", len(out.Uploads))
	}
	dir := s.spool.Dir(spool.QueueFreeze, p.id)
	inVault := map[string]bool{}
	for _, k := range s.objects() {
		inVault[k] = true
	}
	for i := range p.frags {
		name := archive.FragmentName(i + 1)
		key := p.id.Key() + "/" + name
		_, rerr := os.Lstat(filepath.Join(dir, ".receipts", name+".json"))
		_, ferr := os.Lstat(filepath.Join(dir, name))
		switch {
		case rerr == nil && !inVault[key]:
			t.Errorf("%s receipted but not in the vault", name)
		case rerr != nil && ferr != nil:
			t.Errorf("%s neither receipted nor in the spool", name)
		}
	}
	t.Logf("stopped in %v with %d of %d fragments in the vault", time.Since(t0).Round(time.Millisecond), len(inVault), len(p.frags))
	final := s.command("--once", "-v")
	fout, err := final.CombinedOutput()
	if err != nil {
		t.Fatalf("--once: %v\n%s", err, fout)
	}
	s.checkComplete(p)
	if t.Failed() {
		t.Logf("daemon:\n%s\n--once:\n%s", stderr.String(), fout)
		if out, err := s.s3.Client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket)}); err == nil {
			for _, u := range out.Uploads {
				t.Logf("upload %s %s %v", aws.ToString(u.Key), aws.ToString(u.UploadId), aws.ToTime(u.Initiated))
			}
		}
	}
}

// TestIntegrationStatus: --status says freeze never ran (exit 69), then
// that it is running with what it did, then that it stopped.
func TestIntegrationStatus(t *testing.T) {
	s := newSetup(t, "", "")
	status := func() (code int, stdout, stderr string) {
		cmd := s.command("--status")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	if code, _, stderr := status(); code != 69 || !strings.Contains(stderr, "never ran on this spool") {
		t.Fatalf("--status before any run: exit %d, stderr %q; want 69 and \"never ran\"", code, stderr)
	}
	s.publish("host", 2, 10_000)
	cmd := s.command()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out, "2 fragments and 1 archives done") {
		if time.Now().After(deadline) {
			t.Fatalf("--status never showed the archive done:\n%s\ndaemon:\n%s", out, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
		var code int
		code, out, _ = status()
		if code != 0 {
			out = ""
		}
	}
	if !strings.Contains(out, fmt.Sprintf("cryophile-freeze: running, pid %d", cmd.Process.Pid)) || !strings.Contains(out, "ready: yes") {
		t.Errorf("--status:\n%s\nwant running with the daemon's pid, ready", out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	if code, out, _ := status(); code != 0 || !strings.Contains(out, fmt.Sprintf("cryophile-freeze: not running; last run: pid %d", cmd.Process.Pid)) {
		t.Errorf("--status after the stop: exit %d:\n%s\nwant not running, last run with the pid", code, out)
	}
}
