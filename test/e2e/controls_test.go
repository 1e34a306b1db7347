package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// allJobs lists every job of the server.
func allJobs(t *testing.T, c *client.Client) []api.Job {
	t.Helper()
	var out []api.Job
	opts := client.ListOptions{Limit: 1000}
	for {
		page, err := c.List(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Jobs...)
		if page.NextCursor == "" {
			return out
		}
		opts.Cursor = page.NextCursor
	}
}

// TestPeriodicKill runs a schedule of the configuration file (every second,
// catch_up all) and SIGKILLs the server five times at random moments,
// restarting it on the same data directory each time. Every scheduled
// second from the schedule's start to its last fired run must be enqueued
// exactly once: none lost while the server was down (catch_up all), none
// twice across the crashes.
func TestPeriodicKill(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "beaver.yaml")
	if err := os.WriteFile(cfg, []byte(`
periodic:
  tick:
    every: 1s
    catch_up: all
    job: {queue: ticks, type: remote-tick, payload: {from: config}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		p := startServer(t, dir, "--config", cfg)
		c := p.client()
		// wait for a run of this round (the schedule fires once a second)
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, err := c.GetPeriodic(context.Background(), "tick")
			if err == nil && s.Fired > uint64(round) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no run fired: %+v %v\n%s", round, s, err, p.logs())
			}
			p.waitLog(context.Background(), 200*time.Millisecond, "periodic: runs fired")
		}
		// kill it somewhere in the next second: before, during or after a fire
		timer := time.NewTimer(time.Duration(100+round*170) * time.Millisecond)
		<-timer.C
		p.kill()
		c.Close()
	}
	// a last start: it catches up, then every run is there once
	p := startServer(t, dir, "--config", cfg)
	c := p.client()
	defer c.Close()
	s, err := c.GetPeriodic(context.Background(), "tick")
	if err != nil {
		t.Fatal(err)
	}
	if s.Origin != "config" || s.Skipped != 0 {
		t.Fatalf("schedule %+v", s)
	}
	since := s.Since
	// stop the schedule so that the state stops moving, then check
	if _, err := c.DeletePeriodic(context.Background(), "tick"); err != nil {
		t.Fatal(err)
	}
	jobs := allJobs(t, c)
	seen := map[string]bool{}
	for _, j := range jobs {
		if j.Queue != "ticks" || string(j.Payload) != `{"from":"config"}` {
			t.Fatalf("stranger job %+v", j)
		}
		if seen[j.UniqueKey] {
			t.Fatalf("run %s enqueued twice", j.UniqueKey)
		}
		seen[j.UniqueKey] = true
	}
	// every second after the start, up to the last one fired, once
	first := since.Add(time.Second) // an interval runs at since + k × every
	if jobs[0].UniqueKey != fsm.PeriodicKey("tick", first.UnixNano()) {
		t.Fatalf("first run %s, want the one at %v", jobs[0].UniqueKey, first)
	}
	for k := range len(jobs) {
		want := fsm.PeriodicKey("tick", first.Add(time.Duration(k)*time.Second).UnixNano())
		if !seen[want] {
			t.Fatalf("run %s missing among %d runs (first %s)", want, len(jobs), jobs[0].UniqueKey)
		}
	}
	if len(jobs) < 5 { // each of the five rounds waited for a run of its own
		t.Fatalf("only %d runs over five rounds", len(jobs))
	}
	t.Logf("%d runs, each once, over 5 kills", len(jobs))
}

// TestDependsOnKill SIGKILLs the server right after each acknowledged step
// of a dependency chain (enqueue, the head's completion, a cancel) and
// checks after each restart that the step and its effect on the dependents
// survived.
func TestDependsOnKill(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	restart := func(p *proc) (*proc, *client.Client) {
		p.kill()
		p = startServer(t, dir)
		return p, p.client()
	}
	p := startServer(t, dir)
	c := p.client()
	b, err := c.EnqueueBatch(ctx, api.BatchRequest{Jobs: []api.EnqueueRequest{
		{Type: "remote-dep"},
		{Type: "remote-dep", DependsOnIndex: []int{0}},
		{Type: "remote-dep", DependsOnIndex: []int{1}},
		{Type: "remote-dep", DependsOnIndex: []int{1}, OnDependencyFailure: "run"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	head, mid, tail, anyway := b.IDs[0], b.IDs[1], b.IDs[2], b.IDs[3]
	p, c = restart(p)
	state := func(id string) api.Job {
		t.Helper()
		j, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	if j := state(mid); j.State != api.StateBlocked || len(j.WaitingFor) != 1 || j.WaitingFor[0] != head {
		t.Fatalf("after kill: %+v", j)
	}
	// complete the head as a remote worker; kill right after the answer
	l, err := c.Lease(ctx, api.LeaseRequest{Types: []string{"remote-dep"}, Max: 5})
	if err != nil || len(l.Jobs) != 1 || l.Jobs[0].ID != head {
		t.Fatalf("lease: %+v %v (only the head is runnable)", l, err)
	}
	if _, err := c.Complete(ctx, head, api.CompleteRequest{LeaseID: l.Jobs[0].LeaseID}); err != nil {
		t.Fatal(err)
	}
	p, c = restart(p)
	if j := state(mid); j.State != api.StatePending || len(j.WaitingFor) != 0 {
		t.Fatalf("the completed head did not release its dependent across a kill: %+v", j)
	}
	// cancel the middle one; kill right after the answer
	if _, err := c.Cancel(ctx, mid); err != nil {
		t.Fatal(err)
	}
	p, c = restart(p)
	if j := state(tail); j.State != api.StateCanceled || j.LastError != "dependency "+mid+" canceled" {
		t.Fatalf("the cascade did not survive a kill: %+v", j)
	}
	if j := state(anyway); j.State != api.StatePending {
		t.Fatalf("the run-anyway dependent: %+v", j)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Jobs.Blocked != 0 || st.Jobs.Completed != 1 || st.Jobs.Canceled != 2 || st.Jobs.Pending != 1 {
		t.Fatalf("status %+v %v", st.Jobs, err)
	}
	c.Close()
}
