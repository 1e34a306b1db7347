package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

func TestEnqueueThenGet(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		before := time.Now()
		runAt := time.Date(2100, 1, 2, 3, 4, 5, 6, time.UTC)
		res := s.enqueue(`{"queue":"emails","type":"send","payload":{"to":"a@b.c","n":[1,2]},"priority":7,
			"run_at":"2100-01-02T03:04:05.000000006Z","max_attempts":3,"timeout":"1m30s","unique_key":"k1"}`)
		if res.ID == "" || res.State != api.StateScheduled || res.Duplicate {
			t.Fatalf("enqueue answered %+v", res)
		}
		j := s.get(res.ID)
		want := api.Job{
			ID: res.ID, Queue: "emails", Type: "send", Payload: json.RawMessage(`{"to":"a@b.c","n":[1,2]}`),
			Priority: 7, State: api.StateScheduled, MaxAttempts: 3, Timeout: "1m30s", UniqueKey: "k1", RunAt: runAt,
		}
		created := j.CreatedAt
		if created.Before(before.Add(-time.Second)) || created.After(time.Now().Add(time.Second)) {
			t.Errorf("created_at %v is not now", created)
		}
		j.CreatedAt = time.Time{}
		if fmt.Sprint(j) != fmt.Sprint(want) {
			t.Errorf("got  %+v\nwant %+v", j, want)
		}

		// Defaults, and an absent payload is null.
		res = s.enqueue(api.EnqueueRequest{Type: "noop"})
		j = s.get(res.ID)
		if j.Queue != "default" || j.State != api.StatePending || string(j.Payload) != "null" || j.MaxAttempts != 25 || j.Timeout != "30s" || j.Attempt != 0 {
			t.Errorf("defaults: %+v", j)
		}
		// The wire form omits unset times and in-flight fields.
		r := s.do("GET", "/v1/jobs/"+res.ID, nil)
		for _, k := range []string{"started_at", "finished_at", "lease_id", "lease_deadline", "result", "last_error"} {
			if strings.Contains(string(r.body), `"`+k+`"`) {
				t.Errorf("%s present in %s", k, r.body)
			}
		}

		// A delay schedules the job.
		res = s.enqueue(api.EnqueueRequest{Type: "noop", Delay: "1h"})
		j = s.get(res.ID)
		if res.State != api.StateScheduled || j.RunAt.Before(time.Now().Add(59*time.Minute)) {
			t.Errorf("delay: %+v %+v", res, j)
		}

		// Same unique key while the first is unfinished: a duplicate.
		dup := s.enqueue(api.EnqueueRequest{Type: "other", UniqueKey: "k1"})
		if !dup.Duplicate || dup.ID != "1" {
			t.Errorf("duplicate: %+v", dup)
		}

		s.callErr("GET", "/v1/jobs/999", nil, http.StatusNotFound, api.CodeNotFound)
		s.callErr("GET", "/v1/jobs/abc", nil, http.StatusBadRequest, api.CodeInvalidArgument)
	})
}

