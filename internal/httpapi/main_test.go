package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/host"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memReplica is a test-only in-memory replica.Replica: commands are applied
// to an fsm.Machine by the same host as the real drivers use, with nothing
// durable. Propose fails with err when it is set. m is the hosted machine,
// for tests that set up state directly.
type memReplica struct {
	mu  sync.Mutex // serialises proposals (the host's single applier)
	h   *host.Host
	m   *fsm.Machine
	n   uint64
	err error
}

var _ replica.Replica = (*memReplica)(nil)

func newMemReplica() *memReplica {
	m := fsm.New()
	return &memReplica{m: m, h: host.New(m, 0, nil)}
}

func (r *memReplica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return fsm.Result{}, r.err
	}
	r.n++
	return r.h.Apply(r.n, cmd, 0), nil
}

func (r *memReplica) Read(fn func(m *fsm.Machine)) { r.h.Read(fn) }

func (r *memReplica) Changed() <-chan struct{} { return r.h.Changed() }

func (r *memReplica) Status() replica.Status {
	return replica.Status{Role: "single", AppliedLSN: r.h.Applied()}
}

func (r *memReplica) Close() error { return nil }

func (r *memReplica) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// spyReplica wraps a replica to observe the API: it counts proposals, and
// signals polled once a lease call took the Changed channel and then read
// the machine, i.e. it is about to park (or has found a job).
type spyReplica struct {
	replica.Replica
	proposals atomic.Int64
	armed     atomic.Bool
	polled    chan struct{}
}

func newSpy(r replica.Replica) *spyReplica {
	return &spyReplica{Replica: r, polled: make(chan struct{}, 1)}
}

func (s *spyReplica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	s.proposals.Add(1)
	return s.Replica.Propose(ctx, cmd)
}

func (s *spyReplica) Changed() <-chan struct{} {
	ch := s.Replica.Changed()
	s.armed.Store(true)
	return ch
}

func (s *spyReplica) Read(fn func(m *fsm.Machine)) {
	s.Replica.Read(fn)
	if s.armed.CompareAndSwap(true, false) {
		select {
		case s.polled <- struct{}{}:
		default:
		}
	}
}

// replicaKinds lists the implementations every test runs against. The
// local one is added by local_test.go.
var replicaKinds = []struct {
	name string
	open func(t *testing.T) replica.Replica
}{
	{"mem", func(t *testing.T) replica.Replica { return newMemReplica() }},
}

// forEachReplica runs f once per replica implementation.
func forEachReplica(t *testing.T, f func(t *testing.T, open func(t *testing.T) replica.Replica)) {
	for _, k := range replicaKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.open) })
	}
}

// server is an API over a replica behind an httptest.Server.
type server struct {
	t     *testing.T
	api   *API
	spy   *spyReplica
	srv   *httptest.Server
	token string
}

func newServer(t *testing.T, open func(t *testing.T) replica.Replica, mod func(o *Options)) *server {
	t.Helper()
	rep := open(t)
	t.Cleanup(func() { rep.Close() })
	spy := newSpy(rep)
	o := Options{Replica: spy}
	if mod != nil {
		mod(&o)
	}
	a := New(o)
	s := &server{t: t, api: a, spy: spy, srv: httptest.NewServer(a.Handler())}
	if len(o.Tokens) > 0 {
		s.token = o.Tokens[0]
	}
	t.Cleanup(s.srv.Close)
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. body is sent as is (a string) or JSON-encoded.
// Content-Type is application/json when there is a body unless hdr sets
// one; hdr are name, value pairs.
func (s *server) do(method, path string, body any, hdr ...string) response {
	s.t.Helper()
	return s.doCtx(context.Background(), method, path, body, hdr...)
}

func (s *server) doCtx(ctx context.Context, method, path string, body any, hdr ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		case []byte:
			rd = bytes.NewReader(b)
		default:
			enc, err := json.Marshal(b)
			if err != nil {
				s.t.Fatal(err)
			}
			rd = bytes.NewReader(enc)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// call sends a request, checks the status and decodes the answer into out
// (if not nil).
func (s *server) call(method, path string, body any, want int, out any) response {
	s.t.Helper()
	r := s.do(method, path, body)
	if r.status != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		s.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		reflect.ValueOf(out).Elem().SetZero() // fields absent from the answer must not survive
		if err := json.Unmarshal(r.body, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
	return r
}

// callErr sends a request that must fail with status and code, and returns
// the error message.
func (s *server) callErr(method, path string, body any, status int, code string) string {
	s.t.Helper()
	var e api.Error
	s.call(method, path, body, status, &e)
	if e.Error.Code != code {
		s.t.Fatalf("%s %s: code %q, want %q (%s)", method, path, e.Error.Code, code, e.Error.Message)
	}
	return e.Error.Message
}

func (s *server) enqueue(req any) api.EnqueueResponse {
	s.t.Helper()
	var out api.EnqueueResponse
	s.call("POST", "/v1/jobs", req, http.StatusCreated, &out)
	return out
}

func (s *server) get(id string) api.Job {
	s.t.Helper()
	var j api.Job
	s.call("GET", "/v1/jobs/"+id, nil, http.StatusOK, &j)
	return j
}

func (s *server) lease(req api.LeaseRequest) []api.Job {
	s.t.Helper()
	var out api.LeaseResponse
	s.call("POST", "/v1/lease", req, http.StatusOK, &out)
	return out.Jobs
}

// jobs is the number of jobs the machine holds.
func (s *server) jobs() int {
	n := 0
	s.spy.Read(func(m *fsm.Machine) { n = m.Len() })
	return n
}
