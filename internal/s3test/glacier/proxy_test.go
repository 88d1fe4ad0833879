package glacier_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryophile/cryophile/internal/s3test/glacier"
)

// clock is a fake time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeS3 is a minimal S3-ish upstream that, like versitygw, reports every
// object as STANDARD, serves every GET and answers RestoreObject with 501.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	hosts   []string
	uploads int
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts = append(f.hosts, r.Host)
	q := r.URL.Query()
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	switch {
	case r.Method == http.MethodGet && key == "" && q.Has("list-type"):
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>` + bucket + `</Name>`)
		for k := range f.objects {
			if bk, name, _ := strings.Cut(k, "/"); bk == bucket {
				fmt.Fprintf(&b, "<Contents><Key>%s</Key><Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>",
					escape(name), len(f.objects[k]))
			}
		}
		b.WriteString(`</ListBucketResult>`)
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, b.String())
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		src := strings.TrimPrefix(r.Header.Get("X-Amz-Copy-Source"), "/")
		f.objects[path] = f.objects[src]
		io.WriteString(w, `<CopyObjectResult><ETag>"x"</ETag></CopyObjectResult>`)
	case r.Method == http.MethodPut && q.Has("partNumber"):
		io.Copy(io.Discard, r.Body)
	case r.Method == http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		f.objects[path] = b
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.uploads++
		fmt.Fprintf(w, `<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>up-%d</UploadId></InitiateMultipartUploadResult>`,
			bucket, key, f.uploads)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		f.objects[path] = []byte("multipart")
		fmt.Fprintf(w, `<CompleteMultipartUploadResult><Key>%s</Key></CompleteMultipartUploadResult>`, key)
	case r.Method == http.MethodPost && q.Has("restore"):
		http.Error(w, "<Error><Code>NotImplemented</Code></Error>", http.StatusNotImplemented)
	case r.Method == http.MethodDelete:
		delete(f.objects, path)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet, r.Method == http.MethodHead:
		b, ok := f.objects[path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("X-Amz-Storage-Class", "STANDARD")
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// setup starts a fake upstream and a proxy in front of it.
func setup(t *testing.T, opts glacier.Options) (base string, p *glacier.Proxy, up *fakeS3) {
	t.Helper()
	up = &fakeS3{objects: map[string][]byte{}}
	us := httptest.NewServer(up)
	t.Cleanup(us.Close)
	base, p = glacier.StartWith(t, us.URL, opts)
	return base, p, up
}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, u string, header map[string]string, body string) result {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func restoreBody(days int, tier string) string {
	return fmt.Sprintf(`<RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Days>%d</Days>`+
		`<GlacierJobParameters><Tier>%s</Tier></GlacierJobParameters></RestoreRequest>`, days, tier)
}

func put(t *testing.T, base, key, class, body string) {
	t.Helper()
	h := map[string]string{}
	if class != "" {
		h["X-Amz-Storage-Class"] = class
	}
	if r := do(t, "PUT", base+"/b/"+key, h, body); r.status != 200 {
		t.Fatalf("PUT %s: status %d %s", key, r.status, r.body)
	}
}

func TestRestoreLifecycle(t *testing.T) {
	clk := newClock()
	day := time.Minute
	base, p, _ := setup(t, glacier.Options{Now: clk.Now, Day: day})
	put(t, base, "dir/chunk.000001", "GLACIER", "frozen bytes")
	obj := base + "/b/dir/chunk.000001"

	r := do(t, "HEAD", obj, nil, "")
	if got, want := r.header.Get("X-Amz-Storage-Class"), "GLACIER"; r.status != 200 || got != want {
		t.Fatalf("HEAD: status %d, class %q, want 200 %q", r.status, got, want)
	}
	if got := r.header.Get("X-Amz-Restore"); got != "" {
		t.Fatalf("HEAD before restore: x-amz-restore = %q, want none", got)
	}
	r = do(t, "GET", obj, nil, "")
	if r.status != 403 || !strings.Contains(r.body, "<Code>InvalidObjectState</Code>") ||
		!strings.Contains(r.body, "<StorageClass>GLACIER</StorageClass>") {
		t.Fatalf("GET archived: %d %s, want 403 InvalidObjectState", r.status, r.body)
	}

	if r = do(t, "POST", obj+"?restore", nil, restoreBody(2, "Bulk")); r.status != 202 {
		t.Fatalf("restore: %d %s, want 202", r.status, r.body)
	}
	if r = do(t, "POST", obj+"?restore", nil, restoreBody(2, "Bulk")); r.status != 409 ||
		!strings.Contains(r.body, "RestoreAlreadyInProgress") {
		t.Fatalf("restore again: %d %s, want 409 RestoreAlreadyInProgress", r.status, r.body)
	}
	if r = do(t, "POST", obj+"?restore", nil, restoreBody(2, "Standard")); r.status != 202 {
		t.Fatalf("upgrade to Standard: %d %s, want 202", r.status, r.body)
	}
	r = do(t, "HEAD", obj, nil, "")
	if got, want := r.header.Get("X-Amz-Restore"), `ongoing-request="true"`; got != want {
		t.Fatalf("HEAD while restoring: x-amz-restore = %q, want %q", got, want)
	}
	if r = do(t, "GET", obj, nil, ""); r.status != 403 {
		t.Fatalf("GET while restoring: %d, want 403", r.status)
	}

	// Standard takes 3 s by default: not done after 2.9 s, done at 3 s.
	clk.Advance(2900 * time.Millisecond)
	if st, _ := p.Object("b", "dir/chunk.000001"); st.Restore != `ongoing-request="true"` {
		t.Fatalf("after 2.9 s: restore %q, still ongoing wanted", st.Restore)
	}
	clk.Advance(100 * time.Millisecond)
	r = do(t, "HEAD", obj, nil, "")
	expiry := time.Date(2026, 3, 1, 10, 0, 3, 0, time.UTC).Add(2 * day)
	if got, want := r.header.Get("X-Amz-Restore"), glacier.RestoreHeader(false, expiry); got != want {
		t.Fatalf("HEAD after restore: x-amz-restore = %q, want %q", got, want)
	}
	if got, want := r.header.Get("X-Amz-Storage-Class"), "GLACIER"; got != want {
		t.Fatalf("class after restore = %q, want %q (the class stays)", got, want)
	}
	if r = do(t, "GET", obj, nil, ""); r.status != 200 || r.body != "frozen bytes" {
		t.Fatalf("GET restored: %d %q", r.status, r.body)
	}

	// A request on a restored copy extends it from now: 200.
	clk.Advance(day)
	if r = do(t, "POST", obj+"?restore", nil, restoreBody(3, "Bulk")); r.status != 200 {
		t.Fatalf("restore of restored: %d %s, want 200", r.status, r.body)
	}
	expiry = clk.Now().Add(3 * day)
	if st, _ := p.Object("b", "dir/chunk.000001"); st.Restore != glacier.RestoreHeader(false, expiry) {
		t.Fatalf("extended restore = %q, want expiry %v", st.Restore, expiry)
	}

	// Expiry: archived again, no header, GET refused.
	clk.Advance(3 * day)
	r = do(t, "HEAD", obj, nil, "")
	if got := r.header.Get("X-Amz-Restore"); got != "" {
		t.Fatalf("HEAD after expiry: x-amz-restore = %q, want none", got)
	}
	if r = do(t, "GET", obj, nil, ""); r.status != 403 {
		t.Fatalf("GET after expiry: %d, want 403", r.status)
	}
	if r = do(t, "POST", obj+"?restore", nil, restoreBody(1, "Expedited")); r.status != 202 {
		t.Fatalf("restore after expiry: %d, want 202", r.status)
	}
}

func TestRestoreUpgradeNeverSlows(t *testing.T) {
	clk := newClock()
	base, p, _ := setup(t, glacier.Options{Now: clk.Now, Delays: map[string]time.Duration{
		"Expedited": 10 * time.Second, "Standard": 3 * time.Second, "Bulk": 5 * time.Second}})
	put(t, base, "k", "GLACIER", "x")
	if r := do(t, "POST", base+"/b/k?restore", nil, restoreBody(1, "Standard")); r.status != 202 {
		t.Fatalf("restore: %d", r.status)
	}
	// An "upgrade" whose own delay is longer keeps the earlier finish.
	if r := do(t, "POST", base+"/b/k?restore", nil, restoreBody(1, "Expedited")); r.status != 202 {
		t.Fatalf("upgrade: %d", r.status)
	}
	clk.Advance(3 * time.Second)
	if st, _ := p.Object("b", "k"); !strings.Contains(st.Restore, `"false"`) {
		t.Fatalf("after 3 s: %q, want restored", st.Restore)
	}
}

func TestRestoreErrors(t *testing.T) {
	clk := newClock()
	base, _, _ := setup(t, glacier.Options{Now: clk.Now})
	for _, class := range []string{"", "STANDARD", "GLACIER_IR", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"} {
		put(t, base, "k-"+class, class, "x")
	}
	tests := []struct {
		key, body string
		status    int
		code      string
	}{
		{"k-", restoreBody(1, "Bulk"), 403, "InvalidObjectState"},
		{"k-STANDARD", restoreBody(1, "Bulk"), 403, "InvalidObjectState"},
		{"k-GLACIER_IR", restoreBody(1, "Bulk"), 403, "InvalidObjectState"},
		{"k-STANDARD_IA", restoreBody(1, "Standard"), 403, "InvalidObjectState"},
		{"k-DEEP_ARCHIVE", restoreBody(1, "Expedited"), 400, "InvalidArgument"},
		{"k-GLACIER", restoreBody(1, "Fast"), 400, "MalformedXML"},
		{"k-GLACIER", restoreBody(0, "Bulk"), 400, "InvalidArgument"},
		{"k-GLACIER", `<RestoreRequest><Days>1</Days>`, 400, "MalformedXML"},
		{"k-GLACIER", `<RestoreRequest><GlacierJobParameters><Tier>Bulk</Tier></GlacierJobParameters></RestoreRequest>`, 400, "InvalidArgument"},
		{"missing", restoreBody(1, "Bulk"), 404, "NoSuchKey"},
		{"k-DEEP_ARCHIVE", restoreBody(1, "Standard"), 202, ""},
		{"k-GLACIER", `<RestoreRequest><Days>1</Days></RestoreRequest>`, 202, ""}, // tier defaults to Standard
	}
	for _, tt := range tests {
		r := do(t, "POST", base+"/b/"+tt.key+"?restore", nil, tt.body)
		if r.status != tt.status || !strings.Contains(r.body, tt.code) {
			t.Errorf("restore %s %s: %d %s, want %d %s", tt.key, tt.body, r.status, r.body, tt.status, tt.code)
		}
	}
}

func TestDeepArchiveDelays(t *testing.T) {
	clk := newClock()
	base, p, _ := setup(t, glacier.Options{Now: clk.Now,
		DeepArchiveDelays: map[string]time.Duration{"Standard": 12 * time.Second, "Bulk": 48 * time.Second}})
	put(t, base, "g", "GLACIER", "x")
	put(t, base, "d", "DEEP_ARCHIVE", "x")
	for _, k := range []string{"g", "d"} {
		if r := do(t, "POST", base+"/b/"+k+"?restore", nil, restoreBody(1, "Standard")); r.status != 202 {
			t.Fatalf("restore %s: %d", k, r.status)
		}
	}
	clk.Advance(3 * time.Second)
	g, _ := p.Object("b", "g")
	d, _ := p.Object("b", "d")
	if !strings.Contains(g.Restore, `"false"`) || d.Restore != `ongoing-request="true"` {
		t.Fatalf("after 3 s: GLACIER %q, DEEP_ARCHIVE %q; want done, ongoing", g.Restore, d.Restore)
	}
}

func TestRestoreHeader(t *testing.T) {
	exp := time.Date(2012, 12, 21, 0, 0, 0, 0, time.UTC)
	if got, want := glacier.RestoreHeader(false, exp), `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`; got != want {
		t.Errorf("RestoreHeader(false) = %q, want %q", got, want)
	}
	if got, want := glacier.RestoreHeader(true, time.Time{}), `ongoing-request="true"`; got != want {
		t.Errorf("RestoreHeader(true) = %q, want %q", got, want)
	}
}

func TestExpiryRoundsToMidnightWithRealDays(t *testing.T) {
	clk := newClock() // 10:00 UTC
	base, p, _ := setup(t, glacier.Options{Now: clk.Now, Day: 24 * time.Hour,
		Delays: map[string]time.Duration{"Bulk": 5 * time.Hour}})
	put(t, base, "k", "GLACIER", "x")
	do(t, "POST", base+"/b/k?restore", nil, restoreBody(2, "Bulk"))
	clk.Advance(5 * time.Hour) // done at 15:00 on 1 March; +2 days = 3 March 15:00 → 4 March 00:00
	want := glacier.RestoreHeader(false, time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC))
	if st, _ := p.Object("b", "k"); st.Restore != want {
		t.Fatalf("restore = %q, want %q", st.Restore, want)
	}
}

func TestListRewritesClasses(t *testing.T) {
	base, _, _ := setup(t, glacier.Options{})
	put(t, base, "a&b", "GLACIER", "x")
	put(t, base, "plain", "", "x")
	put(t, base, "deep", "DEEP_ARCHIVE", "x")
	r := do(t, "GET", base+"/b?list-type=2", nil, "")
	for _, want := range []string{
		"<Contents><Key>a&amp;b</Key><Size>1</Size><StorageClass>GLACIER</StorageClass></Contents>",
		"<Contents><Key>plain</Key><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>",
		"<Contents><Key>deep</Key><Size>1</Size><StorageClass>DEEP_ARCHIVE</StorageClass></Contents>",
		`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("listing lacks %s:\n%s", want, r.body)
		}
	}
	if got, want := r.header.Get("Content-Length"), fmt.Sprint(len(r.body)); got != want {
		t.Errorf("Content-Length = %s, want %s", got, want)
	}
}

