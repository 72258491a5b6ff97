// Package backoff is the one retry delay of the agent: exponential from Min, capped at
// Max, jittered so that agents on many nodes do not retry in step. Every retry loop
// (the inventory's reconnects, outputs, log followers, span exporters) uses it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is one retry loop's delay. The zero value waits 250 ms, doubling to 30 s.
// It is not safe for concurrent use: each loop owns its own.
type Backoff struct {
	Min, Max time.Duration
	// Jitter is the relative spread around the delay: 0.2 (the default) waits between
	// 80 % and 120 % of it. Negative turns jitter off.
	Jitter   float64
	attempts int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Peek()
	b.attempts++
	return b.jitter(d)
}

// Peek is the delay the next attempt would wait, before jitter, without counting it.
func (b *Backoff) Peek() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := lo
	for i := 0; i < b.attempts && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

func (b *Backoff) jitter(d time.Duration) time.Duration {
	j := b.Jitter
	if j == 0 {
		j = 0.2
	}
	if j < 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}

// Attempts is the number of delays handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Reset starts again from Min, after a success.
func (b *Backoff) Reset() { b.attempts = 0 }

// Sleep waits Next(); it returns false, early, when ctx is done.
func (b *Backoff) Sleep(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
