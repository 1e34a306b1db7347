package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type running struct {
	s    *Server
	c    *client.Client
	stop func() error
}

func start(t *testing.T, mutate func(*config.Config), hs map[string]handlers.Handler) *running {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Retry.Base = config.Duration(time.Millisecond)
	cfg.Retry.Max = config.Duration(2 * time.Millisecond)
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(Options{Config: cfg, Handlers: hs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	c := client.New("http://" + s.Addr().String())
	r := &running{s: s, c: c}
	var stopped atomic.Bool
	r.stop = func() error {
		if stopped.Swap(true) {
			return nil
		}
		cancel()
		c.Close()
		return <-done
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// waitState long-polls the replica until job id reaches state.
func (r *running) waitState(t *testing.T, id string, want string) api.Job {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := r.s.Replica().Changed()
		j, err := r.c.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("job %s is %s, want %s", id, j.State, want)
		}
	}
}

func scrape(t *testing.T, r *running) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.s.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "beaver_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func TestServeJobsAndMetrics(t *testing.T) {
	var attempts atomic.Int32
	hs := map[string]handlers.Handler{
		"always-fails": handlers.HandlerFunc(func(ctx context.Context, j *handlers.Job) ([]byte, error) {
			attempts.Add(1)
			return nil, errors.New("nope")
		}),
	}
	r := start(t, nil, hs)
	ctx := context.Background()
	if err := r.c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	ok, err := r.c.Enqueue(ctx, api.EnqueueRequest{Type: "noop", Payload: []byte(`{"x":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	sleepy, _ := r.c.Enqueue(ctx, api.EnqueueRequest{Type: "sleep", Payload: []byte(`{"duration":"5ms"}`)})
	timeout, _ := r.c.Enqueue(ctx, api.EnqueueRequest{Type: "sleep", Payload: []byte(`{"duration":"1h"}`), Timeout: "20ms", MaxAttempts: 2})
	failing, _ := r.c.Enqueue(ctx, api.EnqueueRequest{Type: "always-fails", MaxAttempts: 3})
	remote, _ := r.c.Enqueue(ctx, api.EnqueueRequest{Type: "only-remote"})

	r.waitState(t, ok.ID, "completed")
	r.waitState(t, sleepy.ID, "completed")
	tj := r.waitState(t, timeout.ID, "failed")
	if tj.Attempt != 2 || !strings.HasPrefix(tj.LastError, "timed out") {
		t.Errorf("timed-out job: attempt %d, error %q", tj.Attempt, tj.LastError)
	}
	fj := r.waitState(t, failing.ID, "failed")
	if fj.Attempt != 3 || attempts.Load() != 3 || fj.LastError != "nope" {
		t.Errorf("failing job: attempt %d (handler ran %d), error %q", fj.Attempt, attempts.Load(), fj.LastError)
	}

	// a remote worker takes the job no local handler runs
	lr, err := r.c.Lease(ctx, api.LeaseRequest{Types: []string{"only-remote"}, Max: 5, Wait: "1s"})
	if err != nil || len(lr.Jobs) != 1 || lr.Jobs[0].ID != remote.ID {
		t.Fatalf("remote lease: %+v %v", lr, err)
	}
	if _, err := r.c.Complete(ctx, remote.ID, api.CompleteRequest{LeaseID: lr.Jobs[0].LeaseID, Result: []byte(`"done"`)}); err != nil {
		t.Fatal(err)
	}

	st, err := r.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := scrape(t, r)
	families := map[string]bool{}
	for k := range m {
		name := k
		if i := strings.IndexAny(k, "{"); i >= 0 {
			name = k[:i]
		}
		families[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
	}
	if len(families) < 12 {
		t.Errorf("only %d beaver_ metric families: %v", len(families), families)
	}
	checks := map[string]float64{
		`beaver_jobs{queue="default",state="completed"}`:                        float64(st.Jobs.Completed),
		`beaver_jobs{queue="default",state="failed"}`:                           2,
		`beaver_jobs_enqueued_total{queue="default",type="noop"}`:               1,
		`beaver_jobs_completed_total{queue="default",type="noop"}`:              1,
		`beaver_jobs_completed_total{queue="default",type="only-remote"}`:       1,
		`beaver_jobs_retried_total{queue="default",type="always-fails"}`:        2,
		`beaver_jobs_dead_total{queue="default",type="always-fails"}`:           1,
		`beaver_job_attempts_failed_total{queue="default",type="always-fails"}`: 3,
		`beaver_job_attempts_failed_total{queue="default",type="sleep"}`:        2,
		`beaver_ready`: 1,
	}
	for k, want := range checks {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if st.Jobs.Completed != 3 || st.Jobs.Failed != 2 {
		t.Errorf("status counts: %+v", st.Jobs)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	mut := func(c *config.Config) { c.DataDir = dir; c.Workers = 1 }
	r := start(t, mut, nil)
	ctx := context.Background()
	var ids []string
	for range 5 {
		e, err := r.c.Enqueue(ctx, api.EnqueueRequest{Type: "only-remote", Payload: []byte(`1`)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	r2 := start(t, mut, nil)
	for _, id := range ids {
		if j, err := r2.c.Get(ctx, id); err != nil || j.State != "pending" {
			t.Fatalf("job %s after restart: %+v %v", id, j, err)
		}
	}
	var n int
	r2.s.Replica().Read(func(m *fsm.Machine) { n = m.Len() })
	if n != 5 {
		t.Fatalf("%d jobs after restart", n)
	}
}

func TestRefusesSecondServerOnSameDir(t *testing.T) {
	dir := t.TempDir()
	start(t, func(c *config.Config) { c.DataDir = dir }, nil)
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.MetricsListen = dir, "127.0.0.1:0", "127.0.0.1:0"
	s, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "locked by another beaver-raft") {
		t.Fatalf("second server on the same directory: %v", err)
	}
}

func TestSnapshotChainKeysMapToReplicaOptions(t *testing.T) {
	if got := deltaRatio(0); got >= 0 {
		t.Errorf("rebase_percent 0: ratio %v, want negative (every snapshot full)", got)
	}
	if got := deltaRatio(50); got != 0.5 {
		t.Errorf("rebase_percent 50: ratio %v, want 0.5", got)
	}
	if got := baseRate(0); got >= 0 {
		t.Errorf("base_rate 0: %d, want negative (unlimited)", got)
	}
	if got := baseRate(config.MiB); got != 1<<20 {
		t.Errorf("base_rate 1MiB: %d", got)
	}
}
