package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

func (s *server) queue(method, path string, body any) api.Queue {
	s.t.Helper()
	var q api.Queue
	s.call(method, path, body, 200, &q)
	return q
}

func TestQueuesPauseResumeAndSettings(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		var list api.QueueList
		if s.call("GET", "/v1/queues", nil, 200, &list); len(list.Queues) != 0 {
			t.Fatalf("queues of an empty server: %+v", list)
		}
		// a queue nobody used yet answers, with nothing
		if q := s.queue("GET", "/v1/queues/emails", nil); q.Name != "emails" || q.Paused || q.Rate != nil || q.Jobs != (api.StateCounts{}) {
			t.Fatalf("unused queue: %+v", q)
		}
		// pausing it before it holds jobs works; enqueues still work
		if q := s.queue("POST", "/v1/queues/emails/pause", nil); !q.Paused || q.Blocked != "paused" {
			t.Fatalf("pause: %+v", q)
		}
		id := s.enqueue(`{"queue":"emails","type":"t"}`).ID
		if jobs := s.lease(api.LeaseRequest{Queues: []string{"emails"}}); len(jobs) != 0 {
			t.Fatalf("leased %d jobs of a paused queue", len(jobs))
		}
		var st api.Status
		s.call("GET", "/v1/status", nil, 200, &st)
		if len(st.PausedQueues) != 1 || st.PausedQueues[0] != "emails" {
			t.Fatalf("status paused_queues %v", st.PausedQueues)
		}
		s.call("GET", "/v1/queues", nil, 200, &list)
		if len(list.Queues) != 1 || !list.Queues[0].Paused || list.Queues[0].Jobs.Pending != 1 {
			t.Fatalf("queues %+v", list)
		}
		// resuming: leasable again
		if q := s.queue("POST", "/v1/queues/emails/resume", ``); q.Paused || q.Blocked != "" {
			t.Fatalf("resume: %+v", q)
		}
		if jobs := s.lease(api.LeaseRequest{Queues: []string{"emails"}}); len(jobs) != 1 || jobs[0].ID != id {
			t.Fatalf("lease after resume: %+v", jobs)
		}
		// PUT replaces every setting; PATCH changes the given ones
		q := s.queue("PUT", "/v1/queues/emails", `{"concurrency":1,"rate":{"limit":100,"period":"1s"}}`)
		if q.Paused || q.Concurrency != 1 || q.Rate == nil || q.Rate.Limit != 100 || q.Rate.Period != "1s" || q.Blocked != "concurrency" {
			t.Fatalf("put: %+v", q)
		}
		q = s.queue("PATCH", "/v1/queues/emails", `{"paused":true}`)
		if !q.Paused || q.Concurrency != 1 || q.Rate == nil {
			t.Fatalf("patch paused kept the limits? %+v", q)
		}
		q = s.queue("PATCH", "/v1/queues/emails", `{"concurrency":null,"rate":{"limit":0}}`)
		if !q.Paused || q.Concurrency != 0 || q.Rate != nil {
			t.Fatalf("patch clearing the limits: %+v", q)
		}
		if q = s.queue("PUT", "/v1/queues/emails", `{}`); q.Paused || q.Concurrency != 0 || q.Rate != nil {
			t.Fatalf("put {} must clear everything: %+v", q)
		}
		s.call("GET", "/v1/status", nil, 200, &st)
		if len(st.PausedQueues) != 0 {
			t.Fatalf("paused_queues after clearing: %v", st.PausedQueues)
		}
	})
}

