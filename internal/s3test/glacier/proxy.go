package glacier

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Storage classes the proxy gives archive behaviour to, and the tiers of
// RestoreObject.
const (
	ClassStandard    = "STANDARD"
	ClassGlacier     = "GLACIER"
	ClassDeepArchive = "DEEP_ARCHIVE"

	TierExpedited = "Expedited"
	TierStandard  = "Standard"
	TierBulk      = "Bulk"
)

// validClasses are the values AWS accepts in x-amz-storage-class.
var validClasses = map[string]bool{
	"STANDARD": true, "REDUCED_REDUNDANCY": true, "STANDARD_IA": true, "ONEZONE_IA": true,
	"INTELLIGENT_TIERING": true, "GLACIER": true, "DEEP_ARCHIVE": true, "OUTPOSTS": true,
	"GLACIER_IR": true, "SNOW": true, "EXPRESS_ONEZONE": true, "FSX_OPENZFS": true, "FSX_ONTAP": true,
}

// NeedsRestore reports whether objects of class must be restored before
// they can be read.
func NeedsRestore(class string) bool {
	return class == ClassGlacier || class == ClassDeepArchive
}

// DefaultDelays returns the restore delay per tier used when
// Options.Delays is nil: AWS's GLACIER times (Expedited 1–5 min, Standard
// 3–5 h, Bulk 5–12 h) scaled down so tests can wait for them.
func DefaultDelays() map[string]time.Duration {
	return map[string]time.Duration{
		TierExpedited: 1 * time.Second,
		TierStandard:  3 * time.Second,
		TierBulk:      5 * time.Second,
	}
}

// DefaultDay is the length of a restore "day" when Options.Day is zero: long
// enough that no test sees a restored copy expire unless it asks for that.
const DefaultDay = time.Hour

// Options configure a Proxy. The zero value is usable.
type Options struct {
	// Delays is how long a restore of a GLACIER object takes per tier. Nil
	// means DefaultDelays(); a tier missing from a non-nil map takes 0.
	Delays map[string]time.Duration
	// DeepArchiveDelays is the same for DEEP_ARCHIVE; nil means Delays.
	DeepArchiveDelays map[string]time.Duration
	// Day is how long one of RestoreObject's Days lasts (default
	// DefaultDay). With exactly 24h the expiry is rounded up to the next
	// midnight UTC, as AWS does.
	Day time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fault, when set, is asked about every request first; a non-nil Fault
	// is served instead of (or, for a pure delay, before) the request.
	Fault func(*http.Request) *Fault
	// AccessKeys, when set, are the only access key IDs accepted: a request
	// signed with another gets AWS's 403 InvalidAccessKeyId. (versitygw
	// answers 404 XAdminUserNotFound, which clients would take for a
	// missing bucket or key.) The signature itself is left to the upstream.
	AccessKeys []string
	// Logf, when set, receives upstream errors.
	Logf func(format string, args ...any)
}

// Proxy is an http.Handler that forwards S3 requests to an upstream server
// and adds Glacier behaviour (see the package documentation). It is safe for
// concurrent use.
type Proxy struct {
	upstream  *url.URL
	opts      Options
	rp        *httputil.ReverseProxy
	transport *http.Transport

	mu      sync.Mutex
	objects map[string]*object // by "bucket/key"
	uploads map[string]string  // multipart upload ID → storage class
	fault   func(*http.Request) *Fault
}

// object is what the proxy knows about one stored object.
type object struct {
	class   string
	restore *restoreState // nil: never restored (or restored copy expired)
}

// restoreState is one restore request's progress.
type restoreState struct {
	tier   string
	ready  time.Time // when the restored copy becomes readable
	expiry time.Time // when it goes away again
}

// New returns a Proxy in front of the S3 server at upstream (scheme and
// host are used; requests keep their path and query).
func New(upstream *url.URL, opts Options) *Proxy {
	if opts.Delays == nil {
		opts.Delays = DefaultDelays()
	}
	if opts.DeepArchiveDelays == nil {
		opts.DeepArchiveDelays = opts.Delays
	}
	if opts.Day <= 0 {
		opts.Day = DefaultDay
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Proxy{
		upstream: upstream,
		opts:     opts,
		objects:  make(map[string]*object),
		uploads:  make(map[string]string),
		fault:    opts.Fault,
	}
	// Bodies must pass byte for byte: no transparent gzip.
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	p.transport.DisableCompression = true
	p.rp = &httputil.ReverseProxy{
		// Rewrite, not the deprecated Director. Out.Host stays In.Host:
		// SigV4 signs the Host header, so changing it would make every
		// signature fail upstream.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = upstream.Scheme
			pr.Out.URL.Host = upstream.Host
		},
		Transport:      p.transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
	}
	return p
}