func TestEnqueueValidation(t *testing.T) {
	cases := []struct {
		name, body, ctype string
		status            int
		code, msg         string
	}{
		{"unknown field", `{"type":"t","foo":1}`, "", 400, api.CodeInvalidArgument, `unknown field "foo"`},
		{"missing type", `{"payload":1}`, "", 400, api.CodeInvalidArgument, "type is required"},
		{"bad type", `{"type":"a b"}`, "", 400, api.CodeInvalidArgument, "type must match"},
		{"bad delay", `{"type":"t","delay":"x"}`, "", 400, api.CodeInvalidArgument, `delay: time: invalid duration "x"`},
		{"negative delay", `{"type":"t","delay":"-1s"}`, "", 400, api.CodeInvalidArgument, "delay must not be negative"},
		{"bad timeout", `{"type":"t","timeout":"5"}`, "", 400, api.CodeInvalidArgument, "timeout: time: missing unit"},
		{"negative timeout", `{"type":"t","timeout":"-5s"}`, "", 400, api.CodeInvalidArgument, "timeout must not be negative"},
		{"delay too long", `{"type":"t","delay":"2000000h"}`, "", 400, api.CodeInvalidArgument, "delay must be at most"},
		{"timeout too long", `{"type":"t","timeout":"200h"}`, "", 400, api.CodeInvalidArgument, "timeout must be between"},
		{"bad queue", `{"type":"t","queue":"a/b"}`, "", 400, api.CodeInvalidArgument, "queue must match [a-zA-Z0-9_.-]{1,128}"},
		{"run_at and delay", `{"type":"t","run_at":"2030-01-01T00:00:00Z","delay":"1s"}`, "", 400, api.CodeInvalidArgument, "run_at and delay are exclusive"},
		{"bad run_at", `{"type":"t","run_at":"tomorrow"}`, "", 400, api.CodeInvalidArgument, `run_at: parsing time "tomorrow"`},
		{"run_at number", `{"type":"t","run_at":5}`, "", 400, api.CodeInvalidArgument, "run_at: expected an RFC 3339 time string"},
		{"invalid payload", `{"type":"t","payload":{bad}}`, "", 400, api.CodeInvalidArgument, "payload: invalid JSON: invalid character 'b'"},
		{"truncated", `{"type":"t","payload":[1,`, "", 400, api.CodeInvalidArgument, "payload[1]: invalid JSON: unexpected end of input"},
		{"priority type", `{"type":"t","priority":"high"}`, "", 400, api.CodeInvalidArgument, "priority: expected a 32-bit integer, got string"},
		{"priority range", `{"type":"t","priority":3000000000}`, "", 400, api.CodeInvalidArgument, "priority: expected a 32-bit integer, got number 3000000000"},
		{"max_attempts", `{"type":"t","max_attempts":70000}`, "", 400, api.CodeInvalidArgument, "max_attempts must be between 1 and 65535"},
		{"unique key", `{"type":"t","unique_key":"` + strings.Repeat("k", 300) + `"}`, "", 400, api.CodeInvalidArgument, "unique_key is longer than 256 bytes"},
		{"trailing data", `{"type":"t"} {"type":"u"}`, "", 400, api.CodeInvalidArgument, "request body: unexpected data after the JSON value"},
		{"empty body", ``, "", 400, api.CodeInvalidArgument, "request body is empty"},
		{"array body", `[{"type":"t"}]`, "", 400, api.CodeInvalidArgument, "request body must be a JSON object, not array"},
		{"not JSON", `type=t`, "", 400, api.CodeInvalidArgument, "request body is not valid JSON"},
		{"wrong content type", `{"type":"t"}`, "text/plain", 415, api.CodeUnsupportedMediaType, `Content-Type must be application/json, not "text/plain"`},
	}
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ct := c.ctype
				if ct == "" {
					ct = "application/json"
				}
				r := s.do("POST", "/v1/jobs", c.body, "Content-Type", ct)
				var e api.Error
				if err := json.Unmarshal(r.body, &e); err != nil {
					t.Fatalf("%d %s: %v", r.status, r.body, err)
				}
				if r.status != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) {
					t.Errorf("got %d %s %q\nwant %d %s %q", r.status, e.Error.Code, e.Error.Message, c.status, c.code, c.msg)
				}
				if n := s.jobs(); n != 0 {
					t.Errorf("%d jobs stored", n)
				}
			})
		}
		// No Content-Type and a charset parameter are both accepted.
		s.call("POST", "/v1/jobs", nil, 400, nil) // no body, no Content-Type
		if r := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Content-Type", ""); r.status != 201 {
			t.Errorf("no Content-Type: %d %s", r.status, r.body)
		}
		if r := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Content-Type", "application/json; charset=utf-8"); r.status != 201 {
			t.Errorf("charset: %d %s", r.status, r.body)
		}
		if got := s.spy.proposals.Load(); got != 2 {
			t.Errorf("%d proposals, want 2: rejected requests must propose nothing", got)
		}
	})
}

