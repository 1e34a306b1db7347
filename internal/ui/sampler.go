package ui

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/metrics"
)

// What the sampler keeps.
const (
	// SampleInterval is the time between two samples.
	SampleInterval = time.Second
	// SampleWindow is how far back the series of GET /v1/stats go.
	SampleWindow = 15 * time.Minute
	numSamples   = int(SampleWindow / SampleInterval)
	// walRateSamples is the span of the WAL rates: the last 10 samples.
	walRateSamples = 10
)

// Counters are cumulative totals since the process started. The sampler
// turns their increases into per-second rates.
type Counters struct {
	Enqueued  float64 // jobs enqueued
	Completed float64 // attempts that completed
	Failed    float64 // attempts that failed (retried or not)
	Fsyncs    float64 // fdatasyncs of the WAL
	Records   float64 // records written to the WAL
	WALBytes  float64 // bytes written to the WAL
}

// MetricsCounters reads Counters from the server's Prometheus collectors
// (summed over their labels). It reads only those collectors, not the
// whole registry, so a sample costs little.
func MetricsCounters(m *metrics.Metrics) func() Counters {
	return func() Counters {
		var c Counters
		collect(m.Enqueued, func(d *dto.Metric) { c.Enqueued += d.GetCounter().GetValue() })
		collect(m.Completed, func(d *dto.Metric) { c.Completed += d.GetCounter().GetValue() })
		collect(m.AttemptsFailed, func(d *dto.Metric) { c.Failed += d.GetCounter().GetValue() })
		collect(m.WALSync, func(d *dto.Metric) { c.Fsyncs += float64(d.GetHistogram().GetSampleCount()) })
		collect(m.WALBatch, func(d *dto.Metric) { c.Records += d.GetHistogram().GetSampleSum() })
		collect(m.WALWritten, func(d *dto.Metric) { c.WALBytes += d.GetCounter().GetValue() })
		return c
	}
}

// collect calls fn with every metric of c. Collect sends on a channel, so
// it runs in a goroutine of its own that ends when Collect returns; collect
// returns after it.
func collect(c prometheus.Collector, fn func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			fn(&d)
		}
	}
}

// sampler keeps numSamples samples of the increases of Counters in a ring.
// Run samples; stats reads; both are safe to call concurrently.
type sampler struct {
	read     func() Counters // nil: no samples
	clock    func() time.Time
	interval time.Duration

	mu      sync.Mutex
	started bool // prev holds a baseline
	prev    Counters
	prevAt  time.Time
	ring    [numSamples]sample
	head, n int // oldest sample, number of samples

	readyAt       time.Time
	jobsRecovered int
}

// sample is what changed between two samplings.
type sample struct {
	at time.Time
	dt float64  // seconds since the previous sampling
	d  Counters // increases since the previous sampling
}

// run samples every interval until ctx is canceled.
func (s *sampler) run(ctx context.Context) {
	if s.read == nil {
		return
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.sampleOnce()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sampleOnce()
		}
	}
}

// sampleOnce reads the counters and records their increase since the
// previous call, divided by the time between the two, so that a late tick
// makes no spike. The first call only takes the baseline. A clock that did
// not move forward, or a counter that went down (it does not, but a
// counter source may be replaced), records nothing or zero for it.
func (s *sampler) sampleOnce() {
	now, c := s.clock(), s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started, s.prev, s.prevAt = true, c, now
		return
	}
	dt := now.Sub(s.prevAt).Seconds()
	if dt <= 0 {
		return
	}
	inc := func(now, before float64) float64 { return max(now-before, 0) }
	smp := sample{at: now, dt: dt, d: Counters{
		Enqueued:  inc(c.Enqueued, s.prev.Enqueued),
		Completed: inc(c.Completed, s.prev.Completed),
		Failed:    inc(c.Failed, s.prev.Failed),
		Fsyncs:    inc(c.Fsyncs, s.prev.Fsyncs),
		Records:   inc(c.Records, s.prev.Records),
		WALBytes:  inc(c.WALBytes, s.prev.WALBytes),
	}}
	if s.n < numSamples {
		s.ring[(s.head+s.n)%numSamples] = smp
		s.n++
	} else {
		s.ring[s.head] = smp
		s.head = (s.head + 1) % numSamples
	}
	s.prev, s.prevAt = c, now
}

// stats renders the samples for GET /v1/stats (the API adds the queues).
func (s *sampler) stats() api.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.Stats{
		Interval:      s.interval.String(),
		Window:        (time.Duration(numSamples) * s.interval).String(),
		ReadyAt:       s.readyAt,
		JobsRecovered: s.jobsRecovered,
		Series: api.StatsSeries{
			Enqueued:  make([]float64, s.n),
			Completed: make([]float64, s.n),
			Failed:    make([]float64, s.n),
			Fsyncs:    make([]float64, s.n),
		},
		WAL: api.WALRates{Over: (walRateSamples * s.interval).String()},
	}
	var wal sample // sums over the last walRateSamples samples
	for i := range s.n {
		smp := &s.ring[(s.head+i)%numSamples]
		out.Series.Enqueued[i] = round3(smp.d.Enqueued / smp.dt)
		out.Series.Completed[i] = round3(smp.d.Completed / smp.dt)
		out.Series.Failed[i] = round3(smp.d.Failed / smp.dt)
		out.Series.Fsyncs[i] = round3(smp.d.Fsyncs / smp.dt)
		if i >= s.n-walRateSamples {
			wal.dt += smp.dt
			wal.d.Fsyncs += smp.d.Fsyncs
			wal.d.Records += smp.d.Records
			wal.d.WALBytes += smp.d.WALBytes
		}
	}
	if s.n > 0 {
		out.SampledAt = s.ring[(s.head+s.n-1)%numSamples].at.UTC()
	}
	if wal.dt > 0 {
		out.WAL.FsyncsPerSecond = round3(wal.d.Fsyncs / wal.dt)
		out.WAL.BytesPerSecond = round3(wal.d.WALBytes / wal.dt)
	}
	if wal.d.Fsyncs > 0 {
		out.WAL.RecordsPerFsync = round3(wal.d.Records / wal.d.Fsyncs)
	}
	return out
}

func (s *sampler) recovered(at time.Time, jobs int) {
	s.mu.Lock()
	s.readyAt, s.jobsRecovered = at.UTC(), jobs
	s.mu.Unlock()
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
