package raftrep

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// Periodic schedules and dependencies through a follower: every command is
// forwarded to the leader, its result (and rejections) come back the same,
// and every node ends with the same state.
func TestControlsThroughFollower(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	f := c.nodes[(l+1)%3]
	now := time.Now().UnixNano()
	propose := func(cmd *fsm.Command) fsm.Result {
		t.Helper()
		res, err := f.Propose(ctx, cmd)
		if err != nil {
			t.Fatalf("%s through a follower: %v", cmd.Kind, err)
		}
		return res
	}
	def := fsm.ScheduleDef{Every: int64(time.Second), CatchUp: fsm.CatchUpAll, Origin: fsm.OriginAPI,
		Job: fsm.JobSpec{Queue: "p", Type: "t", Payload: "null", MaxAttempts: 3, Timeout: int64(time.Second)}}
	if r := propose(&fsm.Command{Kind: fsm.KindPeriodicPut, Now: now, Periodic: &fsm.PeriodicCommand{Name: "s", Def: def}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	fire := &fsm.Command{Kind: fsm.KindPeriodicFire, Now: now + 3e9, Periodic: &fsm.PeriodicCommand{Name: "s",
		Fires: []int64{now + 2e9, now + 3e9}, SkipTo: now + 1e9, Skipped: 1}}
	r := propose(fire)
	if r.Err != nil || len(r.Enqueued) != 2 || r.Enqueued[0].Duplicate || r.Skipped != 1 {
		t.Fatalf("fire: %+v", r)
	}
	// the same fire again, as a new leader or a retry would send it
	if r := propose(fire); r.Err != nil || !r.Enqueued[0].Duplicate || !r.Enqueued[1].Duplicate || r.Skipped != 0 {
		t.Fatalf("fire again: %+v", r)
	}
	if r := propose(&fsm.Command{Kind: fsm.KindPeriodicDelete, Now: now, Periodic: &fsm.PeriodicCommand{Name: "nope"}}); !errors.Is(r.Err, fsm.ErrNoSchedule) {
		t.Fatalf("delete of a missing schedule: %v", r.Err)
	}
	// a dependency chain: canceling its head cancels the rest, counted
	first := r.Enqueued[0].ID
	d := propose(&fsm.Command{Kind: fsm.KindEnqueue, Now: now + 4e9, Jobs: []fsm.JobSpec{
		{Queue: "d", Type: "t", Deps: &fsm.Deps{On: []uint64{first}}},
		{Queue: "d", Type: "t", Deps: &fsm.Deps{OnIndex: []int{0}}},
		{Queue: "d", Type: "t", Deps: &fsm.Deps{OnIndex: []int{0}, RunOnFailure: true}},
	}})
	if d.Err != nil || d.Enqueued[0].State != fsm.StateBlocked {
		t.Fatalf("enqueue with dependencies: %+v", d)
	}
	if r := propose(&fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "t", Deps: &fsm.Deps{On: []uint64{999}}}}}); r.Err == nil {
		t.Fatal("a missing dependency was accepted")
	} else if inv := (*fsm.InvalidError)(nil); !errors.As(r.Err, &inv) || inv.Field != "depends_on[0]" {
		t.Fatalf("missing dependency: %v", r.Err)
	}
	cx := propose(&fsm.Command{Kind: fsm.KindCancel, Now: now + 5e9, ID: first})
	if cx.Err != nil || cx.DepCanceled != 2 || cx.Unblocked != 1 {
		t.Fatalf("cancel of the chain's head: %+v", cx)
	}
	c.sameState(10 * time.Second)
	for i, n := range c.nodes {
		n.Read(func(m *fsm.Machine) {
			s, ok := m.Schedule("s")
			j, _ := m.Get(d.Enqueued[1].ID)
			k, _ := m.Get(d.Enqueued[2].ID)
			if !ok || s.Fired != 2 || s.Skipped != 1 || j.State != fsm.StateCanceled || k.State != fsm.StatePending {
				t.Errorf("n%d: schedule %+v, dependents %s %s", i+1, s, j.State, k.State)
			}
		})
	}
}
