package leasing

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T) *local.Replica {
	t.Helper()
	r, err := local.Open(local.Options{Dir: t.TempDir(), NoSnapshotOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func propose(t *testing.T, r *local.Replica, c *fsm.Command) fsm.Result {
	t.Helper()
	c.Now = time.Now().UnixNano()
	res, err := r.Propose(context.Background(), c)
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	return res
}

func queueLease(queue string) func() *fsm.Command {
	return func() *fsm.Command {
		return &fsm.Command{Kind: fsm.KindLease, Now: time.Now().UnixNano(), Queues: []string{queue}, Max: 5, Worker: "w"}
	}
}

// A paused queue's pending jobs are not runnable: Try proposes nothing (an
// idle poll writes nothing to the log) and says no due time.
func TestTryProposesNothingForAPausedQueue(t *testing.T) {
	r := open(t)
	propose(t, r, &fsm.Command{Kind: fsm.KindSetQueue, Queue: &fsm.QueueChange{Queue: "q", Set: fsm.SetPaused, Settings: fsm.QueueSettings{Paused: true}}})
	propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Jobs: []fsm.JobSpec{{Queue: "q", Type: "t"}}})
	applied := r.Status().AppliedLSN
	turn, err := Try(context.Background(), r, queueLease("q")())
	if err != nil || turn.Proposed || turn.HasDue {
		t.Fatalf("Try on a paused queue: %+v, %v", turn, err)
	}
	if r.Status().AppliedLSN != applied {
		t.Fatal("Try wrote to the log for a paused queue")
	}
	// resuming wakes the waiters
	propose(t, r, &fsm.Command{Kind: fsm.KindSetQueue, Queue: &fsm.QueueChange{Queue: "q", Set: fsm.SetPaused}})
	select {
	case <-turn.Changed:
	default:
		t.Fatal("resuming the queue did not close Changed")
	}
	if turn, err := Try(context.Background(), r, queueLease("q")()); err != nil || len(turn.Result.Jobs) != 1 {
		t.Fatalf("Try after resume: %+v, %v", turn, err)
	}
}

// A queue whose rate window is used up tells waiters when it ends, and a
// long poll gets the next job then, though no command marks that moment.
func TestWaitWakesWhenTheRateWindowEnds(t *testing.T) {
	r := open(t)
	const period = 300 * time.Millisecond
	propose(t, r, &fsm.Command{Kind: fsm.KindSetQueue, Queue: &fsm.QueueChange{Queue: "q", Set: fsm.SetRate,
		Settings: fsm.QueueSettings{RateLimit: 1, RatePeriod: int64(period)}}})
	propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Jobs: []fsm.JobSpec{{Queue: "q", Type: "t"}, {Queue: "q", Type: "t"}}})
	first, err := Wait(context.Background(), r, 5*time.Second, queueLease("q"))
	if err != nil || len(first.Jobs) != 1 {
		t.Fatalf("first lease: %+v, %v", first, err)
	}
	opened := time.Unix(0, first.Jobs[0].StartedAt)
	turn, err := Try(context.Background(), r, queueLease("q")())
	if err != nil || turn.Proposed || !turn.HasDue || turn.Due <= 0 || turn.Due > period {
		t.Fatalf("Try inside the window: %+v, %v", turn, err)
	}
	second, err := Wait(context.Background(), r, 5*time.Second, queueLease("q"))
	if err != nil || len(second.Jobs) != 1 {
		t.Fatalf("second lease: %+v, %v", second, err)
	}
	if got := time.Unix(0, second.Jobs[0].StartedAt).Sub(opened); got < period || got > 3*time.Second {
		t.Fatalf("second lease %v after the first, want just after the %v window", got, period)
	}
}
