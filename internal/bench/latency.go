package bench

import (
	"slices"
	"sync"
	"time"
)

// Latency summarises one distribution of latencies.
type Latency struct {
	// Name says what was timed: "request", "job" (a batch request's time
	// divided by its jobs), "lease", "ack", "enqueue", "line" (a stream's
	// line from written to answered).
	Name  string        `json:"name"`
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// recorder collects latencies from many goroutines. Each goroutine takes
// its own shard (so recording takes no lock), and summary merges them.
type recorder struct {
	name   string
	mu     sync.Mutex
	shards []*shard
}

type shard struct{ d []time.Duration }

func newRecorder(name string) *recorder { return &recorder{name: name} }

// shard returns a new shard for one goroutine's recordings.
func (r *recorder) shard() *shard {
	s := &shard{d: make([]time.Duration, 0, 1024)}
	r.mu.Lock()
	r.shards = append(r.shards, s)
	r.mu.Unlock()
	return s
}

func (s *shard) add(d time.Duration) { s.d = append(s.d, d) }

// summary sorts everything recorded and reads its percentiles. Call it once
// the recording goroutines have stopped.
func (r *recorder) summary() Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.shards {
		n += len(s.d)
	}
	all := make([]time.Duration, 0, n)
	for _, s := range r.shards {
		all = append(all, s.d...)
	}
	return summarize(r.name, all)
}

// summarize reads the percentiles of d (nearest rank); it sorts d.
func summarize(name string, d []time.Duration) Latency {
	l := Latency{Name: name, Count: len(d)}
	if len(d) == 0 {
		return l
	}
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.5) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	l.P50, l.P90, l.P99, l.Max = q(0.50), q(0.90), q(0.99), d[len(d)-1]
	return l
}
