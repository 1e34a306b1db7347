package leasing

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/host"
)

// follower is a replica whose state lags: commands committed elsewhere
// (behind) reach its machine only when ReadBarrier catches up, as a
// cluster follower's do when its read index is applied.
type follower struct {
	h        *host.Host
	mu       sync.Mutex
	behind   []*fsm.Command
	barriers int
	leading  bool
}

func newFollower() *follower { return &follower{h: host.New(fsm.New(), 0, nil)} }

func (f *follower) Propose(_ context.Context, c *fsm.Command) (fsm.Result, error) {
	return f.h.Apply(f.h.Applied()+1, c, 0), nil
}
func (f *follower) Read(fn func(*fsm.Machine))       { f.h.Read(fn) }
func (f *follower) Changed() <-chan struct{}         { return f.h.Changed() }
func (f *follower) Status() replica.Status           { return replica.Status{Role: "follower"} }
func (f *follower) Close() error                     { return nil }
func (f *follower) Leading() (bool, <-chan struct{}) { return f.leading, nil }

func (f *follower) ReadBarrier(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.barriers++
	for _, c := range f.behind {
		f.h.Apply(f.h.Applied()+1, c, 0)
	}
	f.behind = nil
	return nil
}

func leaseCmd() *fsm.Command {
	return &fsm.Command{Kind: fsm.KindLease, Now: time.Now().UnixNano(), Queues: []string{"default"}, Max: 1, Worker: "w"}
}

func TestWaitWithoutWaitCatchesUpOnAFollower(t *testing.T) {
	f := newFollower()
	now := time.Now().UnixNano()
	f.behind = []*fsm.Command{{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "t"}}}}
	res, err := Wait(context.Background(), f, 0, leaseCmd)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("a poll through a lagging follower leased %d jobs, want the 1 committed before it", len(res.Jobs))
	}
	if f.barriers != 1 {
		t.Fatalf("%d read barriers, want 1", f.barriers)
	}

	// an empty cluster: one barrier, then the empty answer
	res, err = Wait(context.Background(), f, 0, leaseCmd)
	if err != nil || len(res.Jobs) != 0 || f.barriers != 2 {
		t.Fatalf("empty poll: %d jobs, %v, %d barriers", len(res.Jobs), err, f.barriers)
	}
}

func TestWaitOnTheLeaderNeedsNoBarrier(t *testing.T) {
	f := newFollower()
	f.leading = true
	res, err := Wait(context.Background(), f, 0, leaseCmd)
	if err != nil || len(res.Jobs) != 0 {
		t.Fatalf("%d jobs, %v", len(res.Jobs), err)
	}
	if f.barriers != 0 {
		t.Fatalf("the leader took %d read barriers", f.barriers)
	}
}
