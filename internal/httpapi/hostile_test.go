package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// hostileCase is one request that the API must refuse, changing nothing.
type hostileCase struct {
	name, method, path string
	ctype              string // "" sends application/json; "-" sends none
	body               string
	status             int
	msg                string // part of the error message
}

// durable is what a refused request must leave as it is: the jobs and the
// log.
type durable struct {
	jobs             int
	applied, lastLSN uint64
}

func (s *server) durable() durable {
	st := s.spy.Status()
	return durable{jobs: s.jobs(), applied: st.AppliedLSN, lastLSN: st.WAL.LastLSN}
}

// hostileCases builds the table. lease is the lease id of job 1, which is in
// flight.
func hostileCases(lease string) []hostileCase {
	deep := strings.Repeat("[", 100_000)
	deepObj := strings.Repeat(`{"a":`, 100_000)
	L := lease
	var cs []hostileCase
	add := func(name, method, path, body string, status int, msg string) {
		cs = append(cs, hostileCase{name: name, method: method, path: path, body: body, status: status, msg: msg})
	}
	post := func(name, path, body string, status int, msg string) { add(name, "POST", path, body, status, msg) }

	// Every route with a body, with a body it would accept.
	routes := []struct{ path, valid string }{
		{"/v1/jobs", `{"type":"t"}`},
		{"/v1/jobs/batch", `{"jobs":[{"type":"t"}]}`},
		{"/v1/lease", `{"queues":["none"]}`},
		{"/v1/jobs/1/complete", `{"lease_id":"` + L + `"}`},
		{"/v1/jobs/1/fail", `{"lease_id":"` + L + `","error":"x"}`},
		{"/v1/jobs/1/heartbeat", `{"lease_id":"` + L + `"}`},
		{"/v1/ack", `{"acks":[{"id":"1","lease_id":"` + L + `"}]}`},
		{"/v1/jobs/1/cancel", `{}`},
		{"/v1/jobs/1/retry", `{}`},
	}
	for _, r := range routes {
		// Wrong content types.
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
			"application/json-patch+json", "application/jsonx", "application/json;;", "json"} {
			cs = append(cs, hostileCase{name: "content type " + ct, method: "POST", path: r.path, ctype: ct, body: r.valid,
				status: 415, msg: "Content-Type must be application/json"})
		}
		// Bodies of the wrong JSON kind, invalid JSON, and trailing data.
		for body, msg := range map[string]string{
			`null`:         "must be a JSON object, not null",
			`[]`:           "must be a JSON object, not array",
			`"str"`:        "must be a JSON object, not string",
			`1`:            "must be a JSON object, not number",
			`true`:         "must be a JSON object, not bool",
			`{`:            "unexpected end of input",
			`{"a":1}{}`:    `unknown field "a"`,
			`{}{}`:         "unexpected data after the JSON value",
			r.valid + `]`:  "unexpected data after the JSON value",
			`{'a':1}`:      "invalid character",
			"\ufeff{}":     "invalid character",
			deep:           "exceeded max depth",
			`{"x":` + deep: "exceeded max depth",
			deepObj:        "exceeded max depth",
		} {
			post("body "+abbrev(body), r.path, body, 400, msg)
		}
		// Unknown fields at the top level.
		post("unknown field", r.path, r.valid[:len(r.valid)-1]+strings.Repeat(`,`, min(1, len(r.valid)-2))+`"zz":1}`, 400, `unknown field "zz"`)
		// Invalid UTF-8 in a key.
		post("invalid UTF-8 key", r.path, "{\"\xff\":1}", 400, "request body: invalid UTF-8 at byte 2: JSON text must be UTF-8")
	}
	// Empty bodies, where a body is required.
	for _, p := range []string{"/v1/jobs", "/v1/jobs/batch", "/v1/jobs/1/complete", "/v1/jobs/1/fail", "/v1/jobs/1/heartbeat", "/v1/ack"} {
		post("empty body", p, ``, 400, "request body is empty")
		post("blank body", p, " \r\n\t", 400, "request body is empty")
	}

	// Unknown fields below the top level.
	post("unknown field in a batch job", "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t","zz":1}]}`, 400, `jobs[1]: unknown field "zz"`)
	post("unknown field in an ack", "/v1/ack", `{"acks":[{"id":"1","lease_id":"`+L+`","zz":1}]}`, 400, `acks[0]: unknown field "zz"`)
	post("null batch job", "/v1/jobs/batch", `{"jobs":[{"type":"t"},null]}`, 400, "jobs[1] must be a JSON object, not null")
	post("null ack", "/v1/ack", `{"acks":[null]}`, 400, "acks[0] must be a JSON object, not null")
	post("batch job array", "/v1/jobs/batch", `{"jobs":[[]]}`, 400, "jobs[0] must be a JSON object, not array")
	post("jobs null", "/v1/jobs/batch", `{"jobs":null}`, 400, "jobs must hold at least one job")
	post("jobs object", "/v1/jobs/batch", `{"jobs":{}}`, 400, "jobs: expected an array, got object")
	post("jobs string", "/v1/jobs/batch", `{"jobs":"[]"}`, 400, "jobs: expected an array, got string")
	post("acks number", "/v1/ack", `{"acks":1}`, 400, "acks: expected an array, got number")
	post("queues object", "/v1/lease", `{"queues":{}}`, 400, "queues: expected an array, got object")
	post("queues of numbers", "/v1/lease", `{"queues":[1]}`, 400, "expected a string, got number")

	// Deep nesting inside values.
	post("deep payload", "/v1/jobs", `{"type":"t","payload":`+deep, 400, "payload[0][0]")
	post("deep batch job", "/v1/jobs/batch", `{"jobs":[{"type":"t"},`+deep, 400, "exceeded max depth")
	post("deep result", "/v1/jobs/1/complete", `{"lease_id":"`+L+`","result":`+deepObj, 400, "exceeded max depth")
	post("deep ack result", "/v1/ack", `{"acks":[{"id":"1","lease_id":"`+L+`","result":`+deep, 400, "exceeded max depth")

	// Huge arrays and bodies (max_batch 10000, max_request 1 MiB here).
	jobs := func(n int) string {
		return `{"jobs":[` + strings.Repeat(`{"type":"t"},`, n-1) + `{"type":"t"}]}`
	}
	post("batch over max_batch", "/v1/jobs/batch", jobs(10_001), 413, "jobs holds 10001 jobs, more than the limit of 10000 per batch")
	post("batch of 500k numbers", "/v1/jobs/batch", `{"jobs":[`+strings.Repeat(`1,`, 500_000)+`1]}`, 413, "jobs holds 500001 jobs")
	post("acks over max_batch", "/v1/ack", `{"acks":[`+strings.Repeat(`{},`, 10_000)+`{}]}`, 413, "acks holds 10001 acks")
	post("lease of 257 queues", "/v1/lease", `{"queues":[`+strings.Repeat(`"default",`, 256)+`"default"]}`, 400, "at most 256 each, not 257")
	post("lease of 200k types", "/v1/lease", `{"types":[`+strings.Repeat(`"t",`, 200_000)+`"t"]}`, 400, "not 0 and 200001")
	post("payload over max_payload", "/v1/jobs", `{"type":"t","payload":"`+strings.Repeat("x", 64<<10)+`"}`, 413, "payload is 65538 bytes, more than the limit of 65536 bytes")
	post("result over max_payload", "/v1/jobs/1/complete", `{"lease_id":"`+L+`","result":"`+strings.Repeat("x", 64<<10)+`"}`, 413, "result is 65538 bytes")
	post("body over max_request", "/v1/jobs", `{"type":"t","payload":"`+strings.Repeat("x", 1<<20)+`"}`, 413, "more than the limit of 1048576 bytes")

	// Invalid UTF-8 (overlong, surrogate, truncated, stray continuation),
	// wherever it is: strings are not repaired into U+FFFD, raw payloads
	// are not stored as they are. Escaped lone surrogates ("\ud800") are
	// valid UTF-8 text and accepted (TestHostileAccepted).
	for _, bad := range []string{"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\x80", "\xf4\x90\x80\x80"} {
		q := strconv.Quote(bad)
		post("invalid UTF-8 payload "+q, "/v1/jobs", `{"type":"t","payload":"`+bad+`"}`, 400, "payload: invalid UTF-8 at byte 23")
		post("invalid UTF-8 unique_key "+q, "/v1/jobs", `{"type":"t","unique_key":"a`+bad+`"}`, 400, "unique_key: invalid UTF-8 at byte 27")
		post("invalid UTF-8 in a batch "+q, "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t","payload":{"k":"`+bad+`"}}]}`, 400, "jobs[1].payload.k: invalid UTF-8")
		post("invalid UTF-8 worker "+q, "/v1/lease", `{"worker":"`+bad+`"}`, 400, "worker: invalid UTF-8")
		post("invalid UTF-8 error "+q, "/v1/jobs/1/fail", `{"lease_id":"`+L+`","error":"`+bad+`"}`, 400, "error: invalid UTF-8")
		post("invalid UTF-8 result "+q, "/v1/ack", `{"acks":[{"id":"1","lease_id":"`+L+`","result":["`+bad+`"]}]}`, 400, "acks[0].result[0]: invalid UTF-8")
	}

	// Durations: negative, absurd, not durations.
	for _, d := range []struct{ value, msg string }{
		{`"-1s"`, "must not be negative"},
		{`"1000000h"`, "must be at most"},
		{`"1e400"`, `time: unknown unit "e" in duration "1e400"`},
		{`"9223372036854775808ns"`, "invalid duration"},
		{`"1.5"`, "missing unit"},
		{`1e400`, "expected a string, got number"},
		{`1`, "expected a string, got number"},
	} {
		post("delay "+d.value, "/v1/jobs", `{"type":"t","delay":`+d.value+`}`, 400, d.msg)
		post("timeout "+d.value, "/v1/jobs", `{"type":"t","timeout":`+d.value+`}`, 400, strings.Replace(d.msg, "must be at most", "must be", 1))
		post("wait "+d.value, "/v1/lease", `{"wait":`+d.value+`}`, 400, d.msg)
		post("lease "+d.value, "/v1/lease", `{"lease":`+d.value+`}`, 400, d.msg)
		post("extend "+d.value, "/v1/jobs/1/heartbeat", `{"lease_id":"`+L+`","extend":`+d.value+`}`, 400, d.msg)
		post("retry_in "+d.value, "/v1/jobs/1/fail", `{"lease_id":"`+L+`","error":"x","retry_in":`+d.value+`}`, 400, d.msg)
		post("ack retry_in "+d.value, "/v1/ack", `{"acks":[{"id":"1","lease_id":"`+L+`","error":"x","retry_in":`+d.value+`}]}`, 400, d.msg)
	}
	post("timeout over 168h", "/v1/jobs", `{"type":"t","timeout":"169h"}`, 400, "timeout must be between 1ms and 168h")
	post("timeout under 1ms", "/v1/jobs", `{"type":"t","timeout":"1us"}`, 400, "timeout must be between 1ms and 168h")
	post("run_at year 0", "/v1/jobs", `{"type":"t","run_at":"0000-01-01T00:00:00Z"}`, 400, "between the years 1970 and 2261")
	post("run_at year 9999", "/v1/jobs", `{"type":"t","run_at":"9999-12-31T23:59:59Z"}`, 400, "between the years 1970 and 2261")
	post("run_at number", "/v1/jobs", `{"type":"t","run_at":1e400}`, 400, "expected an RFC 3339 time string")

	// Numbers out of range.
	for _, n := range []string{"2147483648", "-2147483649", "1e10", "1.5", "1e400", `"1"`, "true"} {
		post("priority "+n, "/v1/jobs", `{"type":"t","priority":`+n+`}`, 400, "priority: expected a 32-bit integer")
	}
	for n, msg := range map[string]string{
		"-1":                   "max_attempts must be between 1 and 65535",
		"65536":                "max_attempts must be between 1 and 65535",
		"9223372036854775807":  "max_attempts must be between 1 and 65535",
		"18446744073709551616": "max_attempts: expected an integer, got number 18446744073709551616",
		"1.5":                  "max_attempts: expected an integer",
		"1e400":                "max_attempts: expected an integer",
	} {
		post("max_attempts "+n, "/v1/jobs", `{"type":"t","max_attempts":`+n+`}`, 400, msg)
	}
	for n, msg := range map[string]string{
		"-1":                  "max must be between 1 and 1000",
		"1001":                "max must be between 1 and 1000",
		"9223372036854775808": "max: expected an integer",
		"1e400":               "max: expected an integer",
	} {
		post("lease max "+n, "/v1/lease", `{"max":`+n+`}`, 400, msg)
	}

	// Ids that are not uint64.
	for _, id := range []string{"18446744073709551616", "-1", "0x1", "1e3", "%20", "1.0"} {
		add("get id "+id, "GET", "/v1/jobs/"+id, "", 400, "id must be a decimal id")
		post("cancel id "+id, "/v1/jobs/"+id+"/cancel", ``, 400, "id must be a decimal id")
		post("complete id "+id, "/v1/jobs/"+id+"/complete", `{"lease_id":"`+L+`"}`, 400, "id must be a decimal id")
		post("ack id "+id, "/v1/ack", `{"acks":[{"id":"`+id+`","lease_id":"`+L+`"}]}`, 400, "acks[0].id must be a decimal id")
		post("lease_id "+id, "/v1/jobs/1/complete", `{"lease_id":"`+id+`"}`, 400, "lease_id must be a decimal id")
	}
	post("lease_id of 512 KiB", "/v1/jobs/1/complete", `{"lease_id":"`+strings.Repeat("9", 512<<10)+`x"}`, 400, `lease_id must be a decimal id, not "999`)
	post("duration of 512 KiB", "/v1/jobs", `{"type":"t","delay":"`+strings.Repeat("1", 512<<10)+`"}`, 400, "... (cut)")
	post("lease_id number", "/v1/jobs/1/complete", `{"lease_id":1}`, 400, "lease_id: expected a string, got number")
	post("lease_id missing", "/v1/jobs/1/heartbeat", `{}`, 400, "lease_id is required")
	add("cursor overflow", "GET", "/v1/jobs?cursor=Af__________________AQ", "", 400, "cursor")
	add("limit overflow", "GET", "/v1/jobs?limit=18446744073709551616", "", 400, "limit must be an integer between 1 and 1000")
	return cs
}

// abbrev shortens a body for a subtest name.
func abbrev(s string) string {
	if len(s) > 12 {
		return strconv.Quote(s[:12]) + "..."
	}
	return strconv.Quote(s)
}

// TestHostileInput sends the hostile table to the real handler over a real
// local replica: each request answers its error as JSON and changes
// nothing, and afterwards the server still serves.
func TestHostileInput(t *testing.T) {
	s := newServer(t, openLocal, func(o *Options) {
		o.MaxRequest = 1 << 20
		o.MaxPayload = 64 << 10
	})
	s.enqueue(`{"type":"t"}`)
	jobs := s.lease(api.LeaseRequest{Lease: "1h"})
	if len(jobs) != 1 {
		t.Fatalf("leased %d jobs", len(jobs))
	}
	before := s.durable()
	for _, c := range hostileCases(jobs[0].LeaseID) {
		t.Run(c.name+" "+c.method+" "+c.path, func(t *testing.T) {
			var hdr []string
			switch c.ctype {
			case "":
			case "-":
				hdr = []string{"Content-Type", ""}
			default:
				hdr = []string{"Content-Type", c.ctype}
			}
			var body any
			if c.method == "POST" {
				body = c.body
			}
			r := s.do(c.method, c.path, body, hdr...)
			var e api.Error
			dec := json.NewDecoder(bytes.NewReader(r.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q: not a JSON error: %v", r.status, r.body, err)
			}
			if r.status != c.status || e.Error.Code != codeOfStatus[c.status] || !strings.Contains(e.Error.Message, c.msg) {
				t.Errorf("got %d %s %q\nwant %d %s %q", r.status, e.Error.Code, e.Error.Message, c.status, codeOfStatus[c.status], c.msg)
			}
			if len(e.Error.Message) > maxMessage+len("... (cut)") {
				t.Errorf("message of %d bytes", len(e.Error.Message))
			}
			if after := s.durable(); after != before {
				t.Fatalf("the request changed the state: %+v, was %+v", after, before)
			}
		})
	}
	if r := s.do("GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
	if j := s.get("1"); j.State != api.StateInFlight {
		t.Fatalf("job 1 is %s after the hostile requests", j.State)
	}
	s.enqueue(`{"type":"t","payload":{"still":"works"}}`)
	s.call("POST", "/v1/jobs/1/complete", `{"lease_id":"`+jobs[0].LeaseID+`"}`, 200, nil)
}

// Edge cases that are valid and must be kept as they were sent.
func TestHostileAccepted(t *testing.T) {
	s := newServer(t, openLocal, nil)
	for _, payload := range []string{
		`"\ud800"`,             // an escaped lone surrogate: valid UTF-8 text, kept as sent
		`"\u0000\u001f"`,       // escaped control characters
		`"é😀\u2028"`,           // multi-byte UTF-8
		`1e400`,                // a number no float64 holds: the payload is opaque
		`{"a":1,"a":2}`,        // duplicate keys: opaque too
		`[[[[[[[[[[]]]]]]]]]]`, // nesting well under the limit
	} {
		res := s.enqueue(`{"type":"t","payload":` + payload + `}`)
		if j := s.get(res.ID); string(j.Payload) != payload {
			t.Errorf("payload %s came back as %s", payload, j.Payload)
		}
	}
	// A charset parameter and upper case are the same media type.
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON", "application/json ; charset=\"UTF-8\""} {
		if r := s.do("POST", "/v1/jobs", `{"type":"t"}`, "Content-Type", ct); r.status != 201 {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
	// encoding/json matches keys without regard to case.
	res := s.enqueue(`{"TYPE":"upper","Priority":3}`)
	if j := s.get(res.ID); j.Type != "upper" || j.Priority != 3 {
		t.Errorf("keys of another case: %+v", j)
	}
}

// A command over the log's record limit (a batch just under max_request
// whose encoding is larger) is the client's to split: 413, not 503.
func TestRecordTooLarge(t *testing.T) {
	rep := newMemReplica()
	s := newServer(t, func(*testing.T) replica.Replica { return rep }, nil)
	rep.setErr(fmt.Errorf("%w: 67108900 bytes, limit 67108864", replica.ErrTooLarge))
	msg := s.callErr("POST", "/v1/jobs/batch", `{"jobs":[{"type":"t"}]}`, 413, api.CodePayloadTooLarge)
	if !strings.Contains(msg, "send smaller batches") {
		t.Errorf("message %q", msg)
	}
}

// A hostile array costs about its body, not an allocation per element: a
// batch of megabytes of "1," was 79 times its size before arrays were
// bounded while they are decoded.
func TestHostileArraysCostTheirSize(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates some 50 MB")
	}
	a := New(Options{Replica: newMemReplica(), MaxRequest: 16 << 20})
	for _, c := range []struct{ path, pre, elem, post string }{
		{"/v1/jobs/batch", `{"jobs":[`, `1,`, `1]}`},
		{"/v1/ack", `{"acks":[`, `{},`, `{}]}`},
		{"/v1/lease", `{"queues":[`, `"a",`, `"a"]}`},
		{"/v1/lease", `{"types":[`, `"",`, `""]}`},
	} {
		body := []byte(c.pre + strings.Repeat(c.elem, (4<<20)/len(c.elem)) + c.post)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		rec := fuzzRequest(a.Handler(), "POST", c.path, "application/json", body)
		runtime.ReadMemStats(&m1)
		if rec.Code != 413 && rec.Code != 400 {
			t.Errorf("%s: %d %s", c.path, rec.Code, rec.Body.Bytes())
		}
		if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 8*uint64(len(body)) {
			t.Errorf("%s %s...: %d MiB allocated for a body of %d MiB", c.path, c.elem, alloc>>20, len(body)>>20)
		}
	}
}

// rawConn is a client connection written and read by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// response reads one answer, waiting at most d.
func (r *rawConn) response(d time.Duration) (*http.Response, []byte, error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// closedWithin reports whether the server closed the connection within d
// (EOF, or a reset when it closed with unread bytes).
func (r *rawConn) closedWithin(d time.Duration) bool {
	r.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.br)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// trickle writes data to c one byte per tick until all is written, a write
// fails, or stop is closed. It returns when it is done.
func trickle(c net.Conn, data []byte, every time.Duration, stop <-chan struct{}) (written int) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for written < len(data) {
		select {
		case <-tick.C:
		case <-stop:
			return written
		}
		if _, err := c.Write(data[written : written+1]); err != nil {
			return written
		}
		written++
	}
	return written
}

// slowServer is the API over the in-memory replica behind an httptest
// server configured as internal/server configures its http.Server, with a
// short read timeout.
func slowServer(t *testing.T, readTimeout time.Duration) (*server, *memReplica) {
	rep := newMemReplica()
	spy := newSpy(rep)
	a := New(Options{Replica: spy, ReadTimeout: readTimeout, MaxWait: 10 * time.Second})
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Config.ReadHeaderTimeout = readTimeout
	srv.Config.WriteTimeout = readTimeout + 10*time.Second + time.Second // > read timeout + max wait
	srv.Start()
	t.Cleanup(srv.Close)
	return &server{t: t, api: a, spy: spy, srv: srv}, rep
}

// A client that sends its headers and then trickles its body (slow loris)
// gets 408 once the read timeout passes, and its connection is closed; it
// does not hold the server for as long as it likes.
func TestSlowLorisBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, _ := slowServer(t, timeout)
	addr := s.srv.Listener.Addr().String()
	body := []byte(`{"type":"t","payload":"` + strings.Repeat("x", 200) + `"}`)
	for _, c := range []struct {
		name, head string
		status     int
	}{
		{"enqueue", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n", 408},
		{"chunked lease", "POST /v1/lease HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 408},
		// A route that reads no body answers at once, but the server
		// reads (discards) a small body before it answers: bounded too.
		{"healthz with a body", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n", 200},
		{"unknown route with a body", "POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n", 404},
		{"wrong content type", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n", 415},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			if _, err := io.WriteString(rc.c, c.head); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			done := make(chan int, 1)
			go func() { done <- trickle(rc.c, body, 20*time.Millisecond, stop) }()
			start := time.Now()
			resp, b, err := rc.response(10 * time.Second)
			if err != nil {
				close(stop)
				<-done
				t.Fatalf("no answer after %v: %v", time.Since(start), err)
			}
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.status == 408 {
				var e api.Error
				if json.Unmarshal(b, &e) != nil || e.Error.Code != codeRequestTimeout {
					t.Errorf("408 body %q", b)
				}
			}
			closed := rc.closedWithin(5 * time.Second)
			elapsed := time.Since(start)
			close(stop)
			written := <-done
			if !closed {
				t.Errorf("the connection is still open after %v", elapsed)
			}
			if written == len(body) {
				t.Errorf("the whole body was trickled in before the answer: the timeout did not act")
			}
			if elapsed < timeout/2 || elapsed > 8*time.Second {
				t.Errorf("answered and closed after %v, want about %v", elapsed, timeout)
			}
		})
	}
	if n := s.jobs(); n != 0 {
		t.Errorf("%d jobs stored", n)
	}
	// A body that arrives in time, even slowly, is served.
	rc := dialRaw(t, addr)
	short := []byte(`{"type":"t"}`)
	io.WriteString(rc.c, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(short))+"\r\n\r\n")
	if n := trickle(rc.c, short, time.Millisecond, nil); n != len(short) {
		t.Fatalf("wrote %d bytes", n)
	}
	if resp, b, err := rc.response(10 * time.Second); err != nil || resp.StatusCode != 201 {
		t.Fatalf("a slow but timely body: %v %v %s", resp, err, b)
	}
	s.enqueue(`{"type":"t"}`)
}

// The read timeout bounds reading the body, not the long poll after it: a
// lease that waits longer than the read timeout gets its full wait, and is
// woken by an enqueue.
func TestLongPollOutlivesReadTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s, _ := slowServer(t, timeout)
	start := time.Now()
	var jobs api.LeaseResponse
	s.call("POST", "/v1/lease", `{"wait":"1s"}`, 200, &jobs)
	if d := time.Since(start); len(jobs.Jobs) != 0 || d < 900*time.Millisecond {
		t.Fatalf("an idle long poll of 1s answered %+v after %v: cut by the read timeout of %v", jobs, d, timeout)
	}
	// Parked past the read timeout, then woken by an enqueue.
	done := make(chan []api.Job, 1)
	go func() { done <- s.lease(api.LeaseRequest{Wait: "10s"}) }()
	<-s.spy.polled
	timer := time.NewTimer(2 * timeout) // the poll must outlive the read timeout
	<-timer.C
	s.enqueue(`{"type":"t"}`)
	if got := <-done; len(got) != 1 {
		t.Fatalf("leased %+v", got)
	}
}

// Many connections at once, valid and hostile requests mixed, and idle
// connections that sent half a request: every valid enqueue is stored
// exactly once, nothing else is, and the server keeps serving.
func TestHostileConcurrency(t *testing.T) {
	s := newServer(t, openLocal, func(o *Options) {
		o.MaxRequest = 1 << 20
		o.MaxPayload = 64 << 10
	})
	before := s.durable()
	addr := s.srv.Listener.Addr().String()

	// Idle connections holding half a request (no ReadHeaderTimeout in
	// httptest: they stay until closed).
	for range 100 {
		rc := dialRaw(t, addr)
		io.WriteString(rc.c, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n")
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	hostile := hostileCases("1")
	var stored, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := range 16 {
				var body, ctype string
				var want int
				path := "/v1/jobs"
				switch i % 4 {
				case 0:
					body, want = fmt.Sprintf(`{"type":"t","unique_key":"w%d-%d"}`, w, i), 201
				case 1:
					path, body, want = "/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t"}]}`, 201
				default:
					c := hostile[(w*16+i)%len(hostile)]
					if c.method != "POST" || strings.HasPrefix(c.path, "/v1/jobs/1/") { // job 1 is not in flight here
						c = hostileCase{path: "/v1/jobs", body: `{"type":"t","foo":1}`, status: 400}
					}
					path, body, want, ctype = c.path, c.body, c.status, c.ctype
				}
				req, err := http.NewRequestWithContext(context.Background(), "POST", s.srv.URL+path, strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				switch ctype {
				case "":
					req.Header.Set("Content-Type", "application/json")
				case "-":
				default:
					req.Header.Set("Content-Type", ctype)
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					t.Errorf("%s: %v", path, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("%s %.60s: %d, want %d: %s", path, body, resp.StatusCode, want, b)
				}
				if resp.StatusCode == 201 {
					if path == "/v1/jobs" {
						stored.Add(1)
					} else {
						stored.Add(2)
					}
				}
			}
		})
	}
	wg.Wait()
	after := s.durable()
	if got := int64(after.jobs - before.jobs); got != stored.Load() {
		t.Errorf("%d jobs stored, %d answered 201", got, stored.Load())
	}
	if r := s.do("GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	s.enqueue(`{"type":"t"}`)
	var n int
	s.spy.Read(func(m *fsm.Machine) { n = m.Len() })
	if n != after.jobs+1 {
		t.Errorf("%d jobs after one more enqueue, want %d", n, after.jobs+1)
	}
}
