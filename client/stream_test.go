package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

// routeCounter counts the requests of each method and path it passes on.
type routeCounter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
}

func (rc *routeCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	if rc.n == nil {
		rc.n = map[string]int{}
	}
	rc.n[r.Method+" "+r.URL.Path]++
	rc.mu.Unlock()
	rc.next.ServeHTTP(w, r)
}

func (rc *routeCounter) count(route string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n[route]
}

// newAPI is the HTTP API over a local replica in a temporary directory.
func newAPI(t testing.TB) http.Handler {
	t.Helper()
	rep, err := local.Open(local.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	return httpapi.New(httpapi.Options{Replica: rep, Retry: backoff.Policy{Base: time.Millisecond, Max: time.Millisecond}}).Handler()
}

// serve serves h, and returns a client of it (closed at the end).
func serve(t testing.TB, h http.Handler, opts ...client.Option) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, opts...)
	t.Cleanup(c.Close)
	return c
}

// Concurrent Enqueue calls go on one enqueue stream, each with its own
// durable answer.
func TestEnqueueCoalescesOntoAStream(t *testing.T) {
	ctx := context.Background()
	rc := &routeCounter{next: newAPI(t)}
	c := serve(t, rc)
	const callers, each = 32, 20
	ids := make([][]string, callers)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				res, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "noop", Payload: []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))})
				if err != nil {
					errs <- err
					return
				}
				ids[g] = append(ids[g], res.ID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for g := range callers {
		for i, id := range ids[g] {
			if seen[id] {
				t.Fatalf("id %s answered twice", id)
			}
			seen[id] = true
			j, err := c.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i); string(j.Payload) != want {
				t.Fatalf("job %s holds %s, its caller sent %s", id, j.Payload, want)
			}
		}
	}
	if n := rc.count("POST /v1/jobs"); n != 0 {
		t.Fatalf("%d single enqueue requests, want none", n)
	}
	if n := rc.count("POST /v1/jobs/stream"); n != 1 {
		t.Fatalf("%d enqueue streams, want 1", n)
	}
}

// A line the server refuses is that caller's error, the same as a single
// request's; the other callers are not affected.
func TestEnqueueStreamAnswersErrorsAsSingleCalls(t *testing.T) {
	ctx := context.Background()
	h := newAPI(t)
	c := serve(t, h)
	single := serve(t, h, client.WithoutStream())
	bad := api.EnqueueRequest{Type: "no spaces allowed"}
	_, err := c.Enqueue(ctx, bad)
	_, want := single.Enqueue(ctx, bad)
	var e, we *client.Error
	if !errors.As(err, &e) || !errors.As(want, &we) || *e != *we {
		t.Fatalf("stream: %v, single request: %v", err, want)
	}
	if e.Status != http.StatusBadRequest || e.Code != api.CodeInvalidArgument {
		t.Fatalf("error %v", err)
	}
	if _, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "noop"}); err != nil {
		t.Fatal(err)
	}
	first, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "noop", UniqueKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "noop", UniqueKey: "k"})
	if err != nil || !again.Duplicate || again.ID != first.ID {
		t.Fatalf("duplicate: %+v, %v (first %+v)", again, err, first)
	}
}

// A server without the stream route gets one POST /v1/jobs per call.
func TestEnqueueWithoutAStreamRoute(t *testing.T) {
	ctx := context.Background()
	api := newAPI(t)
	rc := &routeCounter{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/jobs/stream" {
			http.NotFound(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})}
	c := serve(t, rc)
	for range 3 {
		if _, err := c.Enqueue(ctx, enqueueNoop()); err != nil {
			t.Fatal(err)
		}
	}
	if s, p := rc.count("POST /v1/jobs/stream"), rc.count("POST /v1/jobs"); s != 1 || p != 3 {
		t.Fatalf("%d stream requests and %d single ones, want 1 and 3", s, p)
	}
}

func enqueueNoop() api.EnqueueRequest { return api.EnqueueRequest{Type: "noop"} }

// breakFirstStream serves next, except that the first enqueue stream is
// cut after it began its answer and read one whole line, without an
// answer for it.
type breakFirstStream struct {
	next   http.Handler
	broken atomic.Bool
	read   chan struct{} // closed once the first stream read its line
}

func (b *breakFirstStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/jobs/stream" || b.broken.Swap(true) {
		b.next.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex()
	w.WriteHeader(http.StatusContinue)
	w.Header().Set("Content-Type", api.ContentTypeNDJSON)
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	bufio.NewReader(r.Body).ReadString('\n')
	close(b.read)
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close() // the connection is cut
}

// A stream cut after it took a line answers that caller unknown_outcome
// when the job has no unique key, and sends it again on a new stream when
// it has one; nothing is enqueued twice.
func TestEnqueueStreamCut(t *testing.T) {
	ctx := context.Background()
	for _, key := range []string{"", "once"} {
		t.Run("unique_key="+key, func(t *testing.T) {
			b := &breakFirstStream{next: newAPI(t), read: make(chan struct{})}
			c := serve(t, b)
			res, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "noop", UniqueKey: key})
			<-b.read
			if key == "" {
				wantCode(t, err, http.StatusServiceUnavailable, api.CodeUnknownOutcome)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "noop", UniqueKey: key})
			if err != nil || !again.Duplicate || again.ID != res.ID {
				t.Fatalf("after the retry: %+v, %v; first answer %+v", again, err, res)
			}
			page, err := c.List(ctx, client.ListOptions{})
			if err != nil || len(page.Jobs) != 1 {
				t.Fatalf("jobs after the retry: %+v, %v", page, err)
			}
		})
	}
}

