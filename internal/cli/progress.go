package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// StderrIsTerminal reports whether stderr is a terminal.
func StderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// Progress redraws one status line on w every interval until Stop. The line
// comes from the line function, which gets the time since Start.
type Progress struct {
	w    io.Writer
	stop chan struct{}
	done sync.WaitGroup
	line func(elapsed time.Duration) string
	t0   time.Time
}

// StartProgress starts redrawing. Use it only when w is a terminal.
func StartProgress(w io.Writer, interval time.Duration, line func(elapsed time.Duration) string) *Progress {
	p := &Progress{w: w, stop: make(chan struct{}), line: line, t0: time.Now()}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprintf(p.w, "\r\x1b[K%s", p.line(time.Since(p.t0)))
			}
		}
	}()
	return p
}

// Stop stops redrawing and ends the line with a final state. Safe on nil.
func (p *Progress) Stop() {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	fmt.Fprintf(p.w, "\r\x1b[K%s\n", p.line(time.Since(p.t0)))
}

// Bytes formats n bytes for humans (binary units).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Rate formats n bytes over d as MB/s (decimal, as benchmarks report).
func Rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "- MB/s"
	}
	return fmt.Sprintf("%.0f MB/s", float64(n)/d.Seconds()/1e6)
}
