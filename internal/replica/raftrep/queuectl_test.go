package raftrep

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/worker"
)

// The queue controls through a follower of a three-node cluster: a pause,
// a concurrency and a rate limit, a unique_for window and the cancel of a
// job that an in-process worker pool on the other follower runs. Every
// command is forwarded to the leader and applied by every node; the nodes
// end with the same state (the settings and windows included).
func TestQueueControlsThroughAFollower(t *testing.T) {
	cancels := make([]*worker.Cancels, 3)
	c := newCluster(t, 3, func(i int, o *Options) {
		cancels[i] = worker.NewCancels()
		o.OnApply = cancels[i].Applied
	})
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	f, g := c.nodes[(l+1)%3], c.nodes[(l+2)%3]
	propose := func(r *Replica, cmd *fsm.Command) fsm.Result {
		t.Helper()
		cmd.Now = time.Now().UnixNano()
		res, err := r.Propose(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd.Kind, err)
		}
		return res
	}
	setQueue := func(r *Replica, set fsm.QueueFields, s fsm.QueueSettings) *fsm.QueueInfo {
		t.Helper()
		res := propose(r, &fsm.Command{Kind: fsm.KindSetQueue, Queue: &fsm.QueueChange{Queue: "q", Set: set, Settings: s}})
		if res.Err != nil || res.Queue == nil {
			t.Fatalf("set queue: %+v", res)
		}
		return res.Queue
	}
	lease := func(r *Replica, max int) []fsm.Job {
		t.Helper()
		res := propose(r, &fsm.Command{Kind: fsm.KindLease, Queues: []string{"q"}, Max: max, Worker: "w", LeaseFor: int64(time.Minute)})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return res.Jobs
	}

	// pause, through a follower: the forwarded answer carries the queue
	if q := setQueue(f, fsm.SetPaused, fsm.QueueSettings{Paused: true}); !q.Settings.Paused {
		t.Fatalf("pause: %+v", q)
	}
	jobs := make([]fsm.JobSpec, 4)
	for i := range jobs {
		jobs[i] = fsm.JobSpec{Queue: "q", Type: "t", Payload: "null"}
	}
	propose(f, &fsm.Command{Kind: fsm.KindEnqueue, Jobs: jobs})
	if got := lease(g, 4); len(got) != 0 {
		t.Fatalf("leased %d jobs of a paused queue", len(got))
	}
	// resume with a concurrency limit of 1 and a rate of 2 per hour
	setQueue(f, fsm.SetPaused|fsm.SetConcurrency|fsm.SetRate, fsm.QueueSettings{Concurrency: 1, RateLimit: 2, RatePeriod: int64(time.Hour)})
	first := lease(g, 4)
	if len(first) != 1 || len(lease(f, 4)) != 0 {
		t.Fatalf("concurrency 1: leased %d, then more", len(first))
	}
	res := propose(f, &fsm.Command{Kind: fsm.KindLease, Queues: []string{"q"}, Max: 4,
		Acks: []fsm.Ack{{ID: first[0].ID, LeaseID: first[0].LeaseID}}})
	if res.AckErrs[0] != nil || len(res.Jobs) != 1 {
		t.Fatalf("ack and lease: %+v", res)
	}
	second := res.Jobs[0]
	propose(g, &fsm.Command{Kind: fsm.KindAck, Acks: []fsm.Ack{{ID: second.ID, LeaseID: second.LeaseID}}})
	if got := lease(f, 4); len(got) != 0 {
		t.Fatalf("rate 2/h: a third lease got %d jobs", len(got))
	}

	// unique_for: the window holds across nodes
	res = propose(f, &fsm.Command{Kind: fsm.KindEnqueue, Jobs: []fsm.JobSpec{{Queue: "u", Type: "t", Payload: "null", UniqueKey: "msg", UniqueFor: int64(time.Hour)}}})
	uid := res.Enqueued[0].ID
	ul := propose(g, &fsm.Command{Kind: fsm.KindLease, Queues: []string{"u"}, Max: 1})
	propose(g, &fsm.Command{Kind: fsm.KindAck, Acks: []fsm.Ack{{ID: uid, LeaseID: ul.Jobs[0].LeaseID}}})
	res = propose(c.nodes[l], &fsm.Command{Kind: fsm.KindEnqueue, Jobs: []fsm.JobSpec{{Queue: "u", Type: "t", Payload: "null", UniqueKey: "msg"}}})
	if e := res.Enqueued[0]; !e.Duplicate || e.ID != uid || e.State != fsm.StateCompleted {
		t.Fatalf("re-enqueue within the window: %+v", e)
	}

	// cancel of a job that the pool on follower g runs: g applies the
	// cancel and its pool cancels the handler
	started := make(chan struct{})
	cause := make(chan error, 1)
	pool := worker.New(worker.Options{
		Replica: g, Workers: 1, Cancels: cancels[(l+2)%3], Queues: []string{"run"},
		Handlers: map[string]handlers.Handler{"block": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return []byte(`"done anyway"`), nil
		})},
	})
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(pctx) }()
	res = propose(f, &fsm.Command{Kind: fsm.KindEnqueue, Jobs: []fsm.JobSpec{{Queue: "run", Type: "block", Payload: "null"}}})
	rid := res.Enqueued[0].ID
	<-started
	if res := propose(f, &fsm.Command{Kind: fsm.KindCancel, ID: rid}); res.Err != nil || !res.CanceledRunning {
		t.Fatalf("cancel of the running job: %+v", res)
	}
	if err := <-cause; !errors.Is(err, worker.ErrJobCanceled) {
		t.Fatalf("the pool on the follower ended its handler with %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// the rejection crosses the wire as ErrCanceled
	var leaseID uint64
	g.Read(func(m *fsm.Machine) {
		j, _ := m.Get(rid)
		leaseID = j.LeaseID
	})
	if res := propose(f, &fsm.Command{Kind: fsm.KindAck, Acks: []fsm.Ack{{ID: rid, LeaseID: leaseID + 1}}}); !errors.Is(res.AckErrs[0], fsm.ErrCanceled) {
		t.Fatalf("forwarded report of a canceled job: %v", res.AckErrs[0])
	}

	c.sameState(20 * time.Second)
	for i, r := range c.nodes {
		r.Read(func(m *fsm.Machine) {
			q := m.QueueInfo("q")
			j, _ := m.Get(rid)
			if q.Settings.Concurrency != 1 || q.RateUsed != 2 || j.State != fsm.StateCanceled {
				t.Errorf("n%d: queue %+v, job %d %s", i+1, q, rid, j.State)
			}
		})
	}
}