func TestMultipartAndCopyClasses(t *testing.T) {
	base, p, _ := setup(t, glacier.Options{})
	r := do(t, "POST", base+"/b/big?uploads", map[string]string{"X-Amz-Storage-Class": "DEEP_ARCHIVE"}, "")
	if r.status != 200 {
		t.Fatalf("create upload: %d", r.status)
	}
	do(t, "PUT", base+"/b/big?partNumber=1&uploadId=up-1", nil, "part")
	if r = do(t, "POST", base+"/b/big?uploadId=up-1", nil, "<CompleteMultipartUpload/>"); r.status != 200 {
		t.Fatalf("complete: %d", r.status)
	}
	if st, ok := p.Object("b", "big"); !ok || st.Class != "DEEP_ARCHIVE" {
		t.Fatalf("after multipart: %+v %v, want DEEP_ARCHIVE", st, ok)
	}

	// Copy of an archived source is refused until restored.
	r = do(t, "PUT", base+"/b/copy", map[string]string{"X-Amz-Copy-Source": "/b/big"}, "")
	if r.status != 403 || !strings.Contains(r.body, "InvalidObjectState") {
		t.Fatalf("copy of archived: %d %s, want 403 InvalidObjectState", r.status, r.body)
	}
	r = do(t, "PUT", base+"/b/part?partNumber=1&uploadId=up-9", map[string]string{"X-Amz-Copy-Source": "b/big"}, "")
	if r.status != 403 {
		t.Fatalf("upload part copy of archived: %d, want 403", r.status)
	}
	// Copy of a readable object: the destination takes the requested class,
	// STANDARD when none is given.
	put(t, base, "src", "", "data")
	do(t, "PUT", base+"/b/dst", map[string]string{"X-Amz-Copy-Source": "/b/src", "X-Amz-Storage-Class": "GLACIER"}, "")
	do(t, "PUT", base+"/b/dst2", map[string]string{"X-Amz-Copy-Source": "/b/src"}, "")
	if st, _ := p.Object("b", "dst"); st.Class != "GLACIER" {
		t.Errorf("copy with class: %q, want GLACIER", st.Class)
	}
	if st, _ := p.Object("b", "dst2"); st.Class != "STANDARD" {
		t.Errorf("copy without class: %q, want STANDARD", st.Class)
	}
	r = do(t, "HEAD", base+"/b/dst2", nil, "")
	if got := r.header.Get("X-Amz-Storage-Class"); got != "" {
		t.Errorf("HEAD of STANDARD: x-amz-storage-class = %q, want absent as on AWS", got)
	}
}

