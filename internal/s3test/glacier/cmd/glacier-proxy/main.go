// Command glacier-proxy runs the test-only Glacier-behaviour proxy
// (internal/s3test/glacier) as a process, in front of a local S3 server
// started by scripts/s3-server.sh, for `make demo` and manual testing:
//
//	scripts/s3-server.sh start /tmp/s3data 7070
//	go run ./internal/s3test/glacier/cmd/glacier-proxy -listen 127.0.0.1:7071 -upstream http://127.0.0.1:7070
//
// Point clients at the proxy (path-style) with the server's credentials.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cryophile/cryophile/internal/s3test/glacier"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("glacier-proxy: ")
	listen := flag.String("listen", "127.0.0.1:7071", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:7070", "URL of the S3 server")
	expedited := flag.Duration("expedited", time.Second, "restore delay of the Expedited tier")
	standard := flag.Duration("standard", 3*time.Second, "restore delay of the Standard tier")
	bulk := flag.Duration("bulk", 5*time.Second, "restore delay of the Bulk tier")
	day := flag.Duration("day", glacier.DefaultDay, "length of one restore day (restored copies live Days × this)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "glacier-proxy: error: unexpected arguments")
		os.Exit(64)
	}
	up, err := url.Parse(*upstream)
	if err != nil || up.Host == "" {
		fmt.Fprintf(os.Stderr, "glacier-proxy: error: bad -upstream %q\n", *upstream)
		os.Exit(64)
	}
	p := glacier.New(up, glacier.Options{
		Delays: map[string]time.Duration{
			glacier.TierExpedited: *expedited,
			glacier.TierStandard:  *standard,
			glacier.TierBulk:      *bulk,
		},
		Day:  *day,
		Logf: log.Printf,
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("error: %v", err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdown := make(chan struct{})
	go func() {
		defer close(shutdown)
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Printf("listening on http://%s, upstream %s", ln.Addr(), up)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("error: %v", err)
	}
	<-shutdown // in-flight requests finish before exit
}
