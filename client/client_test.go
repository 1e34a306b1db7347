package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newServer serves the HTTP API over a local replica in a temporary
// directory, and returns a client of it.
func newServer(t *testing.T, mod func(o *httpapi.Options)) (*client.Client, *httpapi.API, string) {
	t.Helper()
	rep, err := local.Open(local.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	o := httpapi.Options{Replica: rep, Retry: backoff.Policy{Base: time.Millisecond, Max: time.Millisecond}}
	if mod != nil {
		mod(&o)
	}
	a := httpapi.New(o)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	var opts []client.Option
	if len(o.Tokens) > 0 {
		opts = append(opts, client.WithToken(o.Tokens[0]))
	}
	c := client.New(srv.URL, opts...)
	t.Cleanup(c.Close)
	return c, a, srv.URL
}

// result holds what a call returned, for ok(call(...)).must(t).
type result[T any] struct {
	v   T
	err error
}

func ok[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("error %v, want %d %s", err, status, code)
	}
	if client.ErrorCode(err) != code {
		t.Fatalf("ErrorCode %q", client.ErrorCode(err))
	}
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newServer(t, func(o *httpapi.Options) { o.Tokens = []string{"tok"}; o.Version = "test" })

	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	e := ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "email", Payload: json.RawMessage(`{"to":"x"}`), Priority: 3})).must(t)
	if e.ID != "1" || e.State != api.StatePending || e.Duplicate {
		t.Fatalf("enqueue: %+v", e)
	}
	b := ok(c.EnqueueBatch(ctx, api.BatchRequest{Jobs: []api.EnqueueRequest{
		{Type: "a", Queue: "q"}, {Type: "b", Queue: "q", RunAt: time.Now().Add(time.Hour)}, {Type: "c", Queue: "q"},
	}})).must(t)
	if strings.Join(b.IDs, ",") != "2,3,4" || len(b.Duplicates) != 3 {
		t.Fatalf("batch: %+v", b)
	}
	j := ok(c.Get(ctx, "1")).must(t)
	if j.Type != "email" || string(j.Payload) != `{"to":"x"}` || j.Priority != 3 {
		t.Fatalf("get: %+v", j)
	}
	if j := ok(c.Get(ctx, "3")).must(t); j.State != api.StateScheduled {
		t.Fatalf("run_at: %+v", j)
	}
	_, err := c.Get(ctx, "42")
	wantCode(t, err, 404, api.CodeNotFound)
	_, err = c.Enqueue(ctx, api.EnqueueRequest{Queue: "bad queue"})
	wantCode(t, err, 400, api.CodeInvalidArgument)

	// List, two per page.
	var ids []string
	opts := client.ListOptions{Queue: "q", Limit: 2}
	for {
		l := ok(c.List(ctx, opts)).must(t)
		for _, j := range l.Jobs {
			ids = append(ids, j.ID)
		}
		if l.NextCursor == "" {
			break
		}
		opts.Cursor = l.NextCursor
	}
	if strings.Join(ids, ",") != "2,3,4" {
		t.Fatalf("list: %v", ids)
	}
	if l := ok(c.List(ctx, client.ListOptions{State: api.StateScheduled})).must(t); len(l.Jobs) != 1 {
		t.Fatalf("list by state: %+v", l)
	}

	// Cancel and retry.
	if j := ok(c.Cancel(ctx, "4")).must(t); j.State != api.StateCanceled {
		t.Fatalf("cancel: %+v", j)
	}
	_, err = c.Cancel(ctx, "4")
	wantCode(t, err, 409, api.CodeConflict)
	if j := ok(c.Retry(ctx, "4")).must(t); j.State != api.StatePending {
		t.Fatalf("retry: %+v", j)
	}

	// Lease, heartbeat, complete, fail, ack.
	l := ok(c.Lease(ctx, api.LeaseRequest{Queues: []string{"q", "default"}, Max: 3, Worker: "me"})).must(t)
	if len(l.Jobs) != 3 || l.Jobs[0].ID != "1" || l.Jobs[0].Worker != "me" {
		t.Fatalf("lease: %+v", l)
	}
	j1, j2, j4 := l.Jobs[0], l.Jobs[1], l.Jobs[2]
	hb := ok(c.Heartbeat(ctx, j1.ID, api.HeartbeatRequest{LeaseID: j1.LeaseID, Extend: "1h"})).must(t)
	if !hb.LeaseDeadline.After(j1.LeaseDeadline) {
		t.Fatalf("heartbeat: %v -> %v", j1.LeaseDeadline, hb.LeaseDeadline)
	}
	if j := ok(c.Complete(ctx, j1.ID, api.CompleteRequest{LeaseID: j1.LeaseID, Result: json.RawMessage(`"sent"`)})).must(t); j.State != api.StateCompleted || string(j.Result) != `"sent"` {
		t.Fatalf("complete: %+v", j)
	}
	_, err = c.Complete(ctx, j1.ID, api.CompleteRequest{LeaseID: j1.LeaseID})
	wantCode(t, err, 409, api.CodeConflict)
	if j := ok(c.Fail(ctx, j2.ID, api.FailRequest{LeaseID: j2.LeaseID, Error: "nope", RetryIn: "1h"})).must(t); j.State != api.StateScheduled || j.LastError != "nope" {
		t.Fatalf("fail: %+v", j)
	}
	msg := "bad"
	a := ok(c.Ack(ctx, api.AckRequest{Acks: []api.AckItem{
		{ID: j4.ID, LeaseID: j4.LeaseID, Error: &msg, Final: true},
		{ID: j2.ID, LeaseID: j2.LeaseID, Result: json.RawMessage(`1`)},
	}})).must(t)
	if len(a.Results) != 2 || !a.Results[0].OK || a.Results[1].OK || a.Results[1].Error.Code != api.CodeConflict {
		t.Fatalf("ack: %+v", a)
	}
	if j := ok(c.Get(ctx, j4.ID)).must(t); j.State != api.StateFailed {
		t.Fatalf("final fail: %+v", j)
	}

	st := ok(c.Status(ctx)).must(t)
	if st.Version != "test" || st.Role != "single" || st.Jobs.Completed != 1 || st.Jobs.Failed != 1 || st.Queues["q"].Scheduled != 2 {
		t.Fatalf("status: %+v", st)
	}
}

func TestClientAuthAndReadiness(t *testing.T) {
	ctx := context.Background()
	_, _, url := newServer(t, func(o *httpapi.Options) { o.Tokens = []string{"tok"} })
	c := client.New(strings.TrimPrefix(url, "http://"), client.WithToken("wrong")) // no scheme: http
	defer c.Close()
	_, err := c.Status(ctx)
	wantCode(t, err, 401, api.CodeUnauthorized)

	a := httpapi.New(httpapi.Options{})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	c2 := client.New(srv.URL+"/", client.WithHTTPClient(srv.Client()))
	wantCode(t, c2.Ready(ctx), 503, api.CodeUnavailable)
	if err := c2.Health(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c2.Enqueue(ctx, api.EnqueueRequest{Type: "t"})
	wantCode(t, err, 503, api.CodeUnavailable)

	// A non-JSON error answer still gives an *Error.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer plain.Close()
	c3 := client.New(plain.URL, client.WithHTTPClient(plain.Client()))
	_, err = c3.Status(ctx)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 502 || e.Message != "bad gateway" {
		t.Fatalf("plain error: %v", err)
	}
}
