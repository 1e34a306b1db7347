package ui

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaver-raft/beaver-raft/internal/metrics"
)

// fakeSource is a clock and counters that a test moves by hand.
type fakeSource struct {
	now time.Time
	c   Counters
}

func (f *fakeSource) sampler() *sampler {
	return &sampler{read: func() Counters { return f.c }, clock: func() time.Time { return f.now }, interval: SampleInterval}
}

func (f *fakeSource) step(d time.Duration, inc Counters) {
	f.now = f.now.Add(d)
	f.c.Enqueued += inc.Enqueued
	f.c.Completed += inc.Completed
	f.c.Failed += inc.Failed
	f.c.Fsyncs += inc.Fsyncs
	f.c.Records += inc.Records
	f.c.WALBytes += inc.WALBytes
}

func TestSamplerRates(t *testing.T) {
	f := &fakeSource{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), c: Counters{Enqueued: 1000, Fsyncs: 50}}
	s := f.sampler()
	if st := s.stats(); len(st.Series.Enqueued) != 0 || !st.SampledAt.IsZero() || st.WAL.FsyncsPerSecond != 0 {
		t.Fatalf("before any sample: %+v", st)
	}
	s.sampleOnce() // the baseline: counters since the start are not a rate
	if st := s.stats(); len(st.Series.Enqueued) != 0 {
		t.Fatalf("after the baseline: %+v", st.Series)
	}
	f.step(time.Second, Counters{Enqueued: 5, Completed: 3, Failed: 1, Fsyncs: 4, Records: 12, WALBytes: 400})
	s.sampleOnce()
	// a late tick: the increase is spread over the time it covers
	f.step(2*time.Second, Counters{Enqueued: 10, Completed: 1, Fsyncs: 2, Records: 2, WALBytes: 100})
	s.sampleOnce()
	st := s.stats()
	if !slices.Equal(st.Series.Enqueued, []float64{5, 5}) || !slices.Equal(st.Series.Completed, []float64{3, 0.5}) ||
		!slices.Equal(st.Series.Failed, []float64{1, 0}) || !slices.Equal(st.Series.Fsyncs, []float64{4, 1}) {
		t.Errorf("series: %+v", st.Series)
	}
	if !st.SampledAt.Equal(f.now) || st.Interval != "1s" || st.Window != "15m0s" {
		t.Errorf("times: %+v", st)
	}
	// WAL rates over the 3 s sampled: 6 fsyncs, 14 records, 500 bytes
	if st.WAL.Over != "10s" || st.WAL.FsyncsPerSecond != 2 || st.WAL.RecordsPerFsync != 2.333 || st.WAL.BytesPerSecond != 166.667 {
		t.Errorf("WAL rates: %+v", st.WAL)
	}
}

// The ring keeps the last 15 minutes; the WAL rates cover the last 10
// samples only.
func TestSamplerWindow(t *testing.T) {
	f := &fakeSource{now: time.Unix(0, 0)}
	s := f.sampler()
	s.sampleOnce()
	const extra = 37
	for i := 1; i <= numSamples+extra; i++ {
		f.step(time.Second, Counters{Enqueued: float64(i), Fsyncs: 1, Records: float64(i % 2)})
		s.sampleOnce()
	}
	st := s.stats()
	if len(st.Series.Enqueued) != numSamples {
		t.Fatalf("%d samples kept, want %d", len(st.Series.Enqueued), numSamples)
	}
	for i, v := range st.Series.Enqueued {
		if want := float64(i + 1 + extra); v != want {
			t.Fatalf("sample %d is %v, want %v (oldest first)", i, v, want)
		}
	}
	if st.WAL.FsyncsPerSecond != 1 || st.WAL.RecordsPerFsync != 0.5 {
		t.Errorf("WAL rates over the last 10 samples: %+v", st.WAL)
	}
}

// A clock that does not move forward takes no sample; a counter that goes
// down counts as no increase.
func TestSamplerQuirks(t *testing.T) {
	f := &fakeSource{now: time.Unix(100, 0), c: Counters{Enqueued: 10, Fsyncs: 10}}
	s := f.sampler()
	s.sampleOnce()
	s.sampleOnce() // same instant
	f.now = f.now.Add(-time.Second)
	s.sampleOnce() // backwards
	if st := s.stats(); len(st.Series.Enqueued) != 0 {
		t.Fatalf("samples without time passing: %+v", st.Series)
	}
	f.now = f.now.Add(3 * time.Second) // 2 s after the baseline
	f.c.Enqueued = 4                   // went down
	f.c.Fsyncs = 14
	s.sampleOnce()
	if st := s.stats(); !slices.Equal(st.Series.Enqueued, []float64{0}) || !slices.Equal(st.Series.Fsyncs, []float64{2}) || st.WAL.RecordsPerFsync != 0 {
		t.Errorf("series: %+v %+v", st.Series, st.WAL)
	}
}

// Run samples until its context ends, then returns (goleak checks that
// nothing is left behind).
func TestRunStopsOnCancel(t *testing.T) {
	reads := make(chan struct{})
	s := &sampler{
		read:     func() Counters { reads <- struct{}{}; return Counters{} },
		clock:    time.Now,
		interval: time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	for range 3 {
		<-reads
	}
	cancel()
	for running := true; running; {
		select {
		case <-reads: // a tick that raced with the cancel
		case <-done:
			running = false
		}
	}
}

// Without counters, Run returns at once.
func TestRunWithoutCounters(t *testing.T) {
	u := New(Options{})
	done := make(chan struct{})
	go func() { u.Run(context.Background()); close(done) }()
	<-done
}

func TestMetricsCounters(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	read := MetricsCounters(m)
	if c := read(); c != (Counters{}) {
		t.Fatalf("fresh metrics: %+v", c)
	}
	m.Enqueued.WithLabelValues("a", "x").Add(3)
	m.Enqueued.WithLabelValues("b", "y").Add(2)
	m.Completed.WithLabelValues("a", "x").Add(4)
	m.AttemptsFailed.WithLabelValues("a", "x").Inc()
	m.AttemptsFailed.WithLabelValues("c", "z").Inc()
	m.ObserveSync(time.Millisecond)
	m.ObserveSync(2 * time.Millisecond)
	m.ObserveWrite(5, 100)
	m.ObserveWrite(3, 50)
	want := Counters{Enqueued: 5, Completed: 4, Failed: 2, Fsyncs: 2, Records: 8, WALBytes: 150}
	if c := read(); c != want {
		t.Errorf("counters %+v, want %+v", c, want)
	}
}
