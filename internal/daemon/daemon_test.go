package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/cryophile/cryophile/internal/daemon"
)

func TestBackoff(t *testing.T) {
	b := daemon.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var last time.Duration
	for i := range 10 {
		d := b.Next()
		if d < 80*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("step %d: delay %v outside [80ms, 1.2s]", i, d)
		}
		last = d
	}
	if last < 800*time.Millisecond {
		t.Errorf("after 10 steps delay = %v, want about the 1s cap", last)
	}
	b.Reset()
	if d := b.Next(); d > 120*time.Millisecond {
		t.Errorf("after Reset delay = %v, want about 100ms", d)
	}
}

func TestLimiter(t *testing.T) {
	l := daemon.NewLimiter(100)
	start := time.Now()
	for range 21 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 190*time.Millisecond {
		t.Errorf("21 events at 100/s took %v, want at least 200ms", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		l.Wait(ctx) // reserve ahead
	}
	if err := l.Wait(ctx); err == nil {
		t.Error("Wait on a cancelled context with a delay ahead returned nil")
	}
}
