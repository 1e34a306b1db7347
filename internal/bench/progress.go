package bench

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar on a terminal while a phase runs.
// A nil *progress draws nothing; its methods are safe to call.
type progress struct {
	w     io.Writer
	label string
	total int64         // jobs, or 0 when the phase runs for dur
	dur   time.Duration // with total == 0
	start time.Time
	done  atomic.Int64
	stop  chan struct{}
	ended chan struct{}
}

// progressEvery is the redraw period.
const progressEvery = 200 * time.Millisecond

// startProgress starts drawing on w (nil: it returns nil). The goroutine
// it starts ends in end.
func startProgress(w io.Writer, label string, total int, dur time.Duration) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, label: label, total: int64(total), dur: dur, start: time.Now(),
		stop: make(chan struct{}), ended: make(chan struct{})}
	go p.loop()
	return p
}

// add counts n more jobs done.
func (p *progress) add(n int) {
	if p != nil {
		p.done.Add(int64(n))
	}
}

// end stops drawing and clears the line.
func (p *progress) end() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.ended
}

func (p *progress) loop() {
	defer close(p.ended)
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			fmt.Fprint(p.w, "\r\033[K")
			return
		case <-t.C:
			p.draw()
		}
	}
}

const barWidth = 30

func (p *progress) draw() {
	done := p.done.Load()
	elapsed := time.Since(p.start)
	var frac float64
	var count string
	if p.total > 0 {
		frac = float64(done) / float64(p.total)
		count = fmt.Sprintf("%d/%d", done, p.total)
	} else {
		frac = float64(elapsed) / float64(max(p.dur, 1))
		count = fmt.Sprintf("%d jobs, %s/%s", done, elapsed.Round(time.Second), p.dur)
	}
	frac = min(max(frac, 0), 1)
	n := int(frac * barWidth)
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r\033[K%-13s [%s%s] %3.0f%%  %s  %s jobs/s",
		p.label, strings.Repeat("#", n), strings.Repeat(".", barWidth-n), frac*100, count, thousands(rate))
}

// thousands formats v rounded, with commas: 1234567 → "1,234,567".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
