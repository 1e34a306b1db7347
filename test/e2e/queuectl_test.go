package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// The queue controls survive kill -9 of the real binary: a pause, the
// limits (set by the configuration file) and their rate window, a job
// canceled while it ran, and a unique_for window whose job was purged.

// waitUntil checks cond after every change of the server's state (a long
// poll on a type nobody enqueues returns at the next change, or after
// 100ms), until it holds or 15s passed.
func waitUntil(t *testing.T, c *client.Client, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		c.Lease(context.Background(), api.LeaseRequest{Types: []string{"never-enqueued"}, Max: 1, Wait: "100ms"})
	}
}

// answer holds what a call returned, for got(call(...)).must(t).
type answer[T any] struct {
	v   T
	err error
}

func got[T any](v T, err error) answer[T] { return answer[T]{v, err} }

func (a answer[T]) must(t *testing.T) T {
	t.Helper()
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.v
}

func jobState(t *testing.T, c *client.Client, id string) string {
	t.Helper()
	return got(c.Get(context.Background(), id)).must(t).State
}

// metric returns the text of the series of name (with its labels) in the
// server's /metrics, or "" if absent.
func (p *proc) metric(t *testing.T, series string) string {
	t.Helper()
	resp, err := http.Get(p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

func TestKillKeepsAQueuePaused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startServer(t, dir, "--workers", "2")
	c := p.client()
	if q := got(c.PauseQueue(ctx, "held")).must(t); !q.Paused {
		t.Fatalf("pause: %+v", q)
	}
	var held []string
	for range 3 {
		held = append(held, got(c.Enqueue(ctx, api.EnqueueRequest{Queue: "held", Type: "noop"})).must(t).ID)
	}
	free := got(c.Enqueue(ctx, api.EnqueueRequest{Queue: "free", Type: "noop"})).must(t).ID
	waitUntil(t, c, "the job of the running queue", func() bool { return jobState(t, c, free) == api.StateCompleted })
	if v := p.metric(t, `beaver_queue_paused{queue="held"}`); v != "1" {
		t.Errorf("beaver_queue_paused of the paused queue: %q", v)
	}
	p.kill()

	p = startServer(t, dir, "--workers", "2")
	c = p.client()
	q := got(c.Queue(ctx, "held")).must(t)
	if !q.Paused || q.Jobs.Pending != 3 {
		t.Fatalf("after kill -9: %+v", q)
	}
	st := got(c.Status(ctx)).must(t)
	if len(st.PausedQueues) != 1 || st.PausedQueues[0] != "held" {
		t.Fatalf("status after kill -9: paused queues %v", st.PausedQueues)
	}
	// the workers run, but not the paused queue
	free = got(c.Enqueue(ctx, api.EnqueueRequest{Queue: "free", Type: "noop"})).must(t).ID
	waitUntil(t, c, "a job of the running queue after the restart", func() bool { return jobState(t, c, free) == api.StateCompleted })
	for _, id := range held {
		if s := jobState(t, c, id); s != api.StatePending {
			t.Fatalf("job %s of the paused queue is %s", id, s)
		}
	}
	got(c.ResumeQueue(ctx, "held")).must(t)
	waitUntil(t, c, "the resumed queue's jobs", func() bool { return got(c.Queue(ctx, "held")).must(t).Jobs.Completed == 3 })
	p.kill()

	p = startServer(t, dir)
	if q := got(p.client().Queue(ctx, "held")).must(t); q.Paused {
		t.Fatalf("the resume was lost by kill -9: %+v", q)
	}
}

func TestKillKeepsQueueLimits(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := filepath.Join(t.TempDir(), "beaver.yaml")
	if err := os.WriteFile(cfg, []byte("queues:\n  lim:\n    concurrency: 1\n    rate: {limit: 2, period: 1h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServer(t, dir, "--config", cfg)
	c := p.client()
	if !strings.Contains(p.logs(), "queue settings from the configuration") {
		t.Fatalf("the configured settings were not proposed:\n%s", p.logs())
	}
	for range 5 {
		got(c.Enqueue(ctx, api.EnqueueRequest{Queue: "lim", Type: "remote"})).must(t)
	}
	// concurrency 1 for remote workers: one job however many are asked for
	lease := func() []api.Job {
		return got(c.Lease(ctx, api.LeaseRequest{Queues: []string{"lim"}, Max: 5})).must(t).Jobs
	}
	for i := range 2 {
		jobs := lease()
		if len(jobs) != 1 || len(lease()) != 0 {
			t.Fatalf("lease %d under concurrency 1: %d jobs", i, len(jobs))
		}
		got(c.Complete(ctx, jobs[0].ID, api.CompleteRequest{LeaseID: jobs[0].LeaseID})).must(t)
	}
	if got := lease(); len(got) != 0 {
		t.Fatalf("a third lease within the hour got %d jobs", len(got))
	}
	p.kill()

	// without the file: the settings and the used-up window are in the state
	p = startServer(t, dir)
	c = p.client()
	q := got(c.Queue(ctx, "lim")).must(t)
	if q.Concurrency != 1 || q.Rate == nil || q.Rate.Limit != 2 || q.Blocked != "rate" || q.RateWindow == nil || q.RateWindow.Used != 2 {
		t.Fatalf("after kill -9: %+v", q)
	}
	if got := lease(); len(got) != 0 {
		t.Fatalf("after kill -9 the rate window reopened: %d jobs", len(got))
	}
	if v := p.metric(t, `beaver_queue_blocked{queue="lim",reason="rate"}`); v != "1" {
		t.Errorf("beaver_queue_blocked rate: %q", v)
	}
	p.kill()

	// with the file again: nothing differs, nothing is proposed
	p = startServer(t, dir, "--config", cfg)
	c = p.client()
	if strings.Contains(p.logs(), "queue settings from the configuration") {
		t.Fatalf("unchanged settings proposed again:\n%s", p.logs())
	}
	zero := api.Rate{Limit: 0}
	got(c.UpdateQueue(ctx, "lim", api.QueueSettings{Rate: &zero})).must(t)
	if jobs := lease(); len(jobs) != 1 {
		t.Fatalf("without the rate limit: %d jobs (concurrency 1)", len(jobs))
	}
}

func TestKillAfterCancelingRunningJobs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startServer(t, dir, "--workers", "1")
	c := p.client()
	// an in-process job: its handler's context is canceled, which frees the
	// only worker for the next job
	long := got(c.Enqueue(ctx, api.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"duration":"1h"}`), Timeout: "2h"})).must(t).ID
	waitUntil(t, c, "the sleep job to run", func() bool { return jobState(t, c, long) == api.StateInFlight })
	if j := got(c.Cancel(ctx, long)).must(t); j.State != api.StateCanceled {
		t.Fatalf("cancel: %+v", j)
	}
	next := got(c.Enqueue(ctx, api.EnqueueRequest{Type: "noop"})).must(t).ID
	waitUntil(t, c, "the next job on the freed worker", func() bool { return jobState(t, c, next) == api.StateCompleted })
	if v := p.metric(t, `beaver_jobs_canceled_running_total{queue="default",type="sleep"}`); v != "1" {
		t.Errorf("beaver_jobs_canceled_running_total: %q", v)
	}
	// a remote job, canceled while its worker holds it
	remote := got(c.Enqueue(ctx, api.EnqueueRequest{Type: "remote"})).must(t).ID
	leased := got(c.Lease(ctx, api.LeaseRequest{Types: []string{"remote"}})).must(t).Jobs[0]
	got(c.Cancel(ctx, remote)).must(t)
	p.kill()

	p = startServer(t, dir, "--workers", "1")
	c = p.client()
	after := got(c.Enqueue(ctx, api.EnqueueRequest{Type: "noop"})).must(t).ID
	waitUntil(t, c, "a job after the restart", func() bool { return jobState(t, c, after) == api.StateCompleted })
	for _, id := range []string{long, remote} {
		j := got(c.Get(ctx, id)).must(t)
		if j.State != api.StateCanceled || j.Attempt != 1 || len(j.Result) != 0 {
			t.Fatalf("job %s after kill -9: %+v", id, j)
		}
	}
	// the remote worker's heartbeat and completion are told the job was canceled
	if _, err := c.Heartbeat(ctx, remote, api.HeartbeatRequest{LeaseID: leased.LeaseID}); !client.IsCanceled(err) {
		t.Fatalf("heartbeat after the restart: %v", err)
	}
	if _, err := c.Complete(ctx, remote, api.CompleteRequest{LeaseID: leased.LeaseID}); !client.IsCanceled(err) {
		t.Fatalf("completion after the restart: %v", err)
	}
	if s := jobState(t, c, remote); s != api.StateCanceled {
		t.Fatalf("the completion of a canceled job made it %s", s)
	}
}

func TestKillKeepsAUniqueForWindow(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// the scheduler purges at its start and then every minute: with a
	// retention of 1ms the job lives until the restart purges it
	args := []string{"--workers", "1", "--retention-completed", "1ms"}
	p := startServer(t, dir, args...)
	c := p.client()
	req := api.EnqueueRequest{Type: "noop", UniqueKey: "order-1", UniqueFor: "1h"}
	first := got(c.Enqueue(ctx, req)).must(t)
	waitUntil(t, c, "the job to complete", func() bool { return jobState(t, c, first.ID) == api.StateCompleted })
	if again := got(c.Enqueue(ctx, req)).must(t); !again.Duplicate || again.ID != first.ID || again.State != api.StateCompleted {
		t.Fatalf("re-enqueue within the window: %+v", again)
	}
	p.kill()

	// the retention ends before the window (1h): the purge at the start
	// removes the job and keeps its key reserved
	p = startServer(t, dir, args...)
	c = p.client()
	waitUntil(t, c, "the purge of the completed job", func() bool {
		_, err := c.Get(ctx, first.ID)
		return client.ErrorCode(err) == api.CodeNotFound
	})
	if again := got(c.Enqueue(ctx, req)).must(t); !again.Duplicate || again.ID != first.ID {
		t.Fatalf("re-enqueue after the purge, within the window: %+v", again)
	}
	if v := p.metric(t, "beaver_unique_reservations"); v != "1" {
		t.Errorf("beaver_unique_reservations: %q", v)
	}
	p.kill()

	p = startServer(t, dir, args...)
	c = p.client()
	if again := got(c.Enqueue(ctx, req)).must(t); !again.Duplicate || again.ID != first.ID {
		t.Fatalf("re-enqueue after a second kill -9: %+v", again)
	}
	// the default is unchanged: without unique_for a finished job's key is free
	plain := api.EnqueueRequest{Type: "noop", UniqueKey: "order-2"}
	id := got(c.Enqueue(ctx, plain)).must(t).ID
	waitUntil(t, c, "the plain job", func() bool { return jobState(t, c, id) == api.StateCompleted })
	if again := got(c.Enqueue(ctx, plain)).must(t); again.Duplicate {
		t.Fatalf("a key without unique_for held after its job finished: %+v", again)
	}
}