func TestBatch(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) { o.MaxBatch = 5 })
		var res api.BatchResponse
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"a","unique_key":"u"},{"type":"b","delay":"1h"},{"type":"c","unique_key":"u"}]}`, 201, &res)
		if fmt.Sprint(res.IDs) != "[1 2 1]" || fmt.Sprint(res.Duplicates) != "[false false true]" {
			t.Fatalf("batch answered %+v", res)
		}
		if j := s.get("2"); j.Type != "b" || j.State != api.StateScheduled {
			t.Errorf("job 2: %+v", j)
		}
		before := s.jobs()
		bad := []struct {
			body   string
			status int
			msg    string
		}{
			{`{"jobs":[{"type":"a"},{"type":"a"},{"type":"a"},{"payload":1}]}`, 400, "jobs[3].type is required"},
			{`{"jobs":[{"type":"a"},{"type":"a","foo":1}]}`, 400, `jobs[1]: unknown field "foo"`},
			{`{"jobs":[{"type":"a"},{"type":"a","delay":"x"}]}`, 400, `jobs[1].delay: time: invalid duration "x"`},
			{`{"jobs":[{"type":"a"},{"type":"a","priority":"x"}]}`, 400, `jobs[1].priority: expected a 32-bit integer, got string`},
			{`{"jobs":[{"type":"a"},{"type":"a","queue":"b c"}]}`, 400, `jobs[1].queue must match`},
			{`{"jobs":[{"type":"a"},{"type":"a","payload":[1,}]}`, 400, `jobs[1].payload[1]: invalid JSON`},
			{`{"jobs":[]}`, 400, "jobs must hold at least one job"},
			{`{}`, 400, "jobs must hold at least one job"},
			{`{"jobs":{}}`, 400, "jobs: expected an array, got object"},
			{`{"jobs":[{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"}]}`, 413, "more than the limit of 5"},
		}
		for _, b := range bad {
			var e api.Error
			s.call("POST", "/v1/jobs/batch", b.body, b.status, &e)
			if !strings.Contains(e.Error.Message, b.msg) {
				t.Errorf("%s: message %q, want %q", b.body, e.Error.Message, b.msg)
			}
		}
		if n := s.jobs(); n != before {
			t.Errorf("%d jobs after rejected batches, want %d: a batch is all or none", n, before)
		}
	})
}