// SetFault replaces the fault hook (nil: no faults).
func (p *Proxy) SetFault(f func(*http.Request) *Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// CloseIdleConnections closes the proxy's idle connections to the upstream.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }

// ObjectState is the proxy's view of one object.
type ObjectState struct {
	// Class is the storage class the object was written with.
	Class string
	// Restore is the x-amz-restore header value now ("" when none).
	Restore string
}

// Object reports what the proxy knows about bucket/key; ok is false for
// objects it has not seen written (or has seen deleted).
func (p *Proxy) Object(bucket, key string) (st ObjectState, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objects[bucket+"/"+key]
	if o == nil {
		return ObjectState{}, false
	}
	return ObjectState{Class: o.class, Restore: o.restoreHeader(p.opts.Now())}, true
}

// op is the kind of S3 request, as far as the proxy cares.
type op int

const (
	opOther op = iota
	opPut
	opCopy
	opUploadPartCopy
	opCreateUpload
	opCompleteUpload
	opAbortUpload
	opHead
	opGet
	opDelete
	opDeleteObjects
	opDeleteBucket
	opList
	opRestore
)

// call is one request's classification, carried to modifyResponse in the
// request context.
type call struct {
	op       op
	bucket   string
	key      string
	uploadID string
	class    string // requested storage class (Put, Copy, CreateUpload)
	urlKeys  bool   // list keys are URL-encoded (encoding-type=url)
	restore  restoreRequest
}

type ctxKey struct{}

// classify works out what r is. Path-style addressing only.
func classify(r *http.Request) *call {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	c := &call{bucket: bucket, key: key}
	q := r.URL.Query()
	q.Del("x-id") // the SDK names the operation in the query; it is no subresource
	has := func(k string) bool { _, ok := q[k]; return ok }
	copySource := r.Header.Get("X-Amz-Copy-Source") != ""
	if bucket == "" {
		return c
	}
	if key == "" {
		switch r.Method {
		case http.MethodGet:
			switch {
			case has("list-type"), has("versions"), has("uploads"):
				c.op = opList
			default:
				c.op = opList
				for k := range q {
					switch k {
					case "prefix", "delimiter", "marker", "max-keys", "encoding-type":
					default:
						c.op = opOther // a bucket subresource (acl, policy, …)
					}
				}
			}
			c.urlKeys = q.Get("encoding-type") == "url"
		case http.MethodPost:
			if has("delete") {
				c.op = opDeleteObjects
			}
		case http.MethodDelete:
			if len(q) == 0 {
				c.op = opDeleteBucket
			}
		}
		return c
	}
	c.uploadID = q.Get("uploadId")
	switch r.Method {
	case http.MethodPut:
		switch {
		case has("uploadId") && has("partNumber"):
			if copySource {
				c.op = opUploadPartCopy
			}
		case len(q) == 0 && copySource:
			c.op = opCopy
		case len(q) == 0:
			c.op = opPut
		}
	case http.MethodPost:
		switch {
		case has("uploads"):
			c.op = opCreateUpload
		case has("uploadId"):
			c.op = opCompleteUpload
		case has("restore"):
			c.op = opRestore
		}
	case http.MethodDelete:
		switch {
		case has("uploadId"):
			c.op = opAbortUpload
		case !has("tagging"):
			c.op = opDelete
		}
	case http.MethodHead:
		c.op = opHead
	case http.MethodGet:
		c.op = opGet
		for _, sub := range []string{"acl", "tagging", "uploadId", "attributes", "retention", "legal-hold", "torrent"} {
			if has(sub) {
				c.op = opOther
			}
		}
	}
	if c.op == opPut || c.op == opCopy || c.op == opCreateUpload {
		c.class = r.Header.Get("X-Amz-Storage-Class")
		if c.class == "" {
			c.class = ClassStandard
		}
	}
	return c
}

// copySourceKey returns "bucket/key" of an x-amz-copy-source header value
// ("/bucket/key" or "bucket/key", URL-encoded, maybe "?versionId=…").
func copySourceKey(v string) string {
	v, _, _ = strings.Cut(v, "?versionId=")
	if u, err := url.PathUnescape(v); err == nil {
		v = u
	}
	return strings.TrimPrefix(v, "/")
}

// accessKeyID returns the access key ID a SigV4 request (header or
// presigned) is signed with, "" for unsigned requests.
func accessKeyID(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if a := r.Header.Get("Authorization"); a != "" {
		_, cred, _ = strings.Cut(a, "Credential=")
	}
	id, _, _ := strings.Cut(cred, "/")
	return id
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	faultFn := p.fault
	p.mu.Unlock()
	if faultFn != nil {
		if f := faultFn(r); f != nil {
			if !f.serve(w, r) {
				return
			}
		}
	}
	if len(p.opts.AccessKeys) > 0 {
		if id := accessKeyID(r); id != "" && !slices.Contains(p.opts.AccessKeys, id) {
			writeError(w, r, http.StatusForbidden, "InvalidAccessKeyId",
				"The AWS Access Key Id you provided does not exist in our records.", "")
			return
		}
	}
	c := classify(r)
	switch c.op {
	case opPut, opCopy, opCreateUpload:
		if !validClasses[c.class] {
			writeError(w, r, http.StatusBadRequest, "InvalidStorageClass",
				"The storage class you specified is not valid", "")
			return
		}
	}
	switch c.op {
	case opCopy, opUploadPartCopy:
		src := copySourceKey(r.Header.Get("X-Amz-Copy-Source"))
		if class, ok := p.unreadable(src); ok {
			// Refused before forwarding: forwarding would perform the copy.
			writeError(w, r, http.StatusForbidden, "InvalidObjectState",
				"The source object of the COPY action is not in the active tier and is only stored in Amazon S3 Glacier.", class)
			return
		}
	case opRestore:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "IncompleteBody", err.Error(), "")
			return
		}
		rr, err := parseRestoreRequest(body)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "MalformedXML",
				"The XML you provided was not well-formed or did not validate against our published schema", "")
			return
		}
		c.restore = rr
		// The upstream still sees the request, to check its signature;
		// modifyResponse answers it.
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
}