func TestInvalidStorageClass(t *testing.T) {
	base, _, _ := setup(t, glacier.Options{})
	r := do(t, "PUT", base+"/b/k", map[string]string{"X-Amz-Storage-Class": "BOGUS"}, "x")
	if r.status != 400 || !strings.Contains(r.body, "InvalidStorageClass") {
		t.Fatalf("PUT BOGUS: %d %s, want 400 InvalidStorageClass", r.status, r.body)
	}
}

func TestDeleteForgets(t *testing.T) {
	base, p, _ := setup(t, glacier.Options{})
	put(t, base, "k", "GLACIER", "x")
	if r := do(t, "DELETE", base+"/b/k", nil, ""); r.status != 204 {
		t.Fatalf("DELETE: %d", r.status)
	}
	if _, ok := p.Object("b", "k"); ok {
		t.Fatal("object still known after DELETE")
	}
	put(t, base, "k", "", "y")
	if r := do(t, "GET", base+"/b/k", nil, ""); r.status != 200 || r.body != "y" {
		t.Fatalf("GET of rewritten STANDARD object: %d %q", r.status, r.body)
	}
}

func TestHostHeaderKept(t *testing.T) {
	base, _, up := setup(t, glacier.Options{})
	put(t, base, "k", "", "x")
	u, _ := url.Parse(base)
	up.mu.Lock()
	defer up.mu.Unlock()
	if got, want := up.hosts[len(up.hosts)-1], u.Host; got != want {
		t.Fatalf("upstream saw Host %q, want the client's %q (SigV4 signs it)", got, want)
	}
}

