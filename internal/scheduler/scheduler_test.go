package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func setup(t *testing.T) (*local.Replica, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(1_000 * int64(time.Second))
	r, err := local.Open(local.Options{Dir: t.TempDir(), NoSnapshotOnClose: true, Clock: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, clk
}

func propose(t *testing.T, r *local.Replica, c *fsm.Command) fsm.Result {
	t.Helper()
	res, err := r.Propose(context.Background(), c)
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	return res
}

func TestTickOnce(t *testing.T) {
	r, clk := setup(t)
	s := New(Options{Replica: r, Clock: clk.now})
	now := clk.now().UnixNano()
	propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "a"}, {Type: "b", RunAt: now + int64(time.Minute)}}})
	l := propose(t, r, &fsm.Command{Kind: fsm.KindLease, Now: now, Types: []string{"a"}, Max: 1, LeaseFor: int64(10 * time.Second)})

	if more, err := s.TickOnce(context.Background()); err != nil || more {
		t.Fatal(more, err)
	}
	applied := r.Status().AppliedLSN
	if _, err := s.TickOnce(context.Background()); err != nil || r.Status().AppliedLSN != applied {
		t.Fatal("a tick with nothing due must not write to the log")
	}
	clk.add(11 * time.Second) // lease expired
	if _, err := s.TickOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Read(func(m *fsm.Machine) {
		j, _ := m.Get(l.Jobs[0].ID)
		if j.State != fsm.StatePending || j.LastError != "lease expired" {
			t.Fatalf("expired lease: %+v", j)
		}
	})
	clk.add(time.Minute) // scheduled job due
	s.TickOnce(context.Background())
	r.Read(func(m *fsm.Machine) {
		total, _ := m.Counts()
		if total.Count(fsm.StatePending) != 2 || total.Count(fsm.StateScheduled) != 0 {
			t.Fatalf("after promotion: %+v", total)
		}
	})
}

func TestPurgeOnce(t *testing.T) {
	r, clk := setup(t)
	s := New(Options{Replica: r, Clock: clk.now, Retention: fsm.Retention{Completed: int64(time.Hour), Canceled: int64(2 * time.Hour)}})
	now := clk.now().UnixNano()
	res := propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "a"}, {Type: "a"}}})
	l := propose(t, r, &fsm.Command{Kind: fsm.KindLease, Now: now, Types: []string{"a"}, Max: 1})
	propose(t, r, &fsm.Command{Kind: fsm.KindAck, Now: now, Acks: []fsm.Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID}}})
	propose(t, r, &fsm.Command{Kind: fsm.KindCancel, Now: now, ID: res.Enqueued[1].ID})

	applied := r.Status().AppliedLSN
	s.PurgeOnce(context.Background())
	if r.Status().AppliedLSN != applied {
		t.Fatal("nothing is past retention: no purge may be proposed")
	}
	clk.add(90 * time.Minute)
	s.PurgeOnce(context.Background())
	r.Read(func(m *fsm.Machine) {
		if m.Len() != 1 {
			t.Fatalf("after 90m: %d jobs, want the canceled one only", m.Len())
		}
	})
	clk.add(time.Hour)
	s.PurgeOnce(context.Background())
	r.Read(func(m *fsm.Machine) {
		if m.Len() != 0 {
			t.Fatalf("after 150m: %d jobs", m.Len())
		}
	})
}

func TestRunStops(t *testing.T) {
	r, clk := setup(t)
	s := New(Options{Replica: r, Clock: clk.now, TickEvery: time.Millisecond, PurgeEvery: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	cancel()
	<-done
}
