package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
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

// openStream starts POST /v1/jobs/stream with body and returns the
// response, whose body the caller reads.
func (s *server) openStream(ctx context.Context, body io.Reader) *http.Response {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", s.srv.URL+"/v1/jobs/stream", body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", api.ContentTypeNDJSON)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatalf("POST /v1/jobs/stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != api.ContentTypeNDJSON {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.t.Fatalf("POST /v1/jobs/stream: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp
}

// stream sends body as a whole and returns every answer.
func (s *server) stream(body string) []api.StreamAnswer {
	s.t.Helper()
	resp := s.openStream(context.Background(), strings.NewReader(body))
	defer resp.Body.Close()
	return readAnswers(s.t, resp.Body, -1)
}

// readAnswers decodes n answers of r (n < 0: until EOF).
func readAnswers(t *testing.T, r io.Reader, n int) []api.StreamAnswer {
	t.Helper()
	var out []api.StreamAnswer
	dec := json.NewDecoder(r)
	for n < 0 || len(out) < n {
		var a api.StreamAnswer
		if err := dec.Decode(&a); err == io.EOF && n < 0 {
			break
		} else if err != nil {
			t.Fatalf("answer %d: %v", len(out)+1, err)
		}
		out = append(out, a)
	}
	return out
}

func TestStreamAnswersInOrder(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(t *testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		var body strings.Builder
		const n = 300
		for i := range n {
			if i == 7 {
				body.WriteString("\n  \r\n") // blank lines: no answer
			}
			fmt.Fprintf(&body, `{"type":"t","payload":{"n":%d}}`+"\n", i)
		}
		body.WriteString(`{"type":"t","payload":{"n":"last"}}`) // no newline at the end: a line
		ans := s.stream(body.String())
		if len(ans) != n+1 {
			t.Fatalf("%d answers, want %d", len(ans), n+1)
		}
		seen := map[string]bool{}
		for i, a := range ans {
			if a.Error != nil || a.ID == "" || a.State != api.StatePending || a.Duplicate || seen[a.ID] {
				t.Fatalf("answer %d: %+v", i, a)
			}
			seen[a.ID] = true
			want := fmt.Sprintf(`{"n":%d}`, i)
			if i == n {
				want = `{"n":"last"}`
			}
			if got := string(s.get(a.ID).Payload); got != want {
				t.Fatalf("answer %d: job %s has payload %s, want %s", i, a.ID, got, want)
			}
		}
		if s.jobs() != n+1 {
			t.Fatalf("%d jobs", s.jobs())
		}
	})
}

func TestStreamBadLines(t *testing.T) {
	s := newServer(t, func(t *testing.T) replica.Replica { return newMemReplica() }, func(o *Options) { o.MaxPayload = 100 })
	long := `{"type":"t","payload":"` + strings.Repeat("x", 100+streamLineMargin) + `"}`
	body := strings.Join([]string{
		`{"type":"t"}`,                        // 1
		`{"type":`,                            // 2: not JSON
		`{"queue":"q"}`,                       // 3: no type
		``,                                    // 4: blank
		long,                                  // 5: too long
		`{"type":"t","depends_on_index":[0]}`, // 6
		`{"type":"t","payload":"` + strings.Repeat("y", 101) + `"}`, // 7: payload over the limit
		`{"type":"t","bogus":1}`,                                    // 8: unknown field
		"{\"type\":\"t\xff\"}",                                      // 9: not UTF-8
		`{"type":"t","unique_key":"k"}`,                             // 10
		`{"type":"t","unique_key":"k"}`,                             // 11: a duplicate
	}, "\n") + "\n"
	ans := s.stream(body)
	type want struct {
		line int
		code string
		msg  string
	}
	wants := []want{
		{1, "", ""},
		{2, api.CodeInvalidArgument, "line 2: "},
		{3, api.CodeInvalidArgument, "line 3: type"},
		{5, api.CodePayloadTooLarge, "line 5: longer than the limit"},
		{6, api.CodeInvalidArgument, "line 6: depends_on_index"},
		{7, api.CodePayloadTooLarge, "line 7: payload"},
		{8, api.CodeInvalidArgument, "line 8: "},
		{9, api.CodeInvalidArgument, "line 9: invalid UTF-8"},
		{10, "", ""},
		{11, "", ""},
	}
	if len(ans) != len(wants) {
		t.Fatalf("%d answers, want %d: %+v", len(ans), len(wants), ans)
	}
	for i, w := range wants {
		a := ans[i]
		if w.code == "" {
			if a.Error != nil || a.ID == "" {
				t.Fatalf("line %d: %+v", w.line, a)
			}
			continue
		}
		if a.Error == nil || a.ID != "" || a.Error.Code != w.code || a.Error.Line != w.line || !strings.HasPrefix(a.Error.Message, w.msg) {
			t.Fatalf("line %d: %+v %+v, want %s %q...", w.line, a, a.Error, w.code, w.msg)
		}
	}
	if ans[8].Duplicate || !ans[9].Duplicate || ans[8].ID != ans[9].ID {
		t.Fatalf("unique key: %+v %+v", ans[8], ans[9])
	}
	if s.jobs() != 2 {
		t.Fatalf("%d jobs, want 2", s.jobs())
	}
}

