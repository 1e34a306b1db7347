package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// The fuzz targets call the handler in process (no network) over the
// in-memory replica, a fresh one per input, with small limits so that every
// limit is within reach of short inputs. Their properties:
//
//   - no panic, and no 5xx but the one the replica double is told to cause;
//   - every error answer is a JSON {"error":{"code","message"}} with the
//     code that goes with its status;
//   - a 4xx (and an injected failure) changes nothing: no command applied;
//   - a 2xx only for a body that is valid by an oracle written independently
//     of the handler, and it did exactly what the body said (a 201 stored
//     exactly the jobs of the body, a lease leased exactly the jobs it
//     answered, an ack applied exactly the acks it reports as ok).
//
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzEnqueue$' -fuzztime 60s ./internal/httpapi/

// fuzzNow is the fixed clock of the fuzz targets.
var fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fuzzOptions are the limits of the fuzz targets.
func fuzzOptions() Options {
	return Options{
		Clock:         func() time.Time { return fuzzNow },
		MaxPayload:    256,
		MaxRequest:    4096,
		MaxBatch:      8,
		MaxQueueDepth: 12,
		MaxLease:      4,
		MaxWait:       time.Microsecond, // a long poll must not slow the fuzzer down
	}
}

// fuzzRequest sends one request to h in process.
func fuzzRequest(h http.Handler, method, path, ctype string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// codeOfStatus is the error code each error status must come with.
var codeOfStatus = map[int]string{
	400: api.CodeInvalidArgument,
	401: api.CodeUnauthorized,
	404: api.CodeNotFound,
	405: api.CodeMethodNotAllowed,
	408: codeRequestTimeout,
	409: api.CodeConflict,
	413: api.CodePayloadTooLarge,
	415: api.CodeUnsupportedMediaType,
	429: api.CodeQueueFull,
	500: api.CodeInternal,
	503: api.CodeUnavailable,
	507: api.CodeInsufficientStorage,
}

// checkErrorBody fails unless rec is a well-formed JSON error answer.
func checkErrorBody(t *testing.T, rec *httptest.ResponseRecorder) api.Error {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d with Content-Type %q: %s", rec.Code, ct, rec.Body.Bytes())
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("status %d: error body %q: %v", rec.Code, rec.Body.Bytes(), err)
	}
	if want := codeOfStatus[rec.Code]; want == "" || e.Error.Code != want || e.Error.Message == "" {
		t.Fatalf("status %d answered code %q (want %q) message %q", rec.Code, e.Error.Code, want, e.Error.Message)
	}
	if m := e.Error.Message; !utf8.ValidString(m) || len(m) > maxMessage+len("... (cut)") {
		t.Fatalf("error message %q", m)
	}
	return e
}

// applied is the number of commands the replica applied.
func (r *memReplica) appliedCount() uint64 { return r.h.Applied() }

// The oracle: what makes a request body acceptable, written from the
// documentation (docs/api.md), not from the handler's code.

var (
	oracleQueueName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	oracleTypeName  = regexp.MustCompile(`^[a-zA-Z0-9_.:/-]{1,128}$`)
)

// oracleObject reports whether b is one JSON object of valid UTF-8 whose
// keys are all among known (matched as encoding/json matches them: without
// regard to case), and returns its members by lower-cased key (the last of
// duplicate keys wins, as in encoding/json).
func oracleObject(b []byte, known ...string) (map[string]json.RawMessage, bool) {
	if !utf8.Valid(b) || !json.Valid(b) {
		return nil, false
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return nil, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil, false
	}
	out := make(map[string]json.RawMessage, len(raw))
	// encoding/json keeps the last of duplicate keys; a map loses the order,
	// so read the keys again in order.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token() // {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		matched := ""
		for _, k := range known {
			if strings.EqualFold(k, key) {
				matched = k
			}
		}
		if matched == "" {
			return nil, false
		}
		out[matched] = v
	}
	return out, true
}