func TestQueueSettingsRejected(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	for _, tc := range []struct{ method, path, body, msg string }{
		{"GET", "/v1/queues/bad%20name", "", "queue name must match"},
		{"POST", "/v1/queues/bad%20name/pause", "", "queue name must match"},
		{"PUT", "/v1/queues/q", `{"concurency":1}`, `unknown field "concurency"`},
		{"PUT", "/v1/queues/q", ``, "request body"},
		{"PATCH", "/v1/queues/q", `{}`, "give at least one of paused, concurrency and rate"},
		{"PATCH", "/v1/queues/q", `{"paused":null}`, "paused must be true or false"},
		{"PATCH", "/v1/queues/q", `{"paused":"yes"}`, "paused must be true or false"},
		{"PUT", "/v1/queues/q", `{"concurrency":-1}`, "concurrency must be an integer between 0"},
		{"PUT", "/v1/queues/q", `{"concurrency":1.5}`, "concurrency must be an integer between 0"},
		{"PUT", "/v1/queues/q", `{"concurrency":2000000}`, "concurrency must be an integer between 0"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":-1,"period":"1s"}}`, "rate.limit must be between 0"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":5}}`, "rate.period is required"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":0,"period":"1s"}}`, "rate.period must not be given"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":5,"period":"10"}}`, "rate.period"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":5,"period":"100us"}}`, "rate.period must be at least 1ms"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":5,"period":"200h"}}`, "rate.period must be at most"},
		{"PUT", "/v1/queues/q", `{"rate":{"limit":5,"per":"1s"}}`, `rate: unknown field "per"`},
		{"PUT", "/v1/queues/q", `{"rate":5}`, "rate"},
		{"GET", "/v1/queues?x=1", "", "unknown query parameter"},
	} {
		var body any
		if tc.body != "" || tc.method == "PUT" {
			body = tc.body
		}
		if got := s.callErr(tc.method, tc.path, body, 400, api.CodeInvalidArgument); !strings.Contains(got, tc.msg) {
			t.Errorf("%s %s %s: %q, want %q", tc.method, tc.path, tc.body, got, tc.msg)
		}
	}
	if s.jobs() != 0 {
		t.Fatal("jobs appeared")
	}
}

// Limits hold for remote workers: a concurrency limit across lease calls,
// a rate window with the queue saying what holds it back.
func TestLeaseUnderQueueLimits(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		for range 4 {
			s.enqueue(`{"queue":"c","type":"t"}`)
			s.enqueue(`{"queue":"r","type":"t"}`)
		}
		s.queue("PUT", "/v1/queues/c", `{"concurrency":2}`)
		s.queue("PUT", "/v1/queues/r", `{"rate":{"limit":3,"period":"1h"}}`)
		if a, b := s.lease(api.LeaseRequest{Queues: []string{"c"}, Max: 1}), s.lease(api.LeaseRequest{Queues: []string{"c"}, Max: 5}); len(a) != 1 || len(b) != 1 {
			t.Fatalf("two workers under a concurrency of 2: %d and %d jobs", len(a), len(b))
		}
		if got := s.lease(api.LeaseRequest{Queues: []string{"r"}, Max: 5}); len(got) != 3 {
			t.Fatalf("rate 3/h: %d jobs", len(got))
		}
		if got := s.lease(api.LeaseRequest{Queues: []string{"c", "r"}, Max: 5}); len(got) != 0 {
			t.Fatalf("both queues limited, yet %d jobs", len(got))
		}
		q := s.queue("GET", "/v1/queues/r", nil)
		if q.Blocked != "rate" || q.RateWindow == nil || q.RateWindow.Used != 3 || time.Until(q.RateWindow.ResetsAt) < 59*time.Minute {
			t.Fatalf("rate-limited queue: %+v", q)
		}
		if q := s.queue("GET", "/v1/queues/c", nil); q.Blocked != "concurrency" || q.Jobs.InFlight != 2 {
			t.Fatalf("concurrency-limited queue: %+v", q)
		}
	})
}

// A long poll on a paused queue waits, writing nothing, and gets the job
// once the queue is resumed.
func TestLongPollWakesOnResume(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		s.queue("POST", "/v1/queues/q/pause", nil)
		id := s.enqueue(`{"queue":"q","type":"t"}`).ID
		before := s.spy.proposals.Load()
		done := make(chan []api.Job, 1)
		go func() {
			var out api.LeaseResponse
			r := s.do("POST", "/v1/lease", `{"queues":["q"],"wait":"20s"}`)
			json.Unmarshal(r.body, &out)
			done <- out.Jobs
		}()
		<-s.spy.polled // parked
		if n := s.spy.proposals.Load(); n != before {
			t.Fatalf("the long poll on a paused queue proposed %d commands", n-before)
		}
		s.queue("POST", "/v1/queues/q/resume", nil)
		if jobs := <-done; len(jobs) != 1 || jobs[0].ID != id {
			t.Fatalf("long poll after resume: %+v", jobs)
		}
	})
}