// A group that the machine refuses (a line depends on a job that does not
// exist) is proposed again job by job: the other lines are enqueued.
func TestStreamRefusedGroupOneByOne(t *testing.T) {
	s := newServer(t, func(t *testing.T) replica.Replica { return newMemReplica() }, nil)
	first := s.enqueue(api.EnqueueRequest{Type: "t"})
	body := `{"type":"t"}` + "\n" +
		`{"type":"t","depends_on":["` + first.ID + `"]}` + "\n" +
		`{"type":"t","depends_on":["999"]}` + "\n" +
		`{"type":"t"}` + "\n"
	before := s.spy.proposals.Load()
	ans := s.stream(body) // one read, one hand-off: one group of 4
	if len(ans) != 4 {
		t.Fatalf("answers %+v", ans)
	}
	for i, a := range ans {
		if i == 2 {
			if a.Error == nil || a.Error.Code != api.CodeInvalidArgument || a.Error.Line != 3 ||
				!strings.Contains(a.Error.Message, "line 3: depends_on[0] names job 999") {
				t.Fatalf("line 3: %+v", a.Error)
			}
			continue
		}
		if a.Error != nil {
			t.Fatalf("line %d: %+v", i+1, a.Error)
		}
	}
	if j := s.get(ans[1].ID); j.State != api.StateBlocked || len(j.DependsOn) != 1 {
		t.Fatalf("job of line 2: %+v", j)
	}
	if n := s.spy.proposals.Load() - before; n != 5 {
		t.Fatalf("%d proposals, want the group and then 4 single jobs", n)
	}
	if s.jobs() != 4 {
		t.Fatalf("%d jobs", s.jobs())
	}
}

// A system failure of Propose answers the lines with its code and ends the
// stream with a last answer without a line.
func TestStreamSystemFailure(t *testing.T) {
	mem := newMemReplica()
	mem.setErr(replica.ErrDiskFull)
	s := newServer(t, func(t *testing.T) replica.Replica { return mem }, nil)
	ans := s.stream(strings.Repeat(`{"type":"t"}`+"\n", 50))
	if len(ans) < 2 {
		t.Fatalf("answers %+v", ans)
	}
	for i, a := range ans[:len(ans)-1] {
		if a.Error == nil || a.Error.Code != api.CodeInsufficientStorage || a.Error.Line != i+1 {
			t.Fatalf("answer %d: %+v", i, a)
		}
	}
	last := ans[len(ans)-1]
	if last.Error == nil || last.Error.Code != api.CodeInsufficientStorage || last.Error.Line != 0 ||
		!strings.Contains(last.Error.Message, "the stream ends") {
		t.Fatalf("last answer %+v", last.Error)
	}
	if s.jobs() != 0 {
		t.Fatalf("%d jobs", s.jobs())
	}
}

// gatedReplica holds every Propose until the test lets it through, and
// counts the jobs of the enqueues that returned.
type gatedReplica struct {
	replica.Replica
	gate     chan struct{}
	proposed atomic.Int64
}

