package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Base: time.Second, Max: time.Minute}
	for _, tc := range []struct {
		n        int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, time.Second},
		{3, 0.5, 3 * time.Second, 3 * time.Second},
		{7, 0, 30 * time.Second, 30 * time.Second}, // 64s capped to 60s
		{1000, 0.999, 30 * time.Second, time.Minute},
		{0, 0, 500 * time.Millisecond, 500 * time.Millisecond},
	} {
		d := p.Delay(tc.n, tc.rnd)
		if d < tc.min || d > tc.max {
			t.Errorf("Delay(%d, %v) = %v, want in [%v, %v]", tc.n, tc.rnd, d, tc.min, tc.max)
		}
	}
	if d := (Policy{}).Delay(1, 0); d != DefaultBase/2 {
		t.Errorf("zero policy uses defaults: %v", d)
	}
}
