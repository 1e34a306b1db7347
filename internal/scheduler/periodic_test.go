package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/periodic"
)

func def(t *testing.T, in periodic.Input, origin string) fsm.ScheduleDef {
	t.Helper()
	var b periodic.Builder
	d, err := b.Build("x", &in, origin, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func runs(t *testing.T, s interface{ Read(func(*fsm.Machine)) }) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	s.Read(func(m *fsm.Machine) {
		jobs, _ := m.List(fsm.Filter{Limit: 1000})
		for _, j := range jobs {
			if out[j.UniqueKey] {
				t.Fatalf("run %s enqueued twice", j.UniqueKey)
			}
			out[j.UniqueKey] = true
		}
	})
	return out
}

func TestPeriodicOnceFiresEachRunOnce(t *testing.T) {
	r, clk := setup(t)
	ctx := context.Background()
	s := New(Options{Replica: r, Clock: clk.now})
	start := clk.now()
	propose(t, r, &fsm.Command{Kind: fsm.KindPeriodicPut, Now: start.UnixNano(), Periodic: &fsm.PeriodicCommand{Name: "tick",
		Def: def(t, periodic.Input{Every: 10 * time.Second, CatchUp: "all", Job: jobspec.Input{Type: "t"}}, fsm.OriginAPI)}})
	wait, err := s.PeriodicOnce(ctx)
	if err != nil || wait != time.Second { // the poll bounds the wait to the run 10 s ahead
		t.Fatalf("nothing due yet: wait %v, %v", wait, err)
	}
	applied := r.Status().AppliedLSN
	clk.add(10 * time.Second)
	if wait, err = s.PeriodicOnce(ctx); err != nil || wait != 0 {
		t.Fatalf("a run due: wait %v, %v", wait, err)
	}
	if r.Status().AppliedLSN != applied+1 {
		t.Fatal("one fire expected")
	}
	// a second scheduler (a new leader) looking at the same time fires nothing
	other := New(Options{Replica: r, Clock: clk.now})
	if _, err := other.PeriodicOnce(ctx); err != nil || r.Status().AppliedLSN != applied+1 {
		t.Fatalf("a run fired twice: %v", err)
	}
	// 35 s later: all three missed runs, once each
	clk.add(35 * time.Second)
	s.PeriodicOnce(ctx)
	got := runs(t, r)
	if len(got) != 4 {
		t.Fatalf("runs %v", got)
	}
	for k := 1; k <= 4; k++ {
		if !got[fsm.PeriodicKey("tick", start.Add(time.Duration(k)*10*time.Second).UnixNano())] {
			t.Fatalf("run %d missing: %v", k, got)
		}
	}
}

func TestPeriodicOnceCatchUpOne(t *testing.T) {
	r, clk := setup(t)
	ctx := context.Background()
	s := New(Options{Replica: r, Clock: clk.now})
	propose(t, r, &fsm.Command{Kind: fsm.KindPeriodicPut, Now: clk.now().UnixNano(), Periodic: &fsm.PeriodicCommand{Name: "m",
		Def: def(t, periodic.Input{Every: time.Minute, Job: jobspec.Input{Type: "t"}}, fsm.OriginAPI)}})
	clk.add(10*time.Minute + time.Second)
	s.PeriodicOnce(ctx)
	var sc fsm.Schedule
	r.Read(func(m *fsm.Machine) { sc, _ = m.Schedule("m") })
	if sc.Fired != 1 || sc.Skipped != 9 || len(runs(t, r)) != 1 {
		t.Fatalf("catch_up one after 10 missed runs: %+v", sc)
	}
}

func TestPeriodicAdmitDelaysRuns(t *testing.T) {
	r, clk := setup(t)
	full := errors.New("queue full")
	var refuse bool
	s := New(Options{Replica: r, Clock: clk.now, Admit: func(int) error {
		if refuse {
			return full
		}
		return nil
	}})
	propose(t, r, &fsm.Command{Kind: fsm.KindPeriodicPut, Now: clk.now().UnixNano(), Periodic: &fsm.PeriodicCommand{Name: "m",
		Def: def(t, periodic.Input{Every: time.Minute, Job: jobspec.Input{Type: "t"}}, fsm.OriginAPI)}})
	clk.add(time.Minute)
	refuse = true
	s.PeriodicOnce(context.Background())
	if len(runs(t, r)) != 0 {
		t.Fatal("a refused admission enqueued")
	}
	refuse = false
	s.PeriodicOnce(context.Background())
	if len(runs(t, r)) != 1 {
		t.Fatal("the delayed run was not fired")
	}
}

func TestSyncPeriodic(t *testing.T) {
	r, clk := setup(t)
	ctx := context.Background()
	now := clk.now().UnixNano()
	put := func(name string, d fsm.ScheduleDef) {
		propose(t, r, &fsm.Command{Kind: fsm.KindPeriodicPut, Now: now, Periodic: &fsm.PeriodicCommand{Name: name, Def: d}})
	}
	api := def(t, periodic.Input{Cron: "@hourly", Job: jobspec.Input{Type: "t"}}, fsm.OriginAPI)
	old := def(t, periodic.Input{Cron: "@daily", Job: jobspec.Input{Type: "t"}}, fsm.OriginConfig)
	put("from-api", api)
	put("removed-from-config", old)
	put("overridden", api)
	keep := def(t, periodic.Input{Every: time.Minute, Job: jobspec.Input{Type: "t"}}, fsm.OriginConfig)
	s := New(Options{Replica: r, Clock: clk.now, Periodic: []ConfigSchedule{{"kept", keep}, {"overridden", keep}}})
	if err := s.SyncPeriodic(ctx); err != nil {
		t.Fatal(err)
	}
	var list []fsm.Schedule
	r.Read(func(m *fsm.Machine) { list = m.Schedules() })
	names := []string{}
	for _, sc := range list {
		names = append(names, sc.Name+":"+sc.Origin)
	}
	if len(list) != 3 || names[0] != "from-api:api" || names[1] != "kept:config" || names[2] != "overridden:config" {
		t.Fatalf("after sync: %v", names)
	}
	// a second sync (the next start) proposes nothing
	applied := r.Status().AppliedLSN
	if err := s.SyncPeriodic(ctx); err != nil || r.Status().AppliedLSN != applied {
		t.Fatalf("an unchanged configuration was proposed again: %v", err)
	}
}

// The loop started and stopped as the server does it: it syncs, fires and
// stops with its context.
func TestPeriodicLoopStops(t *testing.T) {
	r, clk := setup(t)
	s := New(Options{Replica: r, Clock: clk.now, PeriodicPoll: time.Millisecond,
		Periodic: []ConfigSchedule{{"c", def(t, periodic.Input{Every: time.Second, Job: jobspec.Input{Type: "t"}}, fsm.OriginConfig)}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.periodicLoop(ctx); close(done) }()
	// wait until the configuration is applied, then make a run due
	for ch := r.Changed(); ; {
		var ok bool
		r.Read(func(m *fsm.Machine) { _, ok = m.Schedule("c") })
		if ok {
			break
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond): // a put does not wake Changed: look again
		}
		ch = r.Changed()
	}
	ch := r.Changed()
	clk.add(time.Second)
	select {
	case <-ch: // the fire woke waiters
	case <-time.After(10 * time.Second):
		t.Fatal("no run fired")
	}
	cancel()
	<-done
	if len(runs(t, r)) != 1 {
		t.Fatal("want one run")
	}
}
