package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// scenario names a workload; the same names as `beaver-raft bench`.
type scenario string

const (
	enqueue      scenario = "enqueue"
	enqueueBatch scenario = "enqueue-batch"
	e2e          scenario = "e2e"
	remote       scenario = "remote"
	// stream: jobs sent without waiting for their answers, each answered
	// on its own once durable (Beaver-Raft: POST /v1/jobs/stream;
	// JetStream: async publishes; beanstalkd: pipelined puts), from
	// Streams connections with up to Window in flight on each.
	stream scenario = "stream"
	// enqueueClient: Clients goroutines sharing one client (one
	// connection for JetStream, the Go client's Enqueue for Beaver-Raft,
	// which coalesces concurrent calls onto a stream), each waiting for
	// its own job's durable answer.
	enqueueClient scenario = "enqueue-client"
)

var allScenarios = []scenario{enqueue, enqueueClient, enqueueBatch, stream, e2e, remote}

// errUnsupported is returned by a system that has no way to run a
// scenario; the table shows n/a.
var errUnsupported = errors.New("not supported by this system")

// params shape every workload; every system gets the same.
type params struct {
	Jobs         int    `json:"jobs"`
	Clients      int    `json:"clients"`       // enqueue: concurrent single-job producers
	BatchClients int    `json:"batch_clients"` // enqueue-batch and e2e producers, fill of remote
	Consumers    int    `json:"consumers"`     // e2e consumers of the peers, remote workers
	Batch        int    `json:"batch"`         // jobs per batch request / pipeline / async window
	Streams      int    `json:"streams"`       // stream: connections
	Window       int    `json:"window"`        // stream: jobs in flight per connection (peers; Beaver-Raft's server bounds its own)
	LeaseMax     int    `json:"lease_max"`     // jobs per lease / fetch / consumer prefetch
	PayloadSize  int    `json:"payload_size"`
	Workers      int    `json:"beaver_workers"` // Beaver-Raft's in-process workers (e2e)
	Dir          string `json:"-"`              // parent of the temporary directories
	payload      []byte
}

// system is one queue server with one setting.
type system struct {
	Name    string `json:"system"`
	Setting string `json:"setting"`
	// Durable: every acknowledged write is fsynced first.
	Durable bool `json:"durable"`
	// run starts a fresh instance, runs the scenario on it, stops it, and
	// returns the jobs per second of the timed phase.
	run func(ctx context.Context, sc scenario, p params) (float64, error)
}

// work hands out a fixed number of jobs to concurrent producers.
type work struct {
	total int64
	next  atomic.Int64
}

// take claims up to n jobs and returns how many (0: no more).
func (w *work) take(n int) int {
	end := w.next.Add(int64(n))
	start := end - int64(n)
	if start >= w.total {
		return 0
	}
	return int(min(end, w.total) - start)
}

// finish records the time the last of total jobs was done.
type finish struct {
	total int64
	done  atomic.Int64
	once  sync.Once
	at    time.Time
	all   chan struct{}
}

func newFinish(total int) *finish { return &finish{total: int64(total), all: make(chan struct{})} }

// add counts n jobs done; the one that reaches total records the time.
func (f *finish) add(n int) {
	if f.done.Add(int64(n)) >= f.total {
		f.once.Do(func() { f.at = time.Now(); close(f.all) })
	}
}

func (f *finish) isDone() bool { return f.done.Load() >= f.total }

// group runs n goroutines and returns the first error; the context they
// see is canceled at the first error.
func group(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		wg.Go(func() {
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	return first
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// rate is jobs per second.
func rate(jobs int, d time.Duration) float64 { return float64(jobs) / d.Seconds() }

// errCount is returned when a run did fewer jobs than asked.
func errCount(what string, got, want int) error {
	return fmt.Errorf("%s: %d jobs, want %d", what, got, want)
}
