package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

func TestPeriodicRoutes(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(t *testing.T) replica.Replica) {
		now := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
		s := newServer(t, open, func(o *Options) { o.Clock = func() time.Time { return now } })
		var p api.Periodic
		s.call("PUT", "/v1/periodic/nightly", `{"cron":"0 3 * * *","catch_up":"all","job":{"queue":"reports","type":"report","payload":{"a":1},"timeout":"5m"}}`, 200, &p)
		if p.Name != "nightly" || p.Cron != "0 3 * * *" || p.CatchUp != "all" || p.Origin != "api" || p.Job.Queue != "reports" ||
			p.Job.Timeout != "5m0s" || p.Job.MaxAttempts != 25 || string(p.Job.Payload) != `{"a":1}` ||
			!p.NextRun.Equal(time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)) || !p.LastFired.IsZero() || !p.Since.Equal(now) {
			t.Fatalf("put answered %+v", p)
		}
		s.call("PUT", "/v1/periodic/tick", `{"every":"90s","job":{"type":"t"}}`, 200, &p)
		if p.Every != "1m30s" || p.CatchUp != "one" || !p.NextRun.Equal(now.Add(90*time.Second)) {
			t.Fatalf("interval put answered %+v", p)
		}
		var list api.PeriodicList
		s.call("GET", "/v1/periodic", nil, 200, &list)
		if len(list.Schedules) != 2 || list.Schedules[0].Name != "nightly" || list.Schedules[1].Name != "tick" {
			t.Fatalf("list %+v", list)
		}
		s.call("GET", "/v1/periodic/tick", nil, 200, &p)
		if p.Name != "tick" {
			t.Fatalf("get %+v", p)
		}
		s.call("DELETE", "/v1/periodic/tick", nil, 200, &p)
		if msg := s.callErr("GET", "/v1/periodic/tick", nil, 404, api.CodeNotFound); !strings.Contains(msg, "no schedule named tick") {
			t.Fatalf("get after delete: %q", msg)
		}
		s.callErr("DELETE", "/v1/periodic/tick", nil, 404, api.CodeNotFound)
		s.call("GET", "/v1/periodic", nil, 200, &list)
		if len(list.Schedules) != 1 {
			t.Fatalf("list after delete %+v", list)
		}
	})
}

func TestPeriodicBadInput(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	for body, msg := range map[string]string{
		`{"job":{"type":"t"}}`:                                   "give cron",
		`{"cron":"@hourly","every":"1m","job":{"type":"t"}}`:     "cron and every are exclusive",
		`{"cron":"61 * * * *","job":{"type":"t"}}`:               "cron: ",
		`{"every":"soon","job":{"type":"t"}}`:                    "every: ",
		`{"every":"100ms","job":{"type":"t"}}`:                   "every must be at least 1s",
		`{"every":"1m","catch_up":"most","job":{"type":"t"}}`:    "catch_up must be none, one or all",
		`{"every":"1m","job":{}}`:                                "job.type is required",
		`{"every":"1m","job":{"type":"t","queue":"a b"}}`:        "job.queue must match",
		`{"every":"1m","job":{"type":"t","timeout":"169h"}}`:     "job.timeout must be between",
		`{"every":"1m","job":{"type":"t","unique_key":"k"}}`:     `unknown field "unique_key"`,
		`{"every":"1m","job":{"type":"t","max_attempts":70000}}`: "job.max_attempts",
		`{"every":"1m","job":{"type":"t"},"depends_on":["1"]}`:   `unknown field "depends_on"`,
		`{"every":"1m","job":{"type":"t","timeout":"forever"}}`:  "job.timeout",
	} {
		if got := s.callErr("PUT", "/v1/periodic/s", body, 400, api.CodeInvalidArgument); !strings.Contains(got, msg) {
			t.Errorf("%s: %q, want %q", body, got, msg)
		}
	}
	if got := s.callErr("PUT", "/v1/periodic/bad%20name", `{"every":"1m","job":{"type":"t"}}`, 400, api.CodeInvalidArgument); !strings.Contains(got, "name must match") {
		t.Errorf("bad name: %q", got)
	}
	var n int
	s.spy.Read(func(m *fsm.Machine) { n = len(m.Schedules()) })
	if n != 0 || s.spy.proposals.Load() != 0 {
		t.Fatalf("bad input stored %d schedules, proposed %d", n, s.spy.proposals.Load())
	}
}

