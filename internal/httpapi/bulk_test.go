package httpapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// failJob leases job id (the only runnable job of its queue) and fails it
// for good.
func (s *server) failJob(queue, id string) {
	s.t.Helper()
	jobs := s.lease(api.LeaseRequest{Queues: []string{queue}, Max: 1})
	if len(jobs) != 1 || jobs[0].ID != id {
		s.t.Fatalf("lease of %s: %+v, want job %s", queue, jobs, id)
	}
	s.call("POST", "/v1/jobs/"+id+"/fail", api.FailRequest{LeaseID: jobs[0].LeaseID, Error: "boom", Final: true}, 200, nil)
}

func (s *server) bulk(req api.BulkRequest) api.BulkResponse {
	s.t.Helper()
	var out api.BulkResponse
	s.call("POST", "/v1/jobs/bulk", req, 200, &out)
	return out
}

// states counts the jobs of the filter by state.
func (s *server) states(query string) map[string]int {
	s.t.Helper()
	var out api.ListResponse
	s.call("GET", "/v1/jobs?limit=1000&"+query, nil, 200, &out)
	n := map[string]int{}
	for _, j := range out.Jobs {
		n[j.State]++
	}
	return n
}

func TestBulkRetryFailedOfAQueue(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		for i := 0; i < 3; i++ {
			s.failJob("a", s.enqueue(api.EnqueueRequest{Queue: "a", Type: "t"}).ID)
		}
		s.failJob("b", s.enqueue(api.EnqueueRequest{Queue: "b", Type: "t"}).ID)
		s.enqueue(api.EnqueueRequest{Queue: "a", Type: "t"}) // pending: not matched
		before := s.spy.proposals.Load()

		got := s.bulk(api.BulkRequest{Action: "retry", Queue: "a", State: "failed"})
		if got != (api.BulkResponse{Matched: 3, Changed: 3}) {
			t.Fatalf("bulk retry: %+v", got)
		}
		if n := s.spy.proposals.Load() - before; n != 3 {
			t.Errorf("%d proposals, want one per job", n)
		}
		if st := s.states("queue=a"); st[api.StatePending] != 4 || len(st) != 1 {
			t.Errorf("queue a after retry: %v", st)
		}
		if st := s.states("queue=b"); st[api.StateFailed] != 1 {
			t.Errorf("queue b was touched: %v", st)
		}
		// Nothing left to do: nothing matched, nothing proposed.
		before = s.spy.proposals.Load()
		if got := s.bulk(api.BulkRequest{Action: "retry", Queue: "a", State: "failed"}); got != (api.BulkResponse{}) {
			t.Errorf("second bulk retry: %+v", got)
		}
		if s.spy.proposals.Load() != before {
			t.Error("an empty bulk call proposed something")
		}
	})
}

func TestBulkCancelScheduledOfAType(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		s.call("POST", "/v1/jobs/batch", `{"jobs":[
			{"type":"x","delay":"1h"},{"type":"x","delay":"1h","queue":"q2"},{"type":"x"},
			{"type":"y","delay":"1h"},{"type":"x","delay":"2h"}]}`, 201, nil)
		got := s.bulk(api.BulkRequest{Action: "cancel", Type: "x", State: "scheduled"})
		if got != (api.BulkResponse{Matched: 3, Changed: 3}) {
			t.Fatalf("bulk cancel: %+v", got)
		}
		if st := s.states("type=x"); st[api.StateCanceled] != 3 || st[api.StatePending] != 1 {
			t.Errorf("type x after cancel: %v", st)
		}
		if st := s.states("type=y"); st[api.StateScheduled] != 1 {
			t.Errorf("type y was touched: %v", st)
		}
	})
}

// A bulk call stops at its limit and says that more jobs match; the next
// call goes on.
func TestBulkLimit(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	for i := 0; i < 5; i++ {
		s.enqueue(api.EnqueueRequest{Type: "t"})
	}
	for i, want := range []api.BulkResponse{
		{Matched: 2, Changed: 2, More: true},
		{Matched: 2, Changed: 2, More: true},
		{Matched: 1, Changed: 1},
		{},
	} {
		if got := s.bulk(api.BulkRequest{Action: "cancel", State: "pending", Limit: 2}); got != want {
			t.Errorf("call %d: %+v, want %+v", i, got, want)
		}
	}
	// exactly the limit, nothing more: More is not set
	for i := 0; i < 3; i++ {
		s.enqueue(api.EnqueueRequest{Type: "t"})
	}
	if got := s.bulk(api.BulkRequest{Action: "cancel", State: "pending", Limit: 3}); got != (api.BulkResponse{Matched: 3, Changed: 3}) {
		t.Errorf("exact limit: %+v", got)
	}
}

