package glacier

import (
	"log"
	"net/http/httptest"
	"net/url"
	"testing"
)

// Start runs a Proxy with default options in front of upstream (an S3
// server URL such as "http://127.0.0.1:7070") on a loopback httptest server
// and returns its URL; it is stopped when the test ends.
func Start(t testing.TB, upstream string) (proxyURL string) {
	t.Helper()
	u, _ := StartWith(t, upstream, Options{})
	return u
}

// StartWith is Start with options, returning the Proxy too so a test can
// inspect its state or inject faults.
func StartWith(t testing.TB, upstream string, opts Options) (proxyURL string, p *Proxy) {
	t.Helper()
	up, err := url.Parse(upstream)
	if err != nil || up.Host == "" {
		t.Fatalf("glacier: bad upstream URL %q: %v", upstream, err)
	}
	p = New(up, opts)
	srv := httptest.NewUnstartedServer(p)
	// Dropped connections (Fault.Drop) and clients that hang up are part
	// of the tests, not news.
	srv.Config.ErrorLog = log.New(discard{}, "", 0)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		p.CloseIdleConnections()
	})
	return srv.URL, p
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