// The reports of a job canceled while it ran answer 409 canceled, and the
// job stays canceled.
func TestReportsOfACanceledJob(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		s.enqueue(`{"type":"t"}`)
		j := s.lease(api.LeaseRequest{})[0]
		var canceled api.Job
		s.call("POST", "/v1/jobs/"+j.ID+"/cancel", nil, 200, &canceled)
		if canceled.State != api.StateCanceled || canceled.LeaseID != "" {
			t.Fatalf("cancel: %+v", canceled)
		}
		lease := `{"lease_id":"` + j.LeaseID + `"}`
		for _, p := range []struct{ path, body string }{
			{"/heartbeat", lease},
			{"/complete", `{"lease_id":"` + j.LeaseID + `","result":1}`},
			{"/fail", `{"lease_id":"` + j.LeaseID + `","error":"x"}`},
		} {
			if msg := s.callErr("POST", "/v1/jobs/"+j.ID+p.path, p.body, 409, api.CodeCanceled); !strings.Contains(msg, "canceled") {
				t.Errorf("%s: %q", p.path, msg)
			}
		}
		var ack api.AckResponse
		s.call("POST", "/v1/ack", `{"acks":[{"id":"`+j.ID+`","lease_id":"`+j.LeaseID+`"}]}`, 200, &ack)
		if ack.Results[0].OK || ack.Results[0].Error == nil || ack.Results[0].Error.Code != api.CodeCanceled {
			t.Fatalf("ack of a canceled job: %+v", ack.Results[0])
		}
		if got := s.get(j.ID); got.State != api.StateCanceled || len(got.Result) != 0 {
			t.Fatalf("job after the reports: %+v", got)
		}
	})
}

func TestUniqueForOverHTTP(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		first := s.enqueue(`{"type":"t","unique_key":"msg-1","unique_for":"1h"}`)
		if j := s.get(first.ID); j.UniqueFor != "1h0m0s" {
			t.Fatalf("job unique_for %q", j.UniqueFor)
		}
		j := s.lease(api.LeaseRequest{})[0]
		s.call("POST", "/v1/jobs/"+j.ID+"/complete", `{"lease_id":"`+j.LeaseID+`"}`, 200, nil)
		again := s.enqueue(`{"type":"t","unique_key":"msg-1"}`)
		if !again.Duplicate || again.ID != first.ID || again.State != api.StateCompleted {
			t.Fatalf("re-enqueue within the window: %+v", again)
		}
		var batch api.BatchResponse
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t","unique_key":"msg-1"},{"type":"t","unique_key":"msg-2","unique_for":"30m"}]}`, 201, &batch)
		if !batch.Duplicates[0] || batch.IDs[0] != first.ID || batch.Duplicates[1] {
			t.Fatalf("batch: %+v", batch)
		}
		for body, msg := range map[string]string{
			`{"type":"t","unique_for":"1h"}`:                         "unique_for needs a unique_key",
			`{"type":"t","unique_key":"k","unique_for":"soon"}`:      "unique_for: time: invalid duration",
			`{"type":"t","unique_key":"k","unique_for":"-1h"}`:       "unique_for must not be negative",
			`{"type":"t","unique_key":"k","unique_for":"9000h"}`:     "unique_for must be between 0 and 8760h",
			`{"jobs":[{"type":"t"},{"type":"t","unique_for":"1h"}]}`: "jobs[1].unique_for needs a unique_key",
		} {
			path := "/v1/jobs"
			if strings.HasPrefix(body, `{"jobs"`) {
				path = "/v1/jobs/batch"
			}
			if got := s.callErr("POST", path, body, 400, api.CodeInvalidArgument); !strings.Contains(got, msg) {
				t.Errorf("%s: %q, want %q", body, got, msg)
			}
		}
	})
}