// oracleString decodes raw as a JSON string ("" when raw is absent or
// null); ok is false for any other JSON value.
func oracleString(raw json.RawMessage) (string, bool) {
	if raw == nil || string(raw) == "null" {
		return "", true
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

// oracleJob is one job of an enqueue body, as the documentation says the
// server stores it.
type oracleJob struct {
	queue, typ, payload, uniqueKey string
	priority                       int64
	maxAttempts                    int64
	timeout                        time.Duration
}

// oracleEnqueue checks one job object of an enqueue body. It returns ok
// false when the object must be refused. Only the fields it is sure about
// are checked: it may accept what the server refuses (a run_at of a bad
// form, a delay that is too long), never the reverse.
func oracleEnqueue(b []byte, o Options) (oracleJob, bool) {
	m, ok := oracleObject(b, "queue", "type", "payload", "priority", "run_at", "delay", "max_attempts", "timeout", "unique_key")
	if !ok {
		return oracleJob{}, false
	}
	j := oracleJob{queue: o.DefaultQueue, payload: "null", maxAttempts: int64(o.DefaultMaxAttempts), timeout: o.DefaultTimeout}
	var s string
	if s, ok = oracleString(m["type"]); !ok || !oracleTypeName.MatchString(s) {
		return j, false
	}
	j.typ = s
	if s, ok = oracleString(m["queue"]); !ok || s != "" && !oracleQueueName.MatchString(s) {
		return j, false
	}
	if s != "" {
		j.queue = s
	}
	if p := m["payload"]; p != nil {
		if len(p) > int(o.MaxPayload) {
			return j, false
		}
		j.payload = string(p)
	}
	if p := m["priority"]; p != nil && string(p) != "null" {
		n, err := strconv.ParseInt(string(p), 10, 32)
		if err != nil {
			return j, false
		}
		j.priority = n
	}
	if p := m["max_attempts"]; p != nil && string(p) != "null" {
		n, err := strconv.ParseInt(string(p), 10, 64)
		if err != nil || n < 0 || n > 65535 {
			return j, false
		}
		if n > 0 {
			j.maxAttempts = n
		}
	}
	if s, ok = oracleString(m["unique_key"]); !ok || len(s) > 256 {
		return j, false
	}
	j.uniqueKey = s
	if s, ok = oracleString(m["timeout"]); !ok {
		return j, false
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 0 && (d < time.Millisecond || d > 168*time.Hour) {
			return j, false
		}
		if d > 0 {
			j.timeout = d
		}
	}
	delay, ok := oracleString(m["delay"])
	if !ok {
		return j, false
	}
	if delay != "" {
		if d, err := time.ParseDuration(delay); err != nil || d < 0 {
			return j, false
		}
	}
	if r := m["run_at"]; r != nil && string(r) != "null" {
		if delay != "" {
			return j, false
		}
		if _, ok := oracleString(r); !ok {
			return j, false
		}
	}
	return j, true
}

// oracleContentType reports whether ct is an accepted Content-Type.
func oracleContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// checkStored fails unless job id holds what want says.
func checkStored(t *testing.T, rep *memReplica, id string, want oracleJob) {
	t.Helper()
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatalf("answered id %q", id)
	}
	var j fsm.Job
	var ok bool
	rep.Read(func(m *fsm.Machine) { j, ok = m.Get(n) })
	if !ok {
		t.Fatalf("job %s answered but not stored", id)
	}
	got := oracleJob{queue: j.Queue, typ: j.Type, payload: j.Payload, uniqueKey: j.UniqueKey,
		priority: int64(j.Priority), maxAttempts: int64(j.MaxAttempts), timeout: time.Duration(j.Timeout)}
	if got != want {
		t.Fatalf("job %s stored as %+v, the body said %+v", id, got, want)
	}
}

// seedEnqueue are bodies for POST /v1/jobs: valid ones and edge cases.
var seedEnqueue = []string{
	`{"type":"t"}`,
	`{"type":"noop","payload":{"x":1}}`,
	`{"queue":"emails","type":"send","payload":{"to":"a@b.c","n":[1,2]},"priority":7,"run_at":"2100-01-02T03:04:05.000000006Z","max_attempts":3,"timeout":"1m30s","unique_key":"k1"}`,
	`{"type":"t","delay":"10m","priority":-2147483648}`,
	`{"type":"t","priority":2147483647,"max_attempts":65535,"timeout":"168h"}`,
	`{"type":"t","unique_key":"u1"}`, // a duplicate of the job the target starts with
	`{"type":"t","payload":null,"queue":null,"run_at":null}`,
	`{"type":"t","payload":"` + strings.Repeat("x", 252) + `"}`, // a payload of exactly the limit
	`{"type":"t","payload":"` + strings.Repeat("x", 253) + `"}`, // one byte over
	`{"type":"a.b:c/d-e_f","queue":"q.1-_"}`,
	`{"TYPE":"t","Priority":1}`,
	`{"type":"t","payload":"\u00e9\ud83d\ude00"}`,
	"{\"type\":\"t\",\"payload\":\"\xff\"}",
	"{\"type\":\"t\",\"unique_key\":\"\xc3\x28\"}",
	`{"type":"t","priority":2147483648}`,
	`{"type":"t","priority":1.5}`,
	`{"type":"t","max_attempts":-1}`,
	`{"type":"t","max_attempts":18446744073709551616}`,
	`{"type":"t","delay":"-1s"}`,
	`{"type":"t","delay":"1000000h"}`,
	`{"type":"t","timeout":"1e400"}`,
	`{"type":"t","timeout":1e400}`,
	`{"type":"t","run_at":"1970-01-01T00:00:00+23:59"}`,
	`{"type":"t","run_at":"2261-12-31T23:59:59.999999999-23:59"}`,
	`{"type":"t","run_at":"2030-01-01T00:00:00Z","delay":"1s"}`,
	`{"type":"t","foo":1}`,
	`{"type":"t"} {"type":"u"}`,
	`{"type":"t"}]`,
	``,
	`null`,
	`[]`,
	`"t"`,
	`1`,
	`{`,
	`{"type":"t","payload":` + strings.Repeat("[", 2000) + `}`,
	`{"type":"t","payload":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
}

// seedBatch are bodies for POST /v1/jobs/batch.
var seedBatch = []string{
	`{"jobs":[{"type":"t"}]}`,
	`{"jobs":[{"type":"a","unique_key":"u"},{"type":"b","delay":"1h"},{"type":"c","unique_key":"u"}]}`,
	`{"jobs":[{"type":"t","unique_key":"u1"},{"type":"t"}]}`,
	`{"jobs":[{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"}]}`,
	`{"jobs":[{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"}]}`,
	`{"jobs":[{"type":"t"},{"payload":1}]}`,
	`{"jobs":[{"type":"t"},null]}`,
	`{"jobs":[{"type":"t"},{"type":"t","foo":1}]}`,
	`{"jobs":[],"x":1}`,
	`{"jobs":[]}`,
	`{"jobs":null}`,
	`{"jobs":{}}`,
	`{}`,
	`{"Jobs":[{"Type":"t"}]}`,
	"{\"jobs\":[{\"type\":\"t\",\"payload\":\"\xed\xa0\x80\"}]}",
	`{"jobs":[1,2,3,4,5,6,7,8,9,10]}`,
	`{"jobs":[` + strings.Repeat("[", 2000) + `]}`,
}

func FuzzEnqueue(f *testing.F) {
	for _, b := range seedEnqueue {
		f.Add([]byte(b), "application/json", false, false)
	}
	for _, b := range seedBatch {
		f.Add([]byte(b), "application/json", true, false)
	}
	f.Add([]byte(`{"type":"t"}`), "", false, false)
	f.Add([]byte(`{"type":"t"}`), "application/json; charset=utf-8", false, false)
	f.Add([]byte(`{"type":"t"}`), "APPLICATION/JSON", false, false)
	f.Add([]byte(`{"type":"t"}`), "text/plain", false, false)
	f.Add([]byte(`{"type":"t"}`), "application/json;;", false, false)
	f.Add([]byte(`{"type":"t"}`), "application/json", false, true)
	f.Add([]byte(`{"jobs":[{"type":"t"}]}`), "application/json", true, true)
	// One API for all inputs (a fuzz worker runs them one at a time), a
	// fresh replica for each.
	a := New(fuzzOptions())
	h, o := a.Handler(), a.o // o with the defaults filled in
	f.Fuzz(func(t *testing.T, body []byte, ctype string, batch, fail bool) {
		rep := newMemReplica()
		a.SetReplica(rep)
		pre := rep.m.Apply(&fsm.Command{Kind: fsm.KindEnqueue, Now: fuzzNow.UnixNano(),
			Jobs: []fsm.JobSpec{{Queue: "default", Type: "pre", Payload: "null", UniqueKey: "u1"}}})
		if pre.Err != nil {
			t.Fatal(pre.Err)
		}
		if fail {
			rep.setErr(fmt.Errorf("%w: wal: write: %w", replica.ErrDiskFull, syscall.ENOSPC))
		}
		before, applied := rep.m.Len(), rep.appliedCount()
		path := "/v1/jobs"
		if batch {
			path = "/v1/jobs/batch"
		}
		rec := fuzzRequest(h, "POST", path, ctype, body)
		unchanged := func() {
			t.Helper()
			if n, ap := rep.m.Len(), rep.appliedCount(); n != before || ap != applied {
				t.Fatalf("status %d changed the machine: %d jobs (was %d), %d commands applied (was %d)", rec.Code, n, before, ap, applied)
			}
		}
		switch {
		case rec.Code == http.StatusCreated:
		case rec.Code == 400 || rec.Code == 413 || rec.Code == 415 || rec.Code == 429 || fail && rec.Code == 507:
			checkErrorBody(t, rec)
			unchanged()
			return
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}

		// A 201: the body was valid, and exactly its jobs were stored.
		if fail {
			t.Fatalf("201 although the replica fails")
		}
		if !oracleContentType(ctype) {
			t.Fatalf("201 with Content-Type %q", ctype)
		}
		if len(body) > int(o.MaxRequest) {
			t.Fatalf("201 with a body of %d bytes", len(body))
		}
		var elems []json.RawMessage
		if batch {
			m, ok := oracleObject(body, "jobs")
			if !ok || json.Unmarshal(m["jobs"], &elems) != nil || len(elems) == 0 || len(elems) > o.MaxBatch {
				t.Fatalf("201 for a batch body the oracle refuses: %q", body)
			}
		} else {
			elems = []json.RawMessage{body}
		}
		want := make([]oracleJob, len(elems))
		for i, e := range elems {
			var ok bool
			if want[i], ok = oracleEnqueue(e, o); !ok {
				t.Fatalf("201 for job %d that the oracle refuses: %q", i, e)
			}
		}
		var ids []string
		var dups []bool
		if batch {
			var res api.BatchResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("201 body %q: %v", rec.Body.Bytes(), err)
			}
			ids, dups = res.IDs, res.Duplicates
		} else {
			var res api.EnqueueResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("201 body %q: %v", rec.Body.Bytes(), err)
			}
			ids, dups = []string{res.ID}, []bool{res.Duplicate}
		}
		if len(ids) != len(want) || len(dups) != len(want) {
			t.Fatalf("201 for %d jobs answered %d ids, %d duplicate flags", len(want), len(ids), len(dups))
		}
		added := 0
		for i := range want {
			if dups[i] {
				// The job with the same unique key, already there.
				var j fsm.Job
				id, _ := strconv.ParseUint(ids[i], 10, 64)
				rep.Read(func(m *fsm.Machine) { j, _ = m.Get(id) })
				if want[i].uniqueKey == "" || j.UniqueKey != want[i].uniqueKey {
					t.Fatalf("job %d answered as a duplicate of job %s (unique key %q), its key is %q", i, ids[i], j.UniqueKey, want[i].uniqueKey)
				}
				continue
			}
			added++
			checkStored(t, rep, ids[i], want[i])
		}
		if n := rep.m.Len(); n != before+added {
			t.Fatalf("201 for %d new jobs, the machine went from %d to %d jobs", added, before, n)
		}
		if ap := rep.appliedCount(); ap != applied+1 {
			t.Fatalf("201 after %d commands, want one", ap-applied)
		}
	})
}

// leaseFixture is a replica with runnable jobs in several queues and of
// several types, one scheduled job, and one job in flight.
func leaseFixture(t testing.TB) *memReplica {
	rep := newMemReplica()
	now := fuzzNow.UnixNano()
	spec := func(q, typ string) fsm.JobSpec { return fsm.JobSpec{Queue: q, Type: typ, Payload: "null"} }
	res := rep.m.Apply(&fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{
		spec("default", "x"), spec("default", "y"), spec("a", "x"), spec("a", "y"), spec("b", "z"), spec("default", "x"),
		{Queue: "default", Type: "x", Payload: "null", RunAt: fuzzNow.Add(time.Hour).UnixNano()},
	}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	res = rep.m.Apply(&fsm.Command{Kind: fsm.KindLease, Now: now, Queues: []string{"b"}, Max: 1, Worker: "w0", LeaseFor: int64(time.Minute)})
	if res.Err != nil || len(res.Jobs) != 1 {
		t.Fatalf("lease: %v %d", res.Err, len(res.Jobs))
	}
	return rep
}

func inFlight(rep *memReplica) map[uint64]uint64 {
	out := map[uint64]uint64{}
	rep.Read(func(m *fsm.Machine) {
		jobs, _ := m.List(fsm.Filter{State: fsm.StateInFlight, Limit: 1000})
		for _, j := range jobs {
			out[j.ID] = j.LeaseID
		}
	})
	return out
}

func FuzzLease(f *testing.F) {
	for _, b := range []string{
		`{}`,
		``,
		`{"queues":["default"],"max":2,"wait":"5s","lease":"30s","worker":"w1"}`,
		`{"queues":["a","b","default"],"max":4}`,
		`{"types":["x"],"max":4}`,
		`{"queues":["a"],"types":["y"]}`,
		`{"queues":["nothing"],"wait":"1h"}`,
		`{"max":5}`,
		`{"max":-1}`,
		`{"max":1e400}`,
		`{"max":9223372036854775808}`,
		`{"wait":"-1s"}`,
		`{"wait":"1000000h"}`,
		`{"lease":"0s"}`,
		`{"lease":"169h"}`,
		`{"lease":"1e400"}`,
		`{"queues":["a b"]}`,
		`{"queues":[""]}`,
		`{"queues":[null]}`,
		`{"queues":"a"}`,
		`{"types":["ok","a b"]}`,
		`{"queue":"a"}`,
		`{"worker":"` + strings.Repeat("w", 257) + `"}`,
		"{\"worker\":\"\xff\"}",
		`null`,
		`[]`,
		`"x"`,
		`{"queues":[` + strings.Repeat(`"a",`, 100) + `"a"]}`,
	} {
		f.Add([]byte(b))
	}
	a := New(fuzzOptions())
	h, o := a.Handler(), a.o
	f.Fuzz(func(t *testing.T, body []byte) {
		rep := leaseFixture(t)
		a.SetReplica(rep)
		before, applied := inFlight(rep), rep.appliedCount()
		rec := fuzzRequest(h, "POST", "/v1/lease", "application/json", body)
		switch rec.Code {
		case http.StatusOK:
		case 400, 413:
			checkErrorBody(t, rec)
			if ap := rep.appliedCount(); ap != applied {
				t.Fatalf("status %d applied %d commands", rec.Code, ap-applied)
			}
			return
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		// A 200: the body was valid, and exactly the answered jobs were leased.
		maxJobs := int64(1)
		var queues, types []string
		if len(bytes.TrimSpace(body)) > 0 {
			m, ok := oracleObject(body, "queues", "types", "max", "wait", "lease", "worker")
			if !ok {
				t.Fatalf("200 for a body the oracle refuses: %q", body)
			}
			if p := m["max"]; p != nil && string(p) != "null" {
				n, err := strconv.ParseInt(string(p), 10, 64)
				if err != nil || n < 0 || n > int64(o.MaxLease) {
					t.Fatalf("200 with max %s", p)
				}
				if n > 0 {
					maxJobs = n
				}
			}
			for _, k := range []string{"queues", "types"} {
				var names []string
				if p := m[k]; p != nil && json.Unmarshal(p, &names) != nil {
					t.Fatalf("200 with %s %s", k, p)
				}
				for _, n := range names {
					if !oracleQueueName.MatchString(n) && k == "queues" || !oracleTypeName.MatchString(n) && k == "types" {
						t.Fatalf("200 with %s %q", k, names)
					}
				}
				if k == "queues" {
					queues = names
				} else {
					types = names
				}
			}
			if w, ok := oracleString(m["worker"]); !ok || len(w) > MaxWorkerName {
				t.Fatalf("200 with worker %s", m["worker"])
			}
		}
		if len(queues) == 0 && len(types) == 0 {
			queues = []string{"default"}
		}
		var res api.LeaseResponse
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil || res.Jobs == nil {
			t.Fatalf("200 body %q: %v", rec.Body.Bytes(), err)
		}
		if int64(len(res.Jobs)) > maxJobs {
			t.Fatalf("leased %d jobs, max %d", len(res.Jobs), maxJobs)
		}
		after := inFlight(rep)
		if len(after) != len(before)+len(res.Jobs) {
			t.Fatalf("answered %d jobs, in flight went from %d to %d", len(res.Jobs), len(before), len(after))
		}
		for _, j := range res.Jobs {
			id, _ := strconv.ParseUint(j.ID, 10, 64)
			lease, _ := strconv.ParseUint(j.LeaseID, 10, 64)
			if _, was := before[id]; was || after[id] != lease || lease == 0 || j.State != api.StateInFlight {
				t.Fatalf("answered job %+v; in flight before: %v, after: %v", j, before, after)
			}
			if len(queues) > 0 && !contains(queues, j.Queue) || len(types) > 0 && !contains(types, j.Type) {
				t.Fatalf("leased job %s of queue %q type %q for queues %q types %q", j.ID, j.Queue, j.Type, queues, types)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ackFixture is a replica with jobs 1 to 4 in flight under the leases it
// returns (job id → lease id), and job 5 pending.
func ackFixture(t testing.TB) (*memReplica, map[uint64]uint64) {
	rep := newMemReplica()
	now := fuzzNow.UnixNano()
	specs := make([]fsm.JobSpec, 5)
	for i := range specs {
		specs[i] = fsm.JobSpec{Queue: "default", Type: "t", Payload: "null", MaxAttempts: 2}
	}
	if res := rep.m.Apply(&fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: specs}); res.Err != nil {
		t.Fatal(res.Err)
	}
	res := rep.m.Apply(&fsm.Command{Kind: fsm.KindLease, Now: now, Queues: []string{"default"}, Max: 4, Worker: "w", LeaseFor: int64(time.Minute)})
	if res.Err != nil || len(res.Jobs) != 4 {
		t.Fatalf("lease: %v %d", res.Err, len(res.Jobs))
	}
	return rep, inFlight(rep)
}

func FuzzAck(f *testing.F) {
	_, leases := ackFixture(f)
	lid := func(id uint64) string { return strconv.FormatUint(leases[id], 10) }
	for _, b := range []string{
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `","result":{"ok":true}}]}`,
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `"},{"id":"2","lease_id":"` + lid(2) + `","error":"boom"},` +
			`{"id":"3","lease_id":"` + lid(3) + `","error":"","retry_in":"1s"},{"id":"4","lease_id":"` + lid(4) + `","error":"x","final":true}]}`,
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `"},{"id":"1","lease_id":"` + lid(1) + `"}]}`,
		`{"acks":[{"id":"1","lease_id":"99"},{"id":"5","lease_id":"1"},{"id":"77","lease_id":"1"}]}`,
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `","result":1,"error":"x"}]}`,
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `","retry_in":"1s"}]}`,
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `","error":"x","retry_in":"-1s"}]}`,
		`{"acks":[{"id":"18446744073709551616","lease_id":"1"}]}`,
		`{"acks":[{"id":"-1","lease_id":"1"}]}`,
		`{"acks":[{"id":"1"}]}`,
		`{"acks":[{"id":1,"lease_id":1}]}`,
		`{"acks":[{"id":"1","lease_id":"` + lid(1) + `","x":1}]}`,
		"{\"acks\":[{\"id\":\"1\",\"lease_id\":\"" + lid(1) + "\",\"result\":\"\xff\"}]}",
		`{"acks":[null]}`,
		`{"acks":[]}`,
		`{"acks":null}`,
		`{}`,
		``,
		`null`,
		`{"acks":[1,2,3,4,5,6,7,8,9]}`,
	} {
		f.Add([]byte(b))
	}
	a := New(fuzzOptions())
	h, o := a.Handler(), a.o
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, before := ackFixture(t)
		a.SetReplica(rep)
		applied := rep.appliedCount()
		rec := fuzzRequest(h, "POST", "/v1/ack", "application/json", body)
		switch rec.Code {
		case http.StatusOK:
		case 400, 413:
			checkErrorBody(t, rec)
			if ap := rep.appliedCount(); ap != applied {
				t.Fatalf("status %d applied %d commands", rec.Code, ap-applied)
			}
			return
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		// A 200: the body was valid; every ack answered ok took its job out
		// of flight, and nothing else did.
		m, ok := oracleObject(body, "acks")
		var acks []json.RawMessage
		if !ok || json.Unmarshal(m["acks"], &acks) != nil || len(acks) == 0 || len(acks) > o.MaxBatch {
			t.Fatalf("200 for a body the oracle refuses: %q", body)
		}
		for i, raw := range acks {
			it, ok := oracleObject(raw, "id", "lease_id", "result", "error", "retry_in", "final")
			if !ok {
				t.Fatalf("200 with acks[%d] = %q", i, raw)
			}
			for _, k := range []string{"id", "lease_id"} {
				s, ok := oracleString(it[k])
				if _, err := strconv.ParseUint(s, 10, 64); !ok || err != nil {
					t.Fatalf("200 with acks[%d].%s = %s", i, k, it[k])
				}
			}
			if r := it["result"]; len(r) > int(o.MaxPayload) {
				t.Fatalf("200 with acks[%d].result of %d bytes", i, len(r))
			}
		}
		var res api.AckResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Results) != len(acks) {
			t.Fatalf("200 body %q for %d acks: %v", rec.Body.Bytes(), len(acks), err)
		}
		if ap := rep.appliedCount(); ap != applied+1 {
			t.Fatalf("200 after %d commands, want one", ap-applied)
		}
		after := inFlight(rep)
		left := map[string]bool{}
		for i, r := range res.Results {
			if r.OK != (r.Error == nil) {
				t.Fatalf("result %d: %+v", i, r)
			}
			if r.OK {
				left[r.ID] = true
				if r.Error == nil {
					id, _ := strconv.ParseUint(r.ID, 10, 64)
					if _, was := before[id]; !was {
						t.Fatalf("ack of job %s ok, it was not in flight", r.ID)
					}
				}
			} else {
				checkErrorCode(t, r.Error)
			}
		}
		if len(after) != len(before)-len(left) {
			t.Fatalf("%d jobs acked ok, in flight went from %d to %d", len(left), len(before), len(after))
		}
		for id := range left {
			n, _ := strconv.ParseUint(id, 10, 64)
			if _, still := after[n]; still {
				t.Fatalf("job %s acked ok is still in flight", id)
			}
		}
	})
}

func checkErrorCode(t *testing.T, e *api.ErrorBody) {
	t.Helper()
	if e.Code != api.CodeNotFound && e.Code != api.CodeConflict || e.Message == "" {
		t.Fatalf("a rejected ack answered %+v", e)
	}
}
