package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// countingReplica counts the pool's looks at the machine and its proposals.
type countingReplica struct {
	replica.Replica
	reads, proposals atomic.Int64
}

func (c *countingReplica) Read(fn func(m *fsm.Machine)) { c.reads.Add(1); c.Replica.Read(fn) }
func (c *countingReplica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	c.proposals.Add(1)
	return c.Replica.Propose(ctx, cmd)
}

// With runnable jobs that a queue's limits hold back, the pool waits: it
// neither spins on the machine nor proposes leases that get nothing, never
// runs more jobs of the queue than its concurrency limit, and leases the
// next job by itself once the rate window ends (no command marks that).
func TestPoolWaitsUnderQueueLimits(t *testing.T) {
	base := openReplica(t)
	r := &countingReplica{Replica: base}
	running, most := atomic.Int64{}, atomic.Int64{}
	release := make(chan struct{})
	started := make(chan time.Time, 10)
	hs := map[string]handlers.Handler{"t": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		started <- time.Now()
		<-release
		running.Add(-1)
		return nil, nil
	})}
	const period = 400 * time.Millisecond
	if _, err := base.Propose(context.Background(), &fsm.Command{Kind: fsm.KindSetQueue, Now: time.Now().UnixNano(), Queue: &fsm.QueueChange{
		Queue: "q", Set: fsm.SetConcurrency | fsm.SetRate, Settings: fsm.QueueSettings{Concurrency: 2, RateLimit: 3, RatePeriod: int64(period)}}}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, base, fsm.JobSpec{Queue: "q", Type: "t"}, fsm.JobSpec{Queue: "q", Type: "t"}, fsm.JobSpec{Queue: "q", Type: "t"}, fsm.JobSpec{Queue: "q", Type: "t"})
	p := New(Options{Replica: r, Handlers: hs, Workers: 8, MaxIdle: time.Hour})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	first := <-started
	<-started // two run: the concurrency limit
	reads, proposals := r.reads.Load(), r.proposals.Load()
	idle := time.NewTimer(150 * time.Millisecond) // watch the pool while it is held back
	<-idle.C
	if n := r.reads.Load() - reads; n > 5 {
		t.Fatalf("the pool looked at the machine %d times in 150ms while the queue was at its limit: it spins", n)
	}
	if n := r.proposals.Load() - proposals; n != 0 {
		t.Fatalf("the pool proposed %d commands while the queue was at its limit", n)
	}
	// both finish: the third job fills the rate window (3 per period)
	release <- struct{}{}
	release <- struct{}{}
	third := <-started
	// the fourth waits for the window to end, which no command announces
	release <- struct{}{}
	fourth := <-started
	// (the window opened at the first lease, a little before the first start)
	if third.Sub(first) >= period || fourth.Sub(first) < period-50*time.Millisecond || fourth.Sub(first) > period+2*time.Second {
		t.Fatalf("leases at +%v, +%v: want the third in the first window, the fourth right after it ends (%v)", third.Sub(first), fourth.Sub(first), period)
	}
	release <- struct{}{}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m > 2 {
		t.Fatalf("%d jobs of the queue ran at once under a concurrency limit of 2", m)
	}
}