func TestDependsOnRoutes(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(t *testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		a := s.enqueue(`{"type":"t"}`)
		var batch api.BatchResponse
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t","depends_on":["`+a.ID+`"],"depends_on_index":[0]},{"type":"t","depends_on_index":[1],"on_dependency_failure":"run"}]}`, 201, &batch)
		j := s.get(batch.IDs[1])
		if j.State != api.StateBlocked || len(j.DependsOn) != 2 || j.DependsOn[0] != a.ID || j.DependsOn[1] != batch.IDs[0] || len(j.WaitingFor) != 2 {
			t.Fatalf("dependent %+v", j)
		}
		if j := s.get(batch.IDs[2]); j.OnDependencyFailure != "run" || j.WaitingFor[0] != batch.IDs[1] {
			t.Fatalf("run-anyway dependent %+v", j)
		}
		var st api.Status
		s.call("GET", "/v1/status", nil, 200, &st)
		if st.Jobs.Blocked != 2 || st.Jobs.Pending != 2 {
			t.Fatalf("status counts %+v", st.Jobs)
		}
		var list api.ListResponse
		s.call("GET", "/v1/jobs?state=blocked", nil, 200, &list)
		if len(list.Jobs) != 2 {
			t.Fatalf("blocked list %+v", list)
		}
		// cancel the first dependency: the dependent is canceled, naming it; the third runs anyway
		s.call("POST", "/v1/jobs/"+a.ID+"/cancel", nil, 200, nil)
		if j := s.get(batch.IDs[1]); j.State != api.StateCanceled || j.LastError != "dependency "+a.ID+" canceled" || len(j.WaitingFor) != 0 {
			t.Fatalf("dependent after its dependency was canceled: %+v", j)
		}
		if j := s.get(batch.IDs[2]); j.State != api.StatePending {
			t.Fatalf("run-anyway dependent: %+v", j)
		}
	})
}

func TestDependsOnBadInput(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	s.enqueue(`{"type":"t"}`)
	for _, tc := range []struct{ path, body, msg string }{
		{"/v1/jobs", `{"type":"t","depends_on":["99"]}`, "depends_on[0] names job 99, which does not exist"},
		{"/v1/jobs", `{"type":"t","depends_on":["x"]}`, `depends_on[0] must be a decimal job id, not "x"`},
		{"/v1/jobs", `{"type":"t","depends_on":[1]}`, "depends_on"},
		{"/v1/jobs", `{"type":"t","depends_on_index":[0]}`, "depends_on_index[0] must name an earlier job of the same batch"},
		{"/v1/jobs", `{"type":"t","depends_on":["1"],"on_dependency_failure":"skip"}`, "on_dependency_failure must be cancel or run"},
		{"/v1/jobs", `{"type":"t","on_dependency_failure":"run"}`, "on_dependency_failure needs depends_on"},
		{"/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t","depends_on_index":[1]}]}`, "jobs[1].depends_on_index[0] is 1: it must name an earlier job of the same batch (0 to 0)"},
		{"/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t","depends_on":["1","3"]}]}`, "jobs[1].depends_on[1] names job 3, which does not exist"},
	} {
		if got := s.callErr("POST", tc.path, tc.body, 400, api.CodeInvalidArgument); !strings.Contains(got, tc.msg) {
			t.Errorf("%s: %q, want %q", tc.body, got, tc.msg)
		}
	}
	if s.jobs() != 1 {
		t.Fatalf("bad input stored jobs: %d", s.jobs())
	}
}