// Close ends the stream at once (not after its idle time) and stops its
// goroutines (TestMain checks that none is left); the Client then opens a
// new stream for the next call.
func TestCloseEndsTheStream(t *testing.T) {
	ctx := context.Background()
	rc := &routeCounter{next: newAPI(t)}
	c := serve(t, rc)
	if _, err := c.Enqueue(ctx, enqueueNoop()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Enqueue(ctx, enqueueNoop()); err != nil {
		t.Fatal(err)
	}
	if n := rc.count("POST /v1/jobs/stream"); n != 2 {
		t.Fatalf("%d streams, want 2", n)
	}
}

// With an http.Client that has a Timeout, Enqueue sends single requests.
func TestEnqueueWithATimeoutSendsSingleRequests(t *testing.T) {
	rc := &routeCounter{next: newAPI(t)}
	c := serve(t, rc, client.WithHTTPClient(&http.Client{Timeout: time.Minute}))
	if _, err := c.Enqueue(context.Background(), enqueueNoop()); err != nil {
		t.Fatal(err)
	}
	if s, p := rc.count("POST /v1/jobs/stream"), rc.count("POST /v1/jobs"); s != 0 || p != 1 {
		t.Fatalf("%d stream requests and %d single ones, want 0 and 1", s, p)
	}
}

// The answers of enqueued lines parse the same without encoding/json.
func TestParseOKMatchesEncodingJSON(t *testing.T) {
	for _, line := range []string{
		`{"id":"12","state":"pending","duplicate":false}` + "\n",
		`{"id":"7","state":"scheduled","duplicate":true}` + "\r\n",
		`{"id":"1","state":"completed","duplicate":false}`,
		`{"id":"","state":"pending","duplicate":false}`,
		`{"id":"1","state":"Pending","duplicate":false}`,
		`{"id":"1","state":"pending"}`,
		`{"id":"1","state":"pending","duplicate":false} `,
		`{"id":"1\u0032","state":"pending","duplicate":false}`,
		`{"error":{"code":"invalid_argument","message":"line 1: x","line":1}}`,
	} {
		got, ok := client.ParseOKForTest([]byte(line))
		if !ok {
			continue
		}
		var want api.StreamAnswer
		if err := json.Unmarshal([]byte(line), &want); err != nil || want.Error != nil || got != want {
			t.Errorf("%q: parsed %+v, encoding/json %+v (%v)", line, got, want, err)
		}
	}
	if _, ok := client.ParseOKForTest([]byte(`{"id":"12","state":"pending","duplicate":false}` + "\n")); !ok {
		t.Fatal("the usual answer was not parsed")
	}
}

// EnqueueEach answers each job in the order of the jobs, on one stream; a
// refused job does not stop the others.
func TestEnqueueEach(t *testing.T) {
	ctx := context.Background()
	rc := &routeCounter{next: newAPI(t)}
	c := serve(t, rc)
	reqs := make([]api.EnqueueRequest, 5000)
	for i := range reqs {
		reqs[i] = api.EnqueueRequest{Type: "noop", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	reqs[17].Type = "bad type"
	next, seen := 0, map[string]bool{}
	c.EnqueueEach(ctx, reqs, func(i int, res api.EnqueueResponse, err error) {
		if i != next {
			t.Fatalf("answer %d came after %d", i, next-1)
		}
		next++
		if i == 17 {
			wantCode(t, err, http.StatusBadRequest, api.CodeInvalidArgument)
			return
		}
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if seen[res.ID] {
			t.Fatalf("job %d got the id %s of an earlier one", i, res.ID)
		}
		seen[res.ID] = true
	})
	if next != len(reqs) {
		t.Fatalf("%d answers for %d jobs", next, len(reqs))
	}
	if n := rc.count("POST /v1/jobs/stream"); n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
}

// A line answered unknown_outcome (its group's leader was lost) is not
// sent again without a unique key, as a single request's would not be.
func TestEnqueueStreamUnknownOutcomeAnswerIsFinal(t *testing.T) {
	var lines atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(http.StatusContinue)
		w.Header().Set("Content-Type", api.ContentTypeNDJSON)
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		br := bufio.NewReader(r.Body)
		for n := 1; ; n++ {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			lines.Add(1)
			fmt.Fprintf(w, `{"error":{"code":"unknown_outcome","message":"line %d: leader lost","line":%d}}`+"\n", n, n)
			rc.Flush()
		}
	})
	c := serve(t, h)
	_, err := c.Enqueue(context.Background(), enqueueNoop())
	wantCode(t, err, http.StatusServiceUnavailable, api.CodeUnknownOutcome)
	if n := lines.Load(); n != 1 {
		t.Fatalf("the line was sent %d times", n)
	}
}
