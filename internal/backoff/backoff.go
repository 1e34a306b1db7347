// Package backoff computes when a failed job runs again. The jitter is drawn
// here, by the proposer, never by the state machine.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Defaults match the configuration defaults (retry.base, retry.max).
const (
	DefaultBase = time.Second
	DefaultMax  = time.Hour
)

// Policy is exponential backoff with "equal jitter": the delay before attempt
// n+1, after attempt n (n >= 1) failed, is
//
//	d = min(Max, Base * 2^(n-1))
//	delay = d/2 + uniform[0, d/2)
//
// so retries of many jobs that failed together spread out, and no delay is
// shorter than half of the exponential step.
type Policy struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the delay after attempt n failed; rnd is uniform in [0, 1).
func (p Policy) Delay(n int, rnd float64) time.Duration {
	base, maxd := p.Base, p.Max
	if base <= 0 {
		base = DefaultBase
	}
	if maxd <= 0 {
		maxd = DefaultMax
	}
	if n < 1 {
		n = 1
	}
	d := base
	for i := 1; i < n && d < maxd; i++ {
		d *= 2
	}
	if d > maxd || d <= 0 {
		d = maxd
	}
	half := d / 2
	return half + time.Duration(rnd*float64(d-half))
}

// Next is Delay with a random draw.
func (p Policy) Next(n int) time.Duration { return p.Delay(n, rand.Float64()) }
