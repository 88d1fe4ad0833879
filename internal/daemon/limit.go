package daemon

import (
	"context"
	"sync"
	"time"
)

// Limiter spaces events at most perSecond per second, with no burst: AWS
// allows 1,000 RestoreObject requests per second per account and answers
// ThrottlingException beyond. (golang.org/x/time/rate would do, but is not
// a dependency of the module; this is the ten lines we need.) Safe for
// concurrent use.
type Limiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

// NewLimiter returns a limiter allowing perSecond events per second
// (perSecond <= 0: no limit).
func NewLimiter(perSecond int) *Limiter {
	l := &Limiter{}
	if perSecond > 0 {
		l.interval = time.Second / time.Duration(perSecond)
	}
	return l
}

// Wait blocks until the next event is allowed or ctx is done.
func (l *Limiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
