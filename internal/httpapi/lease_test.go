package httpapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

func TestLease(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) { o.MaxLease = 10 })
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"a","priority":1},{"type":"b","priority":5},{"type":"a","queue":"other"},{"type":"c"}]}`, 201, nil)
		before := s.spy.proposals.Load()
		if jobs := s.lease(api.LeaseRequest{Queues: []string{"nothing"}}); len(jobs) != 0 {
			t.Fatalf("leased %+v from an empty queue", jobs)
		}
		if n := s.spy.proposals.Load(); n != before {
			t.Errorf("an empty lease proposed %d commands", n-before)
		}
		// Default: queue "default", one job, the highest priority first.
		jobs := s.lease(api.LeaseRequest{Worker: "w1"})
		if len(jobs) != 1 || jobs[0].ID != "2" || jobs[0].State != api.StateInFlight || jobs[0].Attempt != 1 ||
			jobs[0].LeaseID == "" || jobs[0].Worker != "w1" || jobs[0].StartedAt.IsZero() {
			t.Fatalf("leased %+v", jobs)
		}
		if d := time.Until(jobs[0].LeaseDeadline); d < 25*time.Second || d > 31*time.Second {
			t.Errorf("default lease ends in %v, want 30s", d)
		}
		// By type across queues, with a lease length.
		jobs = s.lease(api.LeaseRequest{Types: []string{"a"}, Max: 5, Lease: "10m"})
		if len(jobs) != 2 || jobs[0].Type != "a" || jobs[1].Type != "a" {
			t.Fatalf("by type: %+v", jobs)
		}
		if d := time.Until(jobs[0].LeaseDeadline); d < 9*time.Minute {
			t.Errorf("lease of 10m ends in %v", d)
		}
		// The worker defaults to the remote address.
		jobs = s.lease(api.LeaseRequest{})
		if len(jobs) != 1 || !strings.HasPrefix(jobs[0].Worker, "127.0.0.1:") {
			t.Errorf("default worker: %+v", jobs)
		}
		for body, msg := range map[string]string{
			`{"max":11}`:             "max must be between 1 and 10",
			`{"max":-1}`:             "max must be between 1 and 10",
			`{"wait":"-1s"}`:         "wait must not be negative",
			`{"wait":"soon"}`:        `wait: time: invalid duration "soon"`,
			`{"lease":"0s"}`:         "lease must be positive",
			`{"queues":["a b"]}`:     "queues[0] must match",
			`{"types":["ok","a b"]}`: "types[1] must match",
			`{"queue":"a"}`:          `unknown field "queue"`,
			`{"queues":"a"}`:         "queues: expected an array, got string",
		} {
			if got := s.callErr("POST", "/v1/lease", body, 400, api.CodeInvalidArgument); !strings.Contains(got, msg) {
				t.Errorf("%s: %q, want %q", body, got, msg)
			}
		}
	})
}

func TestLeaseLongPoll(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)

		// Wakes as soon as a job is enqueued.
		type result struct {
			r     response
			spent time.Duration
		}
		done := make(chan result, 1)
		go func() {
			start := time.Now()
			r := s.do("POST", "/v1/lease", `{"wait":"5s","worker":"poller"}`)
			done <- result{r, time.Since(start)}
		}()
		<-s.spy.polled // the lease call found nothing and is about to wait
		id := s.enqueue(`{"type":"t","payload":"wake"}`).ID
		res := <-done
		var out api.LeaseResponse
		if err := json.Unmarshal(res.r.body, &out); err != nil || res.r.status != 200 {
			t.Fatalf("%d %s %v", res.r.status, res.r.body, err)
		}
		if len(out.Jobs) != 1 || out.Jobs[0].ID != id || string(out.Jobs[0].Payload) != `"wake"` || out.Jobs[0].LeaseID == "" {
			t.Fatalf("long poll returned %+v", out)
		}
		if res.spent >= 5*time.Second {
			t.Errorf("long poll took %v: it waited for the whole wait", res.spent)
		}

		// Returns empty when the wait expires.
		start := time.Now()
		var empty api.LeaseResponse
		r := s.call("POST", "/v1/lease", `{"wait":"50ms"}`, 200, &empty)
		if len(empty.Jobs) != 0 || string(r.body) != "{\"jobs\":[]}\n" || time.Since(start) < 50*time.Millisecond {
			t.Errorf("expired wait: %s after %v", r.body, time.Since(start))
		}

		// Wakes when a scheduled job becomes due (no command arrives).
		s.enqueue(`{"type":"t","delay":"100ms"}`)
		jobs := s.lease(api.LeaseRequest{Wait: "5s"})
		if len(jobs) != 1 {
			t.Errorf("due job: %+v", jobs)
		}

		// Ends when the client leaves; the handler does not outlive it
		// (goleak checks at the end).
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", s.srv.URL+"/v1/lease", strings.NewReader(`{"wait":"30s"}`))
			resp, err := s.srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-s.spy.polled
		cancel()
		if err := <-errc; err == nil {
			t.Error("canceled request succeeded")
		}
	})
}

// A long poll parked on a server that stops (its BaseContext canceled)
// answers at once with no jobs.
func TestLeaseShutdown(t *testing.T) {
	rep := newSpy(newMemReplica())
	a := New(Options{Replica: rep})
	base, stop := context.WithCancel(context.Background())
	defer stop()
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	defer srv.Close()
	s := &server{t: t, api: a, spy: rep, srv: srv}
	done := make(chan response, 1)
	go func() { done <- s.do("POST", "/v1/lease", `{"wait":"30s"}`) }()
	<-rep.polled
	start := time.Now()
	stop()
	r := <-done
	if r.status != 200 || string(r.body) != "{\"jobs\":[]}\n" || time.Since(start) > 10*time.Second {
		t.Errorf("%d %s after %v", r.status, r.body, time.Since(start))
	}
}

func TestCompleteFailHeartbeat(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) { o.Retry = backoff.Policy{Base: 10 * time.Second, Max: time.Minute} })
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t"},{"type":"t","max_attempts":1},{"type":"t"}]}`, 201, nil)
		jobs := s.lease(api.LeaseRequest{Max: 4, Lease: "1m"})
		if len(jobs) != 4 {
			t.Fatalf("leased %d", len(jobs))
		}
		j1, j2, j3, j4 := jobs[0], jobs[1], jobs[2], jobs[3]

		// Complete with a stale lease: 409, the job stays in flight.
		msg := s.callErr("POST", "/v1/jobs/1/complete", api.CompleteRequest{LeaseID: j2.LeaseID}, 409, api.CodeConflict)
		if !strings.Contains(msg, "is not the current lease of job 1") {
			t.Errorf("message %q", msg)
		}
		s.callErr("POST", "/v1/jobs/1/complete", `{"result":1}`, 400, api.CodeInvalidArgument) // no lease_id
		s.callErr("POST", "/v1/jobs/1/complete", `{"lease_id":"x"}`, 400, api.CodeInvalidArgument)
		s.callErr("POST", "/v1/jobs/77/complete", api.CompleteRequest{LeaseID: "1"}, 404, api.CodeNotFound)

		var j api.Job
		s.call("POST", "/v1/jobs/1/complete", `{"lease_id":"`+j1.LeaseID+`","result":{"ok":true, "n":[1]}}`, 200, &j)
		if j.State != api.StateCompleted || string(j.Result) != `{"ok":true,"n":[1]}` || j.FinishedAt.IsZero() || j.LeaseID != "" {
			t.Errorf("completed: %+v", j)
		}
		msg = s.callErr("POST", "/v1/jobs/1/complete", api.CompleteRequest{LeaseID: j1.LeaseID}, 409, api.CodeConflict)
		if !strings.Contains(msg, "not in flight (it is completed)") {
			t.Errorf("second complete: %q", msg)
		}

		// Fail with retry_in: scheduled then.
		s.call("POST", "/v1/jobs/2/fail", api.FailRequest{LeaseID: j2.LeaseID, Error: "boom", RetryIn: "1h"}, 200, &j)
		if j.State != api.StateScheduled || j.LastError != "boom" || j.RunAt.Before(time.Now().Add(59*time.Minute)) {
			t.Errorf("failed with retry_in: %+v", j)
		}
		// Fail on the last attempt: failed.
		s.call("POST", "/v1/jobs/3/fail", api.FailRequest{LeaseID: j3.LeaseID, Error: "last"}, 200, &j)
		if j.State != api.StateFailed || j.LastError != "last" {
			t.Errorf("failed on last attempt: %+v", j)
		}
		// Heartbeat extends the lease of job 4.
		var hb api.Job
		s.call("POST", "/v1/jobs/4/heartbeat", api.HeartbeatRequest{LeaseID: j4.LeaseID, Extend: "1h"}, 200, &hb)
		if !hb.LeaseDeadline.After(j4.LeaseDeadline.Add(50*time.Minute)) || hb.State != api.StateInFlight {
			t.Errorf("heartbeat: deadline %v, was %v", hb.LeaseDeadline, j4.LeaseDeadline)
		}
		s.callErr("POST", "/v1/jobs/4/heartbeat", api.HeartbeatRequest{LeaseID: j4.LeaseID, Extend: "-1s"}, 400, api.CodeInvalidArgument)
		s.callErr("POST", "/v1/jobs/4/heartbeat", api.HeartbeatRequest{LeaseID: j3.LeaseID}, 409, api.CodeConflict)
		// Fail without retry_in: the backoff policy (10s after attempt 1,
		// with jitter: 5s..10s).
		start := time.Now()
		s.call("POST", "/v1/jobs/4/fail", api.FailRequest{LeaseID: j4.LeaseID, Error: "again"}, 200, &j)
		if d := j.RunAt.Sub(start); j.State != api.StateScheduled || d < 4*time.Second || d > 11*time.Second {
			t.Errorf("backoff: %+v, run_at in %v", j, d)
		}
		// Final fails at once.
		s.call("POST", "/v1/jobs/2/retry", nil, 200, nil)
		l := s.lease(api.LeaseRequest{})
		s.call("POST", "/v1/jobs/2/fail", api.FailRequest{LeaseID: l[0].LeaseID, Error: "bad input", Final: true}, 200, &j)
		if j.State != api.StateFailed {
			t.Errorf("final: %+v", j)
		}
		s.callErr("POST", "/v1/jobs/2/fail", api.FailRequest{LeaseID: l[0].LeaseID, RetryIn: "x"}, 400, api.CodeInvalidArgument)
	})
}

