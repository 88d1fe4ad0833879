package glacier

import (
	"net/http"
	"sync"
	"time"
)

// Fault is a failure the proxy serves instead of forwarding a request.
type Fault struct {
	// Delay is waited first (cut short if the client goes away). A Fault
	// with only a Delay then forwards the request: injected latency.
	Delay time.Duration
	// Drop closes the connection without an answer, like a reset.
	Drop bool
	// Status, Code and Message make an S3 error answer (e.g. 503 SlowDown).
	Status  int
	Code    string
	Message string
}

// Common faults.
var (
	// SlowDown is S3's throttling answer.
	SlowDown = Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown", Message: "Please reduce your request rate."}
	// InternalError is S3's transient server error.
	InternalError = Fault{Status: http.StatusInternalServerError, Code: "InternalError",
		Message: "We encountered an internal error. Please try again."}
	// ServiceUnavailable is a 503 without throttling.
	ServiceUnavailable = Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
		Message: "Service is unable to handle request."}
	// Reset drops the connection.
	Reset = Fault{Drop: true}
)

// serve applies f to the request and reports whether it should still be
// forwarded.
func (f *Fault) serve(w http.ResponseWriter, r *http.Request) (forward bool) {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	switch {
	case f.Drop:
		// The server closes the connection without writing a response.
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		writeError(w, r, f.Status, f.Code, f.Message, "")
		return false
	}
	return true
}

// Schedule returns a fault hook that answers the requests for which match
// returns true (all requests if match is nil) with faults in order, one
// fault per matching request, then lets every later request through. It is
// safe for concurrent use; Hits-style counting can be done in match.
func Schedule(match func(*http.Request) bool, faults ...Fault) func(*http.Request) *Fault {
	var mu sync.Mutex
	next := 0
	return func(r *http.Request) *Fault {
		if match != nil && !match(r) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if next >= len(faults) {
			return nil
		}
		f := faults[next]
		next++
		return &f
	}
}

// Method returns a matcher for Schedule: requests with the given HTTP method
// (e.g. "PUT" for uploads and parts).
func Method(method string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method }
}