func TestLimits(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) {
			o.MaxPayload = 100
			o.MaxRequest = 1000
			o.MaxQueueDepth = 3
		})
		big := `{"type":"t","payload":"` + strings.Repeat("x", 100) + `"}`
		msg := s.callErr("POST", "/v1/jobs", big, 413, api.CodePayloadTooLarge)
		if !strings.Contains(msg, "payload is 102 bytes") {
			t.Errorf("message %q", msg)
		}
		huge := `{"type":"t","payload":"` + strings.Repeat("x", 2000) + `"}`
		s.callErr("POST", "/v1/jobs", huge, 413, api.CodePayloadTooLarge)
		if n := s.jobs(); n != 0 {
			t.Fatalf("%d jobs stored", n)
		}

		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t"}]}`, 201, nil)
		msg = s.callErr("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t"}]}`, 429, api.CodeQueueFull)
		if !strings.Contains(msg, "2 unfinished jobs") {
			t.Errorf("message %q", msg)
		}
		s.enqueue(`{"type":"t"}`)
		rr := s.do("POST", "/v1/jobs", `{"type":"t"}`)
		if rr.status != 429 || rr.header.Get("Retry-After") == "" {
			t.Errorf("queue full: %d %v %s", rr.status, rr.header, rr.body)
		}
		// Finished jobs do not count.
		s.call("POST", "/v1/jobs/1/cancel", nil, 200, nil)
		s.enqueue(`{"type":"t"}`)
	})
}

func TestBodyLimitChunked(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, func(o *Options) { o.MaxRequest = 1000 })
	huge := `{"type":"t","payload":"` + strings.Repeat("x", 2000) + `"}`
	req, err := http.NewRequest("POST", s.srv.URL+"/v1/jobs", struct{ *strings.Reader }{strings.NewReader(huge)})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // unknown: the server must count
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 || e.Error.Code != api.CodePayloadTooLarge || !strings.Contains(e.Error.Message, "limit of 1000 bytes") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
}

func TestAuth(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) { o.Tokens = []string{"s3cret", "other"} })
		for _, c := range []struct{ name, header, want string }{
			{"missing", "", "missing bearer token"},
			{"wrong", "Bearer nope", "invalid bearer token"},
			{"prefix", "Bearer s3cre", "invalid bearer token"},
			{"scheme", "Basic s3cret", "missing bearer token"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Authorization", c.header)
				var e api.Error
				json.Unmarshal(r.body, &e)
				if r.status != 401 || e.Error.Code != api.CodeUnauthorized || !strings.Contains(e.Error.Message, c.want) {
					t.Errorf("%d %s", r.status, r.body)
				}
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
				// Unknown /v1 routes need a token too.
				if r := s.do("GET", "/v1/nothing", nil, "Authorization", c.header); r.status != 401 {
					t.Errorf("unknown route: %d", r.status)
				}
			})
		}
		if n := s.jobs(); n != 0 {
			t.Fatalf("%d jobs stored without a token", n)
		}
		s.enqueue(`{"type":"t"}`) // with "s3cret"
		if r := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Authorization", "bearer other"); r.status != 201 {
			t.Errorf("second token, lower-case scheme: %d %s", r.status, r.body)
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := s.do("GET", p, nil, "Authorization", ""); r.status != 200 {
				t.Errorf("%s without token: %d", p, r.status)
			}
		}
	})
}

func TestReadiness(t *testing.T) {
	rep := newMemReplica()
	a := New(Options{})
	s := &server{t: t, api: a, spy: newSpy(rep)}
	s.srv = httptest.NewServer(a.Handler())
	t.Cleanup(s.srv.Close)
	var e api.Error
	s.call("GET", "/readyz", nil, 503, &e)
	if e.Error.Code != api.CodeUnavailable || e.Error.Message != "recovering" {
		t.Errorf("readyz before: %+v", e)
	}
	s.call("GET", "/healthz", nil, 200, nil)
	r := s.do("POST", "/v1/jobs", `{"type":"t"}`)
	if r.status != 503 || !strings.Contains(string(r.body), `{"error":{"code":"unavailable","message":"recovering"}}`) {
		t.Errorf("/v1 before: %d %s", r.status, r.body)
	}
	a.SetReplica(s.spy)
	var h api.Health
	s.call("GET", "/readyz", nil, 200, &h)
	if h.Status != "ready" {
		t.Errorf("readyz after: %+v", h)
	}
	s.enqueue(`{"type":"t"}`)
}

func TestProposeFailures(t *testing.T) {
	rep := newMemReplica()
	s := newServer(t, func(*testing.T) replica.Replica { return rep }, nil)
	// The replica translates storage errors into its own (local does it
	// for ENOSPC); the API matches only those.
	rep.setErr(fmt.Errorf("%w: wal: write segment 7: %w", replica.ErrDiskFull, syscall.ENOSPC))
	msg := s.callErr("POST", "/v1/jobs", `{"type":"t"}`, 507, api.CodeInsufficientStorage)
	if !strings.Contains(msg, "disk full") {
		t.Errorf("507 message %q", msg)
	}
	rep.setErr(errors.New("wal: fsync: input/output error"))
	msg = s.callErr("POST", "/v1/jobs", `{"type":"t"}`, 503, api.CodeUnavailable)
	if !strings.Contains(msg, "fsync: input/output error") {
		t.Errorf("503 message %q", msg)
	}
	s.callErr("POST", "/v1/jobs/1/cancel", nil, 503, api.CodeUnavailable)
	rep.setErr(replica.ErrClosed)
	s.callErr("POST", "/v1/jobs", `{"type":"t"}`, 503, api.CodeUnavailable)
}

func TestRoutesAndInstrument(t *testing.T) {
	var routes []string
	s := newServer(t, replicaKinds[0].open, func(o *Options) {
		o.Instrument = func(route string, h http.Handler) http.Handler {
			routes = append(routes, route)
			return h
		}
	})
	if len(routes) != 30 || routes[0] != "POST /v1/jobs" { // 20 + the 4 of /v1/periodic + the 6 of /v1/queues
		t.Errorf("instrumented %d routes: %q", len(routes), routes)
	}
	s.callErr("GET", "/v1/nothing", nil, 404, api.CodeNotFound)
	s.callErr("GET", "/nothing", nil, 404, api.CodeNotFound)
	r := s.do("DELETE", "/v1/jobs/1", nil)
	if r.status != 405 || !strings.Contains(r.header.Get("Allow"), "GET") || !strings.Contains(string(r.body), api.CodeMethodNotAllowed) {
		t.Errorf("405: %d %v %s", r.status, r.header, r.body)
	}
	if r := s.do("GET", "/v1/lease", nil); r.status != 405 {
		t.Errorf("GET /v1/lease: %d", r.status)
	}
}

func TestCancelRetry(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		id := s.enqueue(`{"type":"t","unique_key":"u"}`).ID
		var j api.Job
		s.call("POST", "/v1/jobs/"+id+"/cancel", nil, 200, &j)
		if j.State != api.StateCanceled || j.FinishedAt.IsZero() {
			t.Errorf("canceled: %+v", j)
		}
		msg := s.callErr("POST", "/v1/jobs/"+id+"/cancel", `{}`, 409, api.CodeConflict)
		if !strings.Contains(msg, "already canceled") {
			t.Errorf("message %q", msg)
		}
		s.call("POST", "/v1/jobs/"+id+"/retry", `{}`, 200, &j)
		if j.State != api.StatePending || !j.FinishedAt.IsZero() {
			t.Errorf("retried: %+v", j)
		}
		msg = s.callErr("POST", "/v1/jobs/"+id+"/retry", nil, 409, api.CodeConflict)
		if !strings.Contains(msg, "is pending: only failed, canceled or scheduled") {
			t.Errorf("message %q", msg)
		}
		// A retried job whose unique key was taken meanwhile.
		s.call("POST", "/v1/jobs/"+id+"/cancel", nil, 200, nil)
		s.enqueue(`{"type":"t","unique_key":"u"}`)
		s.callErr("POST", "/v1/jobs/"+id+"/retry", nil, 409, api.CodeConflict)
		s.callErr("POST", "/v1/jobs/99/cancel", nil, 404, api.CodeNotFound)
		s.callErr("POST", "/v1/jobs/99/retry", nil, 404, api.CodeNotFound)
		s.callErr("POST", "/v1/jobs/"+id+"/cancel", `{"x":1}`, 400, api.CodeInvalidArgument)
		// A scheduled job is made runnable now.
		id = s.enqueue(`{"type":"t","delay":"1h"}`).ID
		s.call("POST", "/v1/jobs/"+id+"/retry", nil, 200, &j)
		if j.State != api.StatePending {
			t.Errorf("retry scheduled: %+v", j)
		}
	})
}

func TestList(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		var jobs []api.EnqueueRequest
		for i := 0; i < 23; i++ {
			q := "a"
			if i%3 == 0 {
				q = "b"
			}
			jobs = append(jobs, api.EnqueueRequest{Queue: q, Type: fmt.Sprint("t", i%2)})
		}
		s.call("POST", "/v1/jobs/batch", api.BatchRequest{Jobs: jobs}, 201, nil)
		s.call("POST", "/v1/jobs/2/cancel", nil, 200, nil)

		page := func(query string) api.ListResponse {
			var out api.ListResponse
			s.call("GET", "/v1/jobs"+query, nil, 200, &out)
			return out
		}
		// Page through queue a, 4 at a time.
		var ids []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			p := page("?queue=a&limit=4&cursor=" + cursor)
			for _, j := range p.Jobs {
				if j.Queue != "a" {
					t.Errorf("queue filter: %+v", j)
				}
				ids = append(ids, j.ID)
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if len(ids) != 15 || ids[0] != "2" || ids[14] != "23" {
			t.Errorf("queue a: %v", ids)
		}
		if p := page(""); len(p.Jobs) != 23 || p.NextCursor != "" {
			t.Errorf("all: %d jobs, cursor %q", len(p.Jobs), p.NextCursor)
		}
		if p := page("?state=canceled"); len(p.Jobs) != 1 || p.Jobs[0].ID != "2" {
			t.Errorf("state filter: %+v", p)
		}
		if p := page("?type=t1&queue=b"); len(p.Jobs) != 4 {
			t.Errorf("type filter: %+v", p)
		}
		if p := page("?queue=none"); len(p.Jobs) != 0 || string(s.do("GET", "/v1/jobs?queue=none", nil).body) != "{\"jobs\":[],\"next_cursor\":\"\"}\n" {
			t.Errorf("empty: %+v", p)
		}
		// Newest first, 4 at a time; a cursor of one order is refused in
		// the other.
		ids = nil
		cursor = ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			p := page("?queue=a&order=desc&limit=4&cursor=" + cursor)
			for _, j := range p.Jobs {
				ids = append(ids, j.ID)
			}
			if p.NextCursor == "" {
				break
			}
			if pages == 0 {
				if got := s.callErr("GET", "/v1/jobs?queue=a&limit=4&cursor="+p.NextCursor, nil, 400, api.CodeInvalidArgument); !strings.Contains(got, "other order") {
					t.Errorf("desc cursor in an ascending list: %q", got)
				}
			}
			cursor = p.NextCursor
		}
		if len(ids) != 15 || ids[0] != "23" || ids[1] != "21" || ids[14] != "2" {
			t.Errorf("queue a, newest first: %v", ids)
		}
		if p := page("?order=asc&limit=1"); len(p.Jobs) != 1 || p.Jobs[0].ID != "1" {
			t.Errorf("order=asc: %+v", p)
		}
		for q, msg := range map[string]string{
			"?order=newest": "order must be asc (oldest first) or desc (newest first)",
			"?limit=0":      "limit must be an integer between 1 and 1000",
			"?limit=1001":   "limit must be",
			"?state=done":   "state must be one of pending",
			"?cursor=zzz":   "cursor",
			"?queue=a%20b":  "queue must match",
			"?queues=a":     `unknown query parameter "queues"`,
			"?cursor=AQ%3D": "cursor",
		} {
			if got := s.callErr("GET", "/v1/jobs"+q, nil, 400, api.CodeInvalidArgument); !strings.Contains(got, msg) {
				t.Errorf("%s: %q, want %q", q, got, msg)
			}
		}
	})
}

func TestStatus(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		s := newServer(t, open, func(o *Options) { o.Version = "v9.9.9" })
		s.call("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t","queue":"q2"},{"type":"t","delay":"1h"}]}`, 201, nil)
		s.call("POST", "/v1/jobs/1/cancel", nil, 200, nil)
		var st api.Status
		s.call("GET", "/v1/status", nil, 200, &st)
		want := api.StateCounts{Pending: 1, Scheduled: 1, Canceled: 1}
		if st.Jobs != want || st.Queues["q2"] != (api.StateCounts{Pending: 1}) || st.Queues["default"] != (api.StateCounts{Scheduled: 1, Canceled: 1}) {
			t.Errorf("counts: %+v", st)
		}
		if st.Version != "v9.9.9" || st.Role == "" || st.AppliedLSN == 0 || st.Uptime == "" {
			t.Errorf("status: %+v", st)
		}
	})
}

// Cursors survive a round trip and reject garbage.
func TestCursor(t *testing.T) {
	for _, desc := range []bool{false, true} {
		for _, id := range []uint64{1, 127, 128, 1 << 40, ^uint64(0)} {
			got, err := decodeCursor(encodeCursor(id, desc), desc)
			if err != nil || got != id {
				t.Errorf("%d (desc %v): %d %v", id, desc, got, err)
			}
			if _, err := decodeCursor(encodeCursor(id, desc), !desc); err == nil {
				t.Errorf("%d: a cursor of one order is accepted in the other", id)
			}
		}
		if encodeCursor(0, desc) != "" {
			t.Error("cursor of 0 is not empty")
		}
	}
}

func TestJSONPath(t *testing.T) {
	for in, want := range map[string]string{
		`{bad}`:                             "",
		`{"a":{"b":[1,2,{"c":x}]}}`:         "a.b[2].c",
		`{"a":1,"b":[1,}`:                   "b[1]",
		`{"jobs":[{"type":"x"},{"p":{1}}]}`: "jobs[1].p",
		`[1,2,x]`:                           "[2]",
	} {
		if got := jsonPath([]byte(in)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