// unreadable reports whether the object at bucketKey is archived and not
// restored now, and its class.
func (p *Proxy) unreadable(bucketKey string) (class string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objects[bucketKey]
	if o == nil || !NeedsRestore(o.class) {
		return "", false
	}
	return o.class, o.phase(p.opts.Now()) != phaseRestored
}

// modifyResponse updates the proxy's state from the upstream's answer and
// rewrites the answer where Glacier behaves differently.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	c, _ := resp.Request.Context().Value(ctxKey{}).(*call)
	if c == nil {
		return nil
	}
	ok := resp.StatusCode/100 == 2
	bk := c.bucket + "/" + c.key
	// The answers whose bodies the proxy reads are small XML documents.
	var body []byte
	switch c.op {
	case opCopy, opCreateUpload, opCompleteUpload, opDeleteObjects, opList:
		if ok && resp.Header.Get("Content-Encoding") == "" {
			var err error
			if body, err = readBody(resp); err != nil {
				return err
			}
		}
	}
	// CopyObject and CompleteMultipartUpload can fail after their 200 with
	// an error body.
	failedLate := bytes.Contains(body, []byte("<Error>"))
	switch c.op {
	case opPut:
		if ok {
			p.store(bk, c.class)
		}
	case opCopy:
		if ok && !failedLate {
			p.store(bk, c.class)
		}
	case opCreateUpload:
		var res struct {
			UploadID string `xml:"UploadId"`
		}
		if ok && xml.Unmarshal(body, &res) == nil && res.UploadID != "" {
			p.mu.Lock()
			p.uploads[res.UploadID] = c.class
			p.mu.Unlock()
		}
	case opCompleteUpload:
		if ok && !failedLate {
			p.mu.Lock()
			class, known := p.uploads[c.uploadID]
			delete(p.uploads, c.uploadID)
			p.mu.Unlock()
			if !known {
				class = ClassStandard
			}
			p.store(bk, class)
		}
	case opAbortUpload:
		if ok || resp.StatusCode == http.StatusNotFound {
			p.mu.Lock()
			delete(p.uploads, c.uploadID)
			p.mu.Unlock()
		}
	case opDelete:
		if ok {
			p.mu.Lock()
			delete(p.objects, bk)
			p.mu.Unlock()
		}
	case opDeleteObjects:
		var res struct {
			Deleted []struct{ Key string } `xml:"Deleted"`
		}
		if ok && xml.Unmarshal(body, &res) == nil {
			p.mu.Lock()
			for _, d := range res.Deleted {
				delete(p.objects, c.bucket+"/"+d.Key)
			}
			p.mu.Unlock()
		}
	case opDeleteBucket:
		if ok {
			p.mu.Lock()
			for k := range p.objects {
				if strings.HasPrefix(k, c.bucket+"/") {
					delete(p.objects, k)
				}
			}
			p.mu.Unlock()
		}
	case opHead, opGet:
		if ok || resp.StatusCode == http.StatusNotModified {
			return p.objectResponse(resp, c, bk)
		}
	case opList:
		if body != nil {
			p.mu.Lock()
			out := rewriteList(body, c.urlKeys, func(key string) string {
				if o := p.objects[c.bucket+"/"+key]; o != nil {
					return o.class
				}
				return ""
			}, func(id string) string { return p.uploads[id] })
			p.mu.Unlock()
			setBody(resp, out)
		}
	case opRestore:
		// The upstream has checked the signature: a server that does not
		// implement RestoreObject answers 501 to a well-signed request.
		if ok || resp.StatusCode == http.StatusNotImplemented {
			resp.Body.Close()
			status, e := p.restore(bk, c.restore, p.opts.Now())
			if e != nil {
				replaceWithError(resp, status, e)
			} else {
				replace(resp, status, "", nil)
			}
		}
	}
	return nil
}