func TestFaultSchedule(t *testing.T) {
	base, p, _ := setup(t, glacier.Options{})
	p.SetFault(glacier.Schedule(glacier.Method("PUT"), glacier.SlowDown, glacier.InternalError))
	for i, want := range []int{503, 500, 200} {
		r := do(t, "PUT", base+"/b/k", nil, "x")
		if r.status != want {
			t.Fatalf("PUT %d: %d, want %d", i, r.status, want)
		}
		if want == 503 && !strings.Contains(r.body, "<Code>SlowDown</Code>") {
			t.Fatalf("503 body %s lacks SlowDown", r.body)
		}
	}
	// Reset drops the connection: the client sees a transport error.
	p.SetFault(glacier.Schedule(nil, glacier.Reset))
	// A fresh connection: Go's transport silently retries an idempotent
	// request that failed on a reused one.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", base+"/b/k", nil)
	if resp, err := fresh.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("GET with Reset: status %d, want a transport error", resp.StatusCode)
	}
	if r := do(t, "GET", base+"/b/k", nil, ""); r.status != 200 {
		t.Fatalf("GET after the schedule: %d", r.status)
	}
}

func TestUpstreamDown(t *testing.T) {
	us := httptest.NewServer(http.NotFoundHandler())
	dead := us.URL
	us.Close()
	base := glacier.Start(t, dead)
	if r := do(t, "GET", base+"/b/k", nil, ""); r.status != 502 {
		t.Fatalf("GET with upstream down: %d, want 502", r.status)
	}
}

func TestUnknownAccessKey(t *testing.T) {
	base, _, _ := setup(t, glacier.Options{AccessKeys: []string{"AKID"}})
	sign := func(id string) map[string]string {
		return map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=" + id +
			"/20260301/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"}
	}
	if r := do(t, "PUT", base+"/b/k", sign("AKID"), "x"); r.status != 200 {
		t.Fatalf("PUT with known key: %d", r.status)
	}
	if r := do(t, "GET", base+"/b/k", sign("OTHER"), ""); r.status != 403 || !strings.Contains(r.body, "InvalidAccessKeyId") {
		t.Fatalf("GET with unknown key: %d %s, want 403 InvalidAccessKeyId", r.status, r.body)
	}
	if r := do(t, "GET", base+"/b/k?X-Amz-Credential=OTHER%2F20260301%2Fus-east-1%2Fs3%2Faws4_request", nil, ""); r.status != 403 {
		t.Fatalf("presigned GET with unknown key: %d, want 403", r.status)
	}
}
