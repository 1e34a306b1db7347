package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openReplica(t *testing.T) *local.Replica {
	t.Helper()
	r, err := local.Open(local.Options{Dir: t.TempDir(), NoSnapshotOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func enqueue(t *testing.T, r *local.Replica, specs ...fsm.JobSpec) []uint64 {
	t.Helper()
	res, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(), Jobs: specs})
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	var ids []uint64
	for _, e := range res.Enqueued {
		ids = append(ids, e.ID)
	}
	return ids
}

// waitFor blocks until cond holds, re-checking after every applied change.
func waitFor(t *testing.T, r *local.Replica, cond func(m *fsm.Machine) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := r.Changed()
		ok := false
		r.Read(func(m *fsm.Machine) { ok = cond(m) })
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatal("condition not reached")
		}
	}
}

func state(m *fsm.Machine, id uint64) fsm.State {
	j, _ := m.Get(id)
	return j.State
}

func TestPoolRunsJobs(t *testing.T) {
	r := openReplica(t)
	var mu sync.Mutex
	attempts := map[string]int{}
	hs := map[string]handlers.Handler{
		"ok": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			return []byte("plain text"), nil
		}),
		"flaky": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			mu.Lock()
			attempts[j.ID]++
			n := attempts[j.ID]
			mu.Unlock()
			if n < 3 {
				return nil, errors.New("not yet")
			}
			return []byte(`{"n":3}`), nil
		}),
		"panic": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			panic("boom")
		}),
		"permanent": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			return nil, handlers.Permanent(errors.New("bad payload"))
		}),
		"slow": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			<-ctx.Done() // only the attempt's timeout ends it
			return nil, ctx.Err()
		}),
	}
	p := New(Options{Replica: r, Handlers: hs, Workers: 4, Retry: backoff.Policy{Base: time.Millisecond, Max: 2 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	ids := enqueue(t, r,
		fsm.JobSpec{Type: "ok"},
		fsm.JobSpec{Type: "flaky", MaxAttempts: 5},
		fsm.JobSpec{Type: "panic", MaxAttempts: 2},
		fsm.JobSpec{Type: "permanent"},
		fsm.JobSpec{Type: "slow", MaxAttempts: 2, Timeout: int64(20 * time.Millisecond)},
		fsm.JobSpec{Type: "remote-only"},
	)
	waitFor(t, r, func(m *fsm.Machine) bool {
		return state(m, ids[0]) == fsm.StateCompleted && state(m, ids[1]) == fsm.StateCompleted &&
			state(m, ids[2]) == fsm.StateFailed && state(m, ids[3]) == fsm.StateFailed && state(m, ids[4]) == fsm.StateFailed
	})
	r.Read(func(m *fsm.Machine) {
		ok, _ := m.Get(ids[0])
		if ok.Result != `"plain text"` {
			t.Errorf("non-JSON result stored as %q", ok.Result)
		}
		flaky, _ := m.Get(ids[1])
		if flaky.Attempt != 3 || flaky.Result != `{"n":3}` {
			t.Errorf("flaky: %+v", flaky)
		}
		pan, _ := m.Get(ids[2])
		if pan.Attempt != 2 || len(pan.LastError) < 10 || pan.LastError[:22] != "handler panicked: boom" {
			t.Errorf("panic: attempt %d error %q", pan.Attempt, pan.LastError)
		}
		perm, _ := m.Get(ids[3])
		if perm.Attempt != 1 {
			t.Errorf("permanent error retried: %+v", perm)
		}
		slow, _ := m.Get(ids[4])
		if slow.Attempt != 2 || len(slow.LastError) < 9 || slow.LastError[:9] != "timed out" {
			t.Errorf("timeout: attempt %d error %q", slow.Attempt, slow.LastError)
		}
		remote, _ := m.Get(ids[5])
		if remote.State != fsm.StatePending {
			t.Errorf("a type without a local handler must wait for remote workers: %s", remote.State)
		}
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPoolShutdownAbandonsAfterDrain(t *testing.T) {
	r := openReplica(t)
	started := make(chan struct{})
	release := make(chan struct{})
	hs := map[string]handlers.Handler{
		"finishes": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		}),
		"stuck": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}),
	}
	p := New(Options{Replica: r, Handlers: hs, Workers: 2, DrainTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	ids := enqueue(t, r, fsm.JobSpec{Type: "finishes"}, fsm.JobSpec{Type: "stuck"})
	<-started
	<-started
	cancel()                                     // stop leasing; drain
	enqueue(t, r, fsm.JobSpec{Type: "finishes"}) // must not be taken
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Read(func(m *fsm.Machine) {
		if s := state(m, ids[0]); s != fsm.StateCompleted {
			t.Errorf("the job that finished during the drain: %s", s)
		}
		if s := state(m, ids[1]); s != fsm.StateInFlight {
			t.Errorf("the job cut off by the drain deadline must stay in flight (no failure counted): %s", s)
		}
		if s := state(m, ids[1]+1); s != fsm.StatePending {
			t.Errorf("a job enqueued after shutdown began was taken: %s", s)
		}
	})
}