func (g *gatedReplica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return fsm.Result{}, ctx.Err()
	}
	res, err := g.Replica.Propose(ctx, cmd)
	if err == nil && res.Err == nil {
		g.proposed.Add(int64(len(cmd.Jobs)))
	}
	return res, err
}

// lineBody is the request body as the handler sees it: one line per Read,
// so that the handler's reads count the lines it takes. At each Read it
// checks that the server holds at most max lines unanswered (read, and not
// yet durable).
type lineBody struct {
	br      *bufio.Reader
	body    io.ReadCloser
	max     int
	read    int
	rep     *gatedReplica
	reached chan struct{} // closed when max lines were read
	over    atomic.Int64  // reads beyond the bound
}

func (l *lineBody) Read(p []byte) (int, error) {
	if int64(l.read)-l.rep.proposed.Load() >= int64(l.max) {
		l.over.Add(1)
	}
	line, err := l.br.ReadSlice('\n')
	if len(line) > 0 {
		if l.read++; l.read == l.max {
			close(l.reached)
		}
	}
	return copy(p, line), err
}

func (l *lineBody) Close() error { return l.body.Close() }

// A producer that sends many lines while nothing becomes durable: the
// server stops reading at MaxStreamInFlight lines.
func TestStreamBackpressure(t *testing.T) {
	const max, n = 16, 400
	gated := &gatedReplica{Replica: newMemReplica(), gate: make(chan struct{})}
	a := New(Options{Replica: gated, MaxStreamInFlight: max})
	var lb *lineBody
	reached := make(chan chan struct{}, 1)
	srv := httptest.NewServer(wrapBody(a.Handler(), func(r *http.Request) {
		lb = &lineBody{br: bufio.NewReader(r.Body), body: r.Body, max: max, rep: gated, reached: make(chan struct{})}
		r.Body = lb
		reached <- lb.reached
	}))
	defer srv.Close()
	s := &server{t: t, api: a, spy: newSpy(gated), srv: srv}
	var body strings.Builder
	for i := range n {
		fmt.Fprintf(&body, `{"type":"t","payload":%d}`+"\n", i)
	}
	resp := s.openStream(context.Background(), strings.NewReader(body.String()))
	defer resp.Body.Close()
	done := make(chan []api.StreamAnswer)
	go func() { done <- readAnswers(t, resp.Body, -1) }()
	<-<-reached // max lines read, none durable: the reader must wait now
	var ans []api.StreamAnswer
	for ans == nil {
		select {
		case gated.gate <- struct{}{}: // one proposal at a time
		case ans = <-done:
		}
	}
	if o := lb.over.Load(); o != 0 {
		t.Fatalf("the server read %d times with %d lines or more unanswered", o, max)
	}
	if len(ans) != n || s.jobs() != n {
		t.Fatalf("%d answers, %d jobs", len(ans), s.jobs())
	}
}

func wrapBody(h http.Handler, f func(r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f(r)
		h.ServeHTTP(w, r)
	})
}

// The client goes away mid-stream: what was answered exists, the torn last
// line is not enqueued, and the handler ends (goleak checks its goroutines).
func TestStreamDisconnect(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(t *testing.T) replica.Replica) {
		s := newServer(t, open, nil)
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := s.openStream(ctx, pr)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var ids []string
		for i := range 20 {
			fmt.Fprintf(pw, `{"type":"t","payload":%d}`+"\n", i)
			a := readAnswers(t, br, 1)[0]
			if a.Error != nil {
				t.Fatalf("answer %d: %+v", i, a.Error)
			}
			ids = append(ids, a.ID)
		}
		fmt.Fprint(pw, `{"type":"t","payload":"torn`)
		cancel()
		pw.CloseWithError(context.Canceled)
		s.srv.Close() // waits for the handler
		for _, id := range ids {
			var ok bool
			s.spy.Read(func(m *fsm.Machine) { _, ok = m.Get(mustID(t, id)) })
			if !ok {
				t.Fatalf("answered job %s does not exist", id)
			}
		}
		if s.jobs() != 20 {
			t.Fatalf("%d jobs, want 20: the torn line was enqueued", s.jobs())
		}
	})
}