// objectResponse sets the storage-class and restore headers of a HEAD or
// GET answer, and refuses a GET of an archived object.
func (p *Proxy) objectResponse(resp *http.Response, c *call, bk string) error {
	p.mu.Lock()
	o := p.objects[bk]
	var class, restore string
	var ph phase
	if o != nil {
		now := p.opts.Now()
		class, restore, ph = o.class, o.restoreHeader(now), o.phase(now)
	}
	p.mu.Unlock()
	if o == nil {
		// Unknown to us: as the upstream says, minus AWS's silence about
		// STANDARD.
		if resp.Header.Get("X-Amz-Storage-Class") == ClassStandard {
			resp.Header.Del("X-Amz-Storage-Class")
		}
		return nil
	}
	if c.op == opGet && NeedsRestore(class) && ph != phaseRestored {
		resp.Body.Close()
		replaceWithError(resp, http.StatusForbidden, &s3Error{
			Code:         "InvalidObjectState",
			Message:      "The operation is not valid for the object's storage class",
			StorageClass: class,
			Resource:     "/" + bk,
		})
		return nil
	}
	if class == ClassStandard {
		resp.Header.Del("X-Amz-Storage-Class")
	} else {
		resp.Header.Set("X-Amz-Storage-Class", class)
	}
	if restore != "" {
		resp.Header.Set("X-Amz-Restore", restore)
	} else {
		resp.Header.Del("X-Amz-Restore")
	}
	return nil
}

// store records a newly written object: a new object has no restore.
func (p *Proxy) store(bk, class string) {
	p.mu.Lock()
	p.objects[bk] = &object{class: class}
	p.mu.Unlock()
}

// upstreamError answers when the upstream cannot be reached: 502, which
// the SDKs treat as transient.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if p.opts.Logf != nil {
		p.opts.Logf("glacier proxy: %s %s: %v", r.Method, r.URL.Path, err)
	}
	writeError(w, r, http.StatusBadGateway, "BadGateway", "glacier proxy: upstream: "+err.Error(), "")
}

// s3Error is the body of an S3 error response.
type s3Error struct {
	XMLName      xml.Name `xml:"Error"`
	Code         string   `xml:"Code"`
	Message      string   `xml:"Message"`
	StorageClass string   `xml:"StorageClass,omitempty"`
	Resource     string   `xml:"Resource,omitempty"`
	RequestID    string   `xml:"RequestId"`
}

func (e *s3Error) body() []byte {
	if e.RequestID == "" {
		e.RequestID = "glacier-proxy"
	}
	b, _ := xml.Marshal(e)
	return append([]byte(xml.Header), b...)
}

// writeError answers r with an S3 error (no body for HEAD).
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg, class string) {
	e := &s3Error{Code: code, Message: msg, StorageClass: class, Resource: r.URL.Path}
	body := e.body()
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// replaceWithError turns resp into an S3 error response.
func replaceWithError(resp *http.Response, status int, e *s3Error) {
	replace(resp, status, "application/xml", e.body())
}

// replace turns resp into a fresh response with status and body, keeping
// only the upstream's request-id headers.
func replace(resp *http.Response, status int, contentType string, body []byte) {
	h := http.Header{}
	for _, k := range []string{"X-Amz-Request-Id", "X-Amz-Id-2", "Date", "Server"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	resp.Header = h
	resp.Trailer = nil
	resp.StatusCode = status
	resp.Status = fmt.Sprintf("%d %s", status, http.StatusText(status))
	setBody(resp, body)
}

// setBody replaces resp's body with b.
func setBody(resp *http.Response, b []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
	resp.TransferEncoding = nil
}

// readBody reads resp's body and puts an unread copy back.
func readBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	setBody(resp, b)
	return b, nil
}
