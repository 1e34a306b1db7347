package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

type outcomes struct {
	mu  sync.Mutex
	got map[string]int
}

func (o *outcomes) Started(string, string, time.Duration) {}
func (o *outcomes) Finished(_, _ string, _ time.Duration, outcome string) {
	o.mu.Lock()
	o.got[outcome]++
	o.mu.Unlock()
}

func (o *outcomes) count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got[outcome]
}

// Canceling a job that the pool runs cancels its handler's context (cause
// ErrJobCanceled); the handler's outcome is not reported, so the job stays
// canceled even when the handler ignores its context and returns success;
// the slot is free again for the next job.
func TestPoolCancelsRunningJob(t *testing.T) {
	cancels := NewCancels()
	r, err := local.Open(local.Options{Dir: t.TempDir(), NoSnapshotOnClose: true, OnApply: cancels.Applied})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	started := make(chan string, 4)
	causes := make(chan error, 4)
	hs := map[string]handlers.Handler{
		"obedient": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			started <- j.ID
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return nil, ctx.Err()
		}),
		"stubborn": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			started <- j.ID
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return []byte(`"done anyway"`), nil
		}),
		"quick": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) { return nil, nil }),
	}
	obs := &outcomes{got: map[string]int{}}
	p := New(Options{Replica: r, Handlers: hs, Workers: 1, Cancels: cancels, Observer: obs})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	for _, typ := range []string{"obedient", "stubborn"} {
		id := enqueue(t, r, fsm.JobSpec{Type: typ, MaxAttempts: 5})[0]
		<-started
		res, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindCancel, Now: time.Now().UnixNano(), ID: id})
		if err != nil || res.Err != nil || !res.CanceledRunning {
			t.Fatalf("cancel of running job %d: %+v, %v", id, res, err)
		}
		if cause := <-causes; !errors.Is(cause, ErrJobCanceled) {
			t.Fatalf("%s handler's context ended with %v, want ErrJobCanceled", typ, cause)
		}
		// with one worker, the next job runs once the canceled one gave up its slot
		next := enqueue(t, r, fsm.JobSpec{Type: "quick"})[0]
		waitFor(t, r, func(m *fsm.Machine) bool { return state(m, next) == fsm.StateCompleted })
		r.Read(func(m *fsm.Machine) {
			if j, _ := m.Get(id); j.State != fsm.StateCanceled || j.Result != "" || j.Attempt != 1 {
				t.Fatalf("%s job after its cancel: %+v", typ, j)
			}
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := obs.count("canceled"); n != 2 {
		t.Fatalf("%d attempts finished as canceled, want 2 (%v)", n, obs.got)
	}
	if n := cancels.watching(); n != 0 {
		t.Fatalf("%d attempts still watched after Run returned", n)
	}
}

// A Cancel applied after the Lease but before the attempt was watched is
// found by the read at the start of the watch; a canceled state from
// before the attempt's own lease (a lagging follower) is not taken for one.
func TestWatchSeesAnEarlierCancel(t *testing.T) {
	cancels := NewCancels()
	r, err := local.Open(local.Options{Dir: t.TempDir(), NoSnapshotOnClose: true, OnApply: cancels.Applied})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := New(Options{Replica: r, Cancels: cancels})
	id := enqueue(t, r, fsm.JobSpec{Type: "t"})[0]
	seq := cancels.Seq()
	l, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindLease, Now: time.Now().UnixNano(), Types: []string{"t"}, Max: 1})
	if err != nil || len(l.Jobs) != 1 {
		t.Fatal(l, err)
	}
	if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindCancel, Now: time.Now().UnixNano(), ID: id}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := p.watch(l.Jobs[0], seq, cancel)
	if !errors.Is(context.Cause(ctx), ErrJobCanceled) {
		t.Fatalf("watch of an attempt canceled before it was watched: %v", context.Cause(ctx))
	}
	stop()
	future := l.Jobs[0]
	future.LeaseID += 10 // a lease this replica has not applied yet
	ctx, cancel = context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop = p.watch(future, seq, cancel)
	defer stop()
	if ctx.Err() != nil {
		t.Fatal("a canceled state from before the attempt's lease canceled it")
	}
}

// Two attempts of one job (an expired lease taken again while the first
// still runs) are both watched: a Cancel ends both, and each stops being
// watched on its own, whichever ends first.
func TestCancelsWatchesEveryAttemptOfAJob(t *testing.T) {
	for _, first := range []uint64{1, 2} {
		c := NewCancels()
		ctx1, cancel1 := context.WithCancelCause(context.Background())
		ctx2, cancel2 := context.WithCancelCause(context.Background())
		if c.add(7, 1, cancel1, c.Seq()) || c.add(7, 2, cancel2, c.Seq()) {
			t.Fatal("add reported a Cancel, none was applied")
		}
		seq := c.Seq()
		c.remove(7, first)
		if n := c.watching(); n != 1 {
			t.Fatalf("after removing lease %d: %d attempts watched, want 1", first, n)
		}
		c.Applied(nil, &fsm.Command{Kind: fsm.KindCancel, ID: 7}, &fsm.Result{})
		left, gone := ctx1, ctx2
		if first == 1 {
			left, gone = ctx2, ctx1
		}
		if !errors.Is(context.Cause(left), ErrJobCanceled) || gone.Err() != nil {
			t.Fatalf("removed lease %d: the Cancel ended %v and %v", first, context.Cause(left), gone.Err())
		}
		ctx3, cancel3 := context.WithCancelCause(context.Background())
		if !c.add(8, 3, cancel3, seq) {
			t.Fatal("add after an applied Cancel did not report it")
		}
		c.remove(7, 3-first)
		c.remove(8, 3)
		if n := c.watching(); n != 0 {
			t.Fatalf("%d attempts watched after every remove", n)
		}
		cancel1(nil)
		cancel2(nil)
		cancel3(nil)
		_ = ctx3
	}
}
