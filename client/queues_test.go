package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
)

func TestQueueCalls(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newServer(t, nil)
	if qs := ok(c.Queues(ctx)).must(t); len(qs) != 0 {
		t.Fatalf("queues of an empty server: %+v", qs)
	}
	if q := ok(c.PauseQueue(ctx, "emails")).must(t); !q.Paused {
		t.Fatalf("pause: %+v", q)
	}
	five, limit := 5, api.Rate{Limit: 100, Period: "1s"}
	q := ok(c.UpdateQueue(ctx, "emails", api.QueueSettings{Concurrency: &five, Rate: &limit})).must(t)
	if !q.Paused || q.Concurrency != 5 || q.Rate == nil || q.Rate.Limit != 100 {
		t.Fatalf("update keeps the pause and sets the limits: %+v", q)
	}
	if q := ok(c.ResumeQueue(ctx, "emails")).must(t); q.Paused || q.Concurrency != 5 {
		t.Fatalf("resume: %+v", q)
	}
	if q := ok(c.SetQueue(ctx, "emails", api.QueueSettings{})).must(t); q.Concurrency != 0 || q.Rate != nil {
		t.Fatalf("set {} clears: %+v", q)
	}
	if q := ok(c.Queue(ctx, "emails")).must(t); q.Name != "emails" || q.Concurrency != 0 {
		t.Fatalf("get: %+v", q)
	}
	neg := -1
	_, err := c.UpdateQueue(ctx, "emails", api.QueueSettings{Concurrency: &neg})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidArgument)
	_, err = c.Queue(ctx, "no such/queue")
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidArgument)
}

// A remote worker learns from its next heartbeat that its job was
// canceled: the handler's context ends with ErrJobCanceled, its outcome is
// dropped, and the job stays canceled.
func TestWorkerStopsACanceledJob(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newServer(t, nil)
	id := ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "long"})).must(t).ID
	started := make(chan struct{})
	cause := make(chan error, 1)
	w := &client.Worker{
		Client:    c,
		Lease:     3 * time.Second,
		Heartbeat: 20 * time.Millisecond,
		Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return json.RawMessage(`"finished anyway"`), nil // dropped
		},
	}
	stop, _ := runWorker(t, w)
	<-started
	if j := ok(c.Cancel(ctx, id)).must(t); j.State != api.StateCanceled {
		t.Fatalf("cancel: %+v", j)
	}
	if err := <-cause; !errors.Is(err, client.ErrJobCanceled) {
		t.Fatalf("handler's context ended with %v, want ErrJobCanceled", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if j := ok(c.Get(ctx, id)).must(t); j.State != api.StateCanceled || len(j.Result) != 0 {
		t.Fatalf("job after the worker stopped: %+v", j)
	}
	// the answer to a report of a canceled job is told apart
	leased := ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "x"})).must(t).ID
	jobs := ok(c.Lease(ctx, api.LeaseRequest{Types: []string{"x"}})).must(t).Jobs
	ok(c.Cancel(ctx, leased)).must(t)
	_, err := c.Complete(ctx, leased, api.CompleteRequest{LeaseID: jobs[0].LeaseID})
	if !client.IsCanceled(err) {
		t.Fatalf("complete of a canceled job: %v", err)
	}
}

// A heartbeat answered 409 conflict (the lease expired and the job went to
// another worker) ends the handler's context as a lost lease, not as a
// cancel.
func TestWorkerLeaseLost(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newServer(t, func(o *httpapi.Options) {
		o.Instrument = func(route string, h http.Handler) http.Handler {
			if route != "POST /v1/jobs/{id}/heartbeat" {
				return h
			}
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusConflict)
				w.Write([]byte(`{"error":{"code":"conflict","message":"lease 1 is not the current lease of job 1"}}`))
			})
		}
	})
	ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "long"})).must(t)
	cause := make(chan error, 1)
	w := &client.Worker{
		Client:    c,
		Lease:     3 * time.Second,
		Heartbeat: 10 * time.Millisecond,
		Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return nil, ctx.Err()
		},
	}
	stop, _ := runWorker(t, w)
	if err := <-cause; err == nil || errors.Is(err, client.ErrJobCanceled) || !strings.Contains(err.Error(), "lease of the job was lost") {
		t.Fatalf("handler context ended with %v, want a lost lease", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