// More jobs than one read collects: the call goes on page after page.
func TestBulkManyPages(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	n := 2*bulkBatch + 17
	reqs := make([]api.EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = api.EnqueueRequest{Type: "t", Delay: "1h"}
	}
	s.call("POST", "/v1/jobs/batch", api.BatchRequest{Jobs: reqs}, 201, nil)
	s.enqueue(api.EnqueueRequest{Type: "t"}) // pending: not matched
	if got := s.bulk(api.BulkRequest{Action: "retry", State: "scheduled"}); got != (api.BulkResponse{Matched: n, Changed: n}) {
		t.Fatalf("bulk retry of %d jobs: %+v", n, got)
	}
	var total fsm.QueueCounts
	s.spy.Read(func(m *fsm.Machine) { total = m.Totals() })
	if total.Count(fsm.StatePending) != n+1 || total.Count(fsm.StateScheduled) != 0 {
		t.Errorf("after bulk retry: %+v", total)
	}
}

// The state machine refuses what the state does not allow, job by job: the
// call counts the refusals and quotes the first one.
func TestBulkRefusals(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		s.enqueue(api.EnqueueRequest{Type: "t"})
		s.enqueue(api.EnqueueRequest{Type: "t"})
		got := s.bulk(api.BulkRequest{Action: "retry", State: "pending"})
		if got.Matched != 2 || got.Changed != 0 || got.Errors != 2 || got.FirstError == nil ||
			got.FirstError.Code != api.CodeConflict || !strings.Contains(got.FirstError.Message, "only failed, canceled or scheduled jobs can be retried") {
			t.Fatalf("bulk retry of pending jobs: %+v %+v", got, got.FirstError)
		}
		if st := s.states(""); st[api.StatePending] != 2 {
			t.Errorf("jobs changed: %v", st)
		}
	})
}

func TestBulkInvalid(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	s.enqueue(api.EnqueueRequest{Type: "t"})
	for body, msg := range map[string]string{
		`{"state":"failed"}`:                                 "action is required",
		`{"action":"delete","state":"failed"}`:               `action must be cancel or retry, not "delete"`,
		`{"action":"retry"}`:                                 "state is required",
		`{"action":"retry","state":"dead"}`:                  `state must be one of pending, scheduled, in_flight, blocked, completed, failed, canceled, not "dead"`,
		`{"action":"retry","state":"failed","queue":"a b"}`:  "queue must match",
		`{"action":"retry","state":"failed","type":"a b"}`:   "type must match",
		`{"action":"retry","state":"failed","limit":-1}`:     "limit must be between 1 and 100000",
		`{"action":"retry","state":"failed","limit":100001}`: "limit must be between 1 and 100000",
		`{"action":"retry","state":"failed","queues":["a"]}`: `unknown field "queues"`,
		`{"action":"retry","state":"failed","limit":"many"}`: "limit",
		`[]`: "",
	} {
		if got := s.callErr("POST", "/v1/jobs/bulk", body, 400, api.CodeInvalidArgument); !strings.Contains(got, msg) {
			t.Errorf("%s: %q, want %q", body, got, msg)
		}
	}
	if s.spy.proposals.Load() != 1 {
		t.Errorf("an invalid bulk call proposed something")
	}
	if st := s.states(""); st[api.StatePending] != 1 {
		t.Errorf("jobs changed: %v", st)
	}
}

// A failure of the log stops the call with the log's error, saying how far
// it got.
func TestBulkLogFailure(t *testing.T) {
	rep := newMemReplica()
	s := newServer(t, func(*testing.T) replica.Replica { return rep }, nil)
	s.enqueue(api.EnqueueRequest{Type: "t"})
	rep.setErr(fmt.Errorf("%w: fdatasync: input/output error", replica.ErrFailed))
	msg := s.callErr("POST", "/v1/jobs/bulk", api.BulkRequest{Action: "cancel", State: "pending"}, 503, api.CodeUnavailable)
	if !strings.Contains(msg, "write-ahead log failed") || !strings.Contains(msg, "the bulk cancel stopped after it changed 0 jobs") {
		t.Errorf("503 message %q", msg)
	}
}
