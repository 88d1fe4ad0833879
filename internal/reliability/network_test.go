//go:build reliability

package reliability_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/internal/s3test/glacier"
)

// toxiproxy is a running toxiproxy-server driven over its HTTP API.
type toxiproxy struct {
	t   testing.TB
	api string
}

// startToxiproxy starts toxiproxy-server on a free loopback port; it is
// stopped when the test ends.
func startToxiproxy(t testing.TB) *toxiproxy {
	t.Helper()
	need(t, "toxiproxy-server")
	port := freePort(t)
	cmd := exec.Command("toxiproxy-server", "-host", "127.0.0.1", "-port", fmt.Sprint(port))
	var log syncBuf
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tp := &toxiproxy{t: t, api: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitFor(t, "toxiproxy's API", 10*time.Second, func() bool {
		r, err := http.Get(tp.api + "/version")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
	return tp
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// call sends one API request and decodes the answer into out (if not nil).
func (tp *toxiproxy) call(method, path string, body, out any) {
	tp.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, tp.api+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tp.t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		tp.t.Fatalf("toxiproxy %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		json.Unmarshal(b, out)
	}
}

// proxy creates a proxy to upstream (host:port) and returns its listen
// address.
func (tp *toxiproxy) proxy(name, upstream string) string {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(tp.t))
	tp.call("POST", "/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}, nil)
	return listen
}

// toxic adds a toxic to proxy name.
func (tp *toxiproxy) toxic(proxy, name, typ, stream string, attrs map[string]any) {
	tp.call("POST", "/proxies/"+proxy+"/toxics", map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs}, nil)
}

// clear removes every toxic of proxy.
func (tp *toxiproxy) clear(proxy string) {
	var toxics []struct {
		Name string `json:"name"`
	}
	tp.call("GET", "/proxies/"+proxy+"/toxics", nil, &toxics)
	for _, x := range toxics {
		tp.call("DELETE", "/proxies/"+proxy+"/toxics/"+x.Name, nil, nil)
	}
}

// TestNetworkFaults: freeze uploads and thaw downloads through toxiproxy
// (between the daemons and the Glacier proxy in front of versitygw) while
// seeded rounds of toxics come and go — reset_peer, timeout (black hole),
// latency, bandwidth, slow_close — and the Glacier proxy answers a schedule
// of 503 SlowDown and 500 InternalError. Every archive arrives in the vault
// and restores bit-identical; the requests the S3 side saw, and the retries
// the daemons logged, stay bounded.
func TestNetworkFaults(t *testing.T) {
	sc := begin(t, "3 network faults")
	need(t, "toxiproxy-server")
	var requests, faulted atomic.Int64
	sched := glacier.Schedule(func(r *http.Request) bool {
		requests.Add(1)
		return r.Method == http.MethodPut || r.Method == http.MethodGet || r.Method == http.MethodHead
	}, faults()...)
	s3env := s3test.StartWith(t, glacier.Options{Fault: func(r *http.Request) *glacier.Fault {
		f := sched(r)
		if f != nil && (f.Status != 0 || f.Drop) {
			faulted.Add(1)
		}
		return f
	}})
	tp := startToxiproxy(t)
	listen := tp.proxy("s3", strings.TrimPrefix(s3env.Endpoint, "http://"))

	e := newEnv(t, "", "")
	vault := uuid.NewString()
	e.writeConfig("[freeze]\nconcurrency = 2\n", fmt.Sprintf("[[vault]]\nid = %q\nurl = \"file://%s\"\nstorage_class = \"STANDARD\"\n\n"+
		"[[vault]]\nid = %q\nurl = \"s3://%s/net\"\nstorage_class = \"GLACIER\"\nendpoint = \"http://%s\"\npath_style = true\nregion = %q\n",
		vaultID, e.vault, vault, s3env.Bucket, listen, s3env.Region))
	e.osEnv = append(e.osEnv, "AWS_ACCESS_KEY_ID="+s3env.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3env.SecretKey)

	r := rng(t.Name())
	n := count(3, 8)
	type arch struct {
		id  archive.ID
		sum string
		n   int64
	}
	var archives []arch
	for i := range n {
		size := 2*mib + r.IntN(4*mib)
		d, sum := data(size, uint64(100+i))
		res := e.run(bytes.NewReader(d), "cryophile-backup", "--vault", vault, "--prefix", fmt.Sprintf("net/a%d", i), "--recipient", e.cert, "--size", "1M", "--compression", "none")
		if res.code != 0 {
			t.Fatalf("backup: %d %s", res.code, res.stderr)
		}
		id, _ := archive.ParseID(strings.TrimSpace(res.stdout))
		archives = append(archives, arch{id, sum, int64(size)})
	}

	// Rounds of toxics while the daemons work.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var rounds atomic.Int64
	kinds := []struct {
		typ    string
		stream string
		attrs  func() map[string]any
	}{
		{"reset_peer", "upstream", func() map[string]any { return map[string]any{"timeout": 50 + r.IntN(400)} }},
		{"timeout", "downstream", func() map[string]any { return map[string]any{"timeout": 500 + r.IntN(1500)} }},
		{"latency", "downstream", func() map[string]any { return map[string]any{"latency": 50 + r.IntN(300), "jitter": 50} }},
		{"bandwidth", "downstream", func() map[string]any { return map[string]any{"rate": 256 + r.IntN(1024)} }},
		{"bandwidth", "upstream", func() map[string]any { return map[string]any{"rate": 256 + r.IntN(1024)} }},
		{"slow_close", "downstream", func() map[string]any { return map[string]any{"delay": 200 + r.IntN(800)} }},
		{"limit_data", "downstream", func() map[string]any { return map[string]any{"bytes": 1000 + r.IntN(200000)} }},
	}
	used := map[string]int{}
	wg.Go(func() {
		for i := 0; ; i++ {
			k := kinds[i%len(kinds)]
			if i >= len(kinds) {
				k = kinds[r.IntN(len(kinds))]
			}
			tp.toxic("s3", fmt.Sprintf("t%d", i), k.typ, k.stream, k.attrs())
			used[k.typ+"/"+k.stream]++
			rounds.Add(1)
			select {
			case <-stop:
				tp.clear("s3")
				return
			case <-time.After(time.Duration(700+r.IntN(1300)) * time.Millisecond):
			}
			tp.clear("s3")
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+r.IntN(400)) * time.Millisecond):
			}
		}
	})
	t0 := time.Now()
	e.startDaemon("cryophile-freeze")
	e.startDaemon("cryophile-thaw")
	results := make([]result, len(archives))
	sums := make([]string, len(archives))
	sizes := make([]int64, len(archives))
	var rwg sync.WaitGroup
	for i, a := range archives {
		rwg.Go(func() {
			// restore waits for freeze to have uploaded the manifest:
			// thaw reports the archive missing until then, so wait here.
			deadline := time.Now().Add(4 * time.Minute)
			for time.Now().Before(deadline) {
				if _, err := s3env.Client.HeadObject(t.Context(), headInput(s3env.Bucket, "net/"+a.id.Key()+"/"+archive.ManifestName)); err == nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			results[i], sums[i], sizes[i] = e.restoreWithTimeout(a.id, 5*time.Minute, "--tier", "expedited")
		})
	}
	// Faults for at least 15 s (40 s in the long form), then a clean
	// network so that the rest can finish.
	time.Sleep(time.Duration(count(15, 40)) * time.Second)
	close(stop)
	wg.Wait()
	rwg.Wait()
	elapsed := time.Since(t0)
	for i, a := range archives {
		run := sc.run()
		if results[i].code != 0 || sums[i] != a.sum || sizes[i] != a.n {
			run.errorf("%s: exit %d, %d bytes (want %d), sha ok %v\n%s", a.id, results[i].code, sizes[i], a.n, sums[i] == a.sum, tail(results[i].stderr, 2000))
			continue
		}
		sc.checked(a.n)
	}
	retries := strings.Count(e.log("cryophile-freeze"), "retrying") + strings.Count(e.log("cryophile-thaw"), "retry")
	rate := float64(requests.Load()) / elapsed.Seconds()
	sc.note("%d toxic rounds %v, %d S3 faults injected, %d requests reached the S3 side (%.1f/s), %d retries logged in %v",
		rounds.Load(), used, faulted.Load(), requests.Load(), rate, retries, elapsed.Round(time.Second))
	// Bounded: backoff keeps the request rate far below a hot loop.
	if rate > 100 {
		t.Errorf("%.0f requests/s reached the S3 side: retries are not backing off", rate)
	}
	var frags int64
	for _, a := range archives {
		frags += (a.n + mib - 1) / mib
	}
	if retries > int(40*frags) {
		t.Errorf("%d retries for %d fragments", retries, frags)
	}
}

// faults is the Glacier proxy's schedule: SlowDown and InternalError
// answers spread over the first requests.
func faults() []glacier.Fault {
	var f []glacier.Fault
	for i := range 60 {
		switch i % 4 {
		case 0:
			f = append(f, glacier.SlowDown)
		case 2:
			f = append(f, glacier.InternalError)
		default:
			f = append(f, glacier.Fault{}) // forwarded
		}
	}
	return f
}

// restoreWithTimeout is restore with a deadline after which restore is
// killed.
func (e *env) restoreWithTimeout(id archive.ID, d time.Duration, args ...string) (result, string, int64) {
	out := filepath.Join(e.scratch(), "out")
	cmd := e.command("cryophile-restore", append(append(idArgs(id), "--key", e.secret, "--output", out), args...)...)
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}, "", 0
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	cmd.Wait()
	res := result{code: cmd.ProcessState.ExitCode(), stderr: errb.String()}
	f, err := os.Open(out)
	if err != nil {
		return res, "", 0
	}
	defer f.Close()
	return res, sum(f), fileSize(out)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func headInput(bucket, key string) *awss3.HeadObjectInput {
	return &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}