func mustID(t *testing.T, s string) uint64 {
	t.Helper()
	id, err := parseID("id", s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A stream that sends no line for StreamIdle ends with request_timeout,
// after the answers of what it sent.
func TestStreamIdle(t *testing.T) {
	s := newServer(t, func(t *testing.T) replica.Replica { return newMemReplica() }, func(o *Options) { o.StreamIdle = 50 * time.Millisecond })
	pr, pw := io.Pipe()
	defer pw.Close()
	resp := s.openStream(context.Background(), pr)
	defer resp.Body.Close()
	var wg sync.WaitGroup
	wg.Go(func() { fmt.Fprintln(pw, `{"type":"t"}`) })
	ans := readAnswers(t, resp.Body, -1) // ends when the server ends the stream
	wg.Wait()
	if len(ans) != 2 || ans[0].Error != nil || ans[1].Error == nil || ans[1].Error.Code != codeRequestTimeout || ans[1].Error.Line != 0 {
		t.Fatalf("answers %+v", ans)
	}
}

// A stream over HTTP/2 works the same.
func TestStreamHTTP2(t *testing.T) {
	rep := newMemReplica()
	a := New(Options{Replica: rep})
	srv := newTLSServer(t, a.Handler())
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/jobs/stream", pr)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 5 { // each answer before the next line: full duplex
		fmt.Fprintln(pw, `{"type":"t"}`)
		if a := readAnswers(t, br, 1)[0]; a.Error != nil || a.ID != fmt.Sprint(i+1) {
			t.Fatalf("answer %d: %+v", i, a)
		}
	}
	pw.Close()
	if rest := readAnswers(t, br, -1); len(rest) != 0 {
		t.Fatalf("after the end: %+v", rest)
	}
}

func FuzzStreamLine(f *testing.F) {
	for _, s := range []string{`{"type":"t"}`, `{"type":"t","payload":{"a":[1,2]},"depends_on":["1"]}`, `{"type":`, `{"type":"t","depends_on_index":[0]}`, "\xff", `null`, `[]`} {
		f.Add([]byte(s))
	}
	a := New(Options{Replica: newMemReplica(), MaxPayload: 1000})
	f.Fuzz(func(t *testing.T, line []byte) {
		spec, herr := a.streamLine(line, 3, nil)
		if herr != nil {
			if !strings.HasPrefix(herr.msg, "line 3: ") || herr.code == "" {
				t.Fatalf("error %q %q", herr.code, herr.msg)
			}
			return
		}
		// an accepted line is what POST /v1/jobs accepts
		var req enqueueWire
		if err := decodeStrict(line, &req, ""); err != nil {
			t.Fatalf("accepted %q, which decodeStrict refuses: %v", line, err)
		}
		if spec.Type != req.Type || len(req.DependsOnIndex) > 0 {
			t.Fatalf("%q: spec %+v", line, spec)
		}
	})
}

// streamLineStrict is streamLine with decodeStrict alone, the reference
// that its fast path must agree with.
func (a *API) streamLineStrict(line []byte, n int) (fsm.JobSpec, *httpError) {
	if invalidUTF8(line) >= 0 {
		return a.streamLine(line, n, nil) // refused before any decoding
	}
	var spec fsm.JobSpec
	req := new(enqueueWire)
	err := decodeStrict(line, req, "")
	if err == nil {
		spec, err = a.lineSpec(req)
	}
	if err != nil {
		he := asHTTPError(err)
		he.msg = "line " + strconv.Itoa(n) + ": " + he.msg
		return fsm.JobSpec{}, he
	}
	return spec, nil
}

// checkStreamLine fails unless streamLine answers line exactly as
// streamLineStrict does.
func checkStreamLine(t *testing.T, a *API, line []byte) {
	t.Helper()
	// A cache that holds other strings, then those of line.
	c := &strCache{queue: "q0", typ: "t0", delay: "1m", timeout: "2s"}
	a.streamLine(line, 3, c)
	spec, herr := a.streamLine(line, 3, c)
	want, wantErr := a.streamLineStrict(line, 3)
	if (herr == nil) != (wantErr == nil) || herr != nil && !sameError(herr, wantErr) {
		t.Fatalf("%q: answered %s, decodeStrict %s", line, describeError(asError(herr)), describeError(asError(wantErr)))
	}
	if !reflect.DeepEqual(spec, want) {
		t.Fatalf("%q: spec %+v, decodeStrict %+v", line, spec, want)
	}
}

// asError is he as an error: nil for a nil he.
func asError(he *httpError) error {
	if he == nil {
		return nil
	}
	return he
}

// streamLineOptions are the limits of the stream line differential tests:
// a fixed clock, so that both paths see the same now.
func streamLineOptions() Options {
	o := fuzzOptions()
	o.Replica = newMemReplica()
	return o
}

// TestStreamLineDifferential: every enqueue object of the seeds, valid
// or not, and every mutation of a valid line gets the same answer from
// the fast path of a stream line as from decodeStrict.
func TestStreamLineDifferential(t *testing.T) {
	a := New(streamLineOptions())
	for _, s := range fastDecodeSeeds {
		checkStreamLine(t, a, []byte(s))
	}
	for _, s := range seedEnqueue {
		checkStreamLine(t, a, []byte(s))
	}
	for _, s := range payloadCases {
		checkStreamLine(t, a, []byte(`{"type":"t","payload":`+s+`}`))
	}
	_, elems := benchBatch(2)
	for _, e := range elems {
		checkStreamLine(t, a, e)
	}
	const line = `{"queue":"q","type":"t","payload":{"s":"a\"\u00e9","n":[-1.5e+3,0,true,false,null]},"priority":-3,"max_attempts":12,"delay":"1s","unique_key":"k"}`
	for _, v := range invalidVariants(line) {
		checkStreamLine(t, a, []byte(v))
	}
}

// FuzzStreamLineDecode is a differential test of the decoding of a stream
// line (its fast path) against decodeStrict, on any bytes.
//
//	go test -run '^$' -fuzz '^FuzzStreamLineDecode$' -fuzztime 60s ./internal/httpapi/
func FuzzStreamLineDecode(f *testing.F) {
	for _, s := range fastDecodeSeeds {
		f.Add([]byte(s))
	}
	for _, s := range seedEnqueue {
		f.Add([]byte(s))
	}
	for _, s := range payloadCases {
		f.Add([]byte(`{"type":"t","payload":` + s + `}`))
	}
	_, elems := benchBatch(2)
	for _, e := range elems {
		f.Add(e)
	}
	a := New(streamLineOptions())
	f.Fuzz(func(t *testing.T, line []byte) {
		checkStreamLine(t, a, line)
	})
}

// newTLSServer serves h over TLS with HTTP/2.
func newTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestStreamTakeRuns: the batcher takes the reader's runs in order, at
// most max items, splitting a run that does not fit, and joins them.
func TestStreamTakeRuns(t *testing.T) {
	var s stream
	n := 0
	for _, size := range []int{3, 5, 2, 1} {
		run := make([]streamItem, size)
		for i := range run {
			n++
			run[i].line = n
		}
		s.queue = append(s.queue, run)
	}
	var lines []int
	for _, max := range []int{4, 4, 1, 10, 10} {
		items := joinRuns(s.takeRuns(max))
		if len(items) > max {
			t.Fatalf("max %d: %d items", max, len(items))
		}
		for _, it := range items {
			lines = append(lines, it.line)
		}
	}
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}; !reflect.DeepEqual(lines, want) {
		t.Fatalf("lines %v, want %v", lines, want)
	}
	if s.queue != nil {
		t.Fatalf("queue left %v", s.queue)
	}
	// A run taken whole is the run itself; a part of it has no room to
	// grow into the rest.
	s.queue = [][]streamItem{make([]streamItem, 5)}
	first := joinRuns(s.takeRuns(2))
	if len(first) != 2 || cap(first) != 2 || len(s.queue) != 1 || len(s.queue[0]) != 3 {
		t.Fatalf("split: %d/%d items, queue %v", len(first), cap(first), s.queue)
	}
}