func TestAck(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) { o.MaxBatch = 5 })
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t"},{"type":"t"}]}`, 201, nil)
		jobs := s.lease(api.LeaseRequest{Max: 3})
		if len(jobs) != 3 {
			t.Fatalf("leased %d", len(jobs))
		}
		oops := "oops"
		req := api.AckRequest{Acks: []api.AckItem{
			{ID: jobs[0].ID, LeaseID: jobs[0].LeaseID, Result: json.RawMessage(`[1,2]`)},
			{ID: jobs[1].ID, LeaseID: jobs[1].LeaseID, Error: &oops, RetryIn: "1m"},
			{ID: jobs[2].ID, LeaseID: jobs[0].LeaseID}, // stale lease
			{ID: "99", LeaseID: "1"}, // unknown job
			{ID: jobs[0].ID, LeaseID: jobs[0].LeaseID, Error: new(string)}, // duplicate: already completed
		}}
		before := s.spy.proposals.Load()
		var out api.AckResponse
		resp := s.call("POST", "/v1/ack", req, 200, &out)
		// the answer written by hand is what encoding/json writes
		if want, _ := json.Marshal(out); string(resp.body) != string(want)+"\n" {
			t.Errorf("ack answer\n%s\nwant\n%s", resp.body, want)
		}
		if n := s.spy.proposals.Load() - before; n != 1 {
			t.Errorf("ack proposed %d commands, want 1", n)
		}
		want := []struct {
			ok   bool
			code string
		}{{true, ""}, {true, ""}, {false, api.CodeConflict}, {false, api.CodeNotFound}, {false, api.CodeConflict}}
		if len(out.Results) != len(want) {
			t.Fatalf("results %+v", out)
		}
		for i, w := range want {
			r := out.Results[i]
			if r.OK != w.ok || r.ID != req.Acks[i].ID || (w.code == "") != (r.Error == nil) || (r.Error != nil && r.Error.Code != w.code) {
				t.Errorf("result %d: %+v (%+v), want %+v", i, r, r.Error, w)
			}
		}
		if j := s.get(jobs[0].ID); j.State != api.StateCompleted || string(j.Result) != "[1,2]" {
			t.Errorf("job 0: %+v", j)
		}
		if j := s.get(jobs[1].ID); j.State != api.StateScheduled || j.LastError != "oops" {
			t.Errorf("job 1: %+v", j)
		}
		if j := s.get(jobs[2].ID); j.State != api.StateInFlight {
			t.Errorf("job 2: %+v", j)
		}

		before = s.spy.proposals.Load()
		for body, msg := range map[string]string{
			`{"acks":[]}`: "acks must hold at least one ack",
			`{"acks":[{"id":"1","lease_id":"1"},{"id":"1"}]}`:                    "acks[1].lease_id is required",
			`{"acks":[{"id":"1","lease_id":"1"},{"id":1,"lease_id":"1"}]}`:       "acks[1].id: expected a string, got number",
			`{"acks":[{"id":"1","lease_id":"1","result":1,"error":"x"}]}`:        "acks[0]: result and error are exclusive",
			`{"acks":[{"id":"1","lease_id":"1","retry_in":"1s"}]}`:               "acks[0]: retry_in and final go with error",
			`{"acks":[{"id":"1","lease_id":"1","error":"x","retry_in":"soon"}]}`: `acks[0].retry_in: time: invalid duration "soon"`,
			`{"acks":[{"id":"1","lease_id":"1","bogus":1}]}`:                     `acks[0]: unknown field "bogus"`,
		} {
			if got := s.callErr("POST", "/v1/ack", body, 400, api.CodeInvalidArgument); !strings.Contains(got, msg) {
				t.Errorf("%s: %q, want %q", body, got, msg)
			}
		}
		s.callErr("POST", "/v1/ack", `{"acks":[{},{},{},{},{},{}]}`, 413, api.CodePayloadTooLarge)
		plain := `{"id":"1","lease_id":"1"}` // the form read without encoding/json
		s.callErr("POST", "/v1/ack", `{"acks":[`+strings.Repeat(plain+",", 5)+plain+`]}`, 413, api.CodePayloadTooLarge)
		if got := s.callErr("POST", "/v1/ack", `{"acks":[{"id":"1","lease_id":"18446744073709551616"}]}`, 400, api.CodeInvalidArgument); !strings.Contains(got, "acks[0].lease_id must be a decimal id") {
			t.Errorf("lease id out of range: %q", got)
		}
		if n := s.spy.proposals.Load() - before; n != 0 {
			t.Errorf("rejected ack calls proposed %d commands", n)
		}
	})
}
