package daemon

import (
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with jitter: each Next doubles the
// delay from Min up to Max and returns it ±20%, so that many pollers
// started together drift apart instead of hitting the service in step.
// The zero value is not useful; set Min and Max. Not safe for concurrent
// use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	switch {
	case b.cur <= 0:
		b.cur = b.Min
	default:
		b.cur *= 2
	}
	if b.cur > b.Max {
		b.cur = b.Max
	}
	return Jitter(b.cur)
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Jitter returns d ±20%.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	j := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + j
}
