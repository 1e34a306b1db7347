package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
)

// runWorker starts w.Run and returns a function that cancels it and waits
// for it to return.
func runWorker(t *testing.T, w *client.Worker) (stop func() error, returned <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = w.Run(ctx)
	}()
	stop = func() error {
		cancel()
		<-done
		return err
	}
	t.Cleanup(func() { stop() })
	return stop, done
}

func TestWorkerCompletesAndRetries(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprint("BatchAcks=", batch), func(t *testing.T) {
			ctx := context.Background()
			c, _, _ := newServer(t, nil) // retry backoff: 1ms
			const n = 40
			var jobs []api.EnqueueRequest
			for i := range n {
				jobs = append(jobs, api.EnqueueRequest{Type: "work", Payload: json.RawMessage(fmt.Sprint(i))})
			}
			jobs = append(jobs,
				api.EnqueueRequest{Type: "flaky", Payload: json.RawMessage(`"f"`)},
				api.EnqueueRequest{Type: "broken", Payload: json.RawMessage(`"b"`)},
				api.EnqueueRequest{Type: "panics", MaxAttempts: 1})
			ok(c.EnqueueBatch(ctx, api.BatchRequest{Jobs: jobs})).must(t)

			var handled atomic.Int64
			allDone := make(chan struct{})
			finish := func() {
				if handled.Add(1) == n+3 {
					close(allDone)
				}
			}
			w := &client.Worker{
				Client:      c,
				Concurrency: 4,
				BatchAcks:   batch,
				Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
					switch job.Type {
					case "flaky":
						if job.Attempt == 1 {
							return nil, errors.New("transient")
						}
						defer finish()
						return json.RawMessage(`"second time lucky"`), nil
					case "broken":
						defer finish()
						return nil, client.Permanent(errors.New("cannot parse"))
					case "panics":
						defer finish()
						panic("oh no")
					}
					defer finish()
					return json.RawMessage(`{"done":` + string(job.Payload) + `}`), nil
				},
			}
			stop, _ := runWorker(t, w)
			<-allDone
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			// Run returned: every outcome was reported.
			st := ok(c.Status(ctx)).must(t)
			if st.Jobs.Completed != n+1 || st.Jobs.Failed != 2 || st.Jobs.InFlight != 0 {
				t.Fatalf("counts %+v", st.Jobs)
			}
			if j := ok(c.Get(ctx, "41")).must(t); j.Attempt != 2 || string(j.Result) != `"second time lucky"` {
				t.Errorf("flaky: %+v", j)
			}
			if j := ok(c.Get(ctx, "42")).must(t); j.State != api.StateFailed || j.Attempt != 1 || j.LastError != "cannot parse" {
				t.Errorf("permanent: %+v", j)
			}
			if j := ok(c.Get(ctx, "43")).must(t); j.State != api.StateFailed || !strings.Contains(j.LastError, "panic: oh no") {
				t.Errorf("panic: %+v", j)
			}
			if j := ok(c.Get(ctx, "7")).must(t); string(j.Result) != `{"done":6}` {
				t.Errorf("result: %+v", j)
			}
		})
	}
}

func TestWorkerStopsOnCancel(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newServer(t, nil)
	ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "slow"})).must(t)
	started := make(chan struct{})
	release := make(chan struct{})
	var returned atomic.Bool
	w := &client.Worker{
		Client: c,
		Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
			close(started)
			<-release // the job is not interrupted by the stop
			defer returned.Store(true)
			return json.RawMessage(`"ok"`), ctx.Err()
		},
	}
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx2) }()
	<-started
	cancel()
	// Run waits for the running handler.
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a handler running", err)
	default:
	}
	// It takes no new job after the cancel.
	ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "late"})).must(t)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Run returned before the handler")
	}
	if j := ok(c.Get(ctx, "1")).must(t); j.State != api.StateCompleted {
		t.Errorf("running job: %+v", j)
	}
	if j := ok(c.Get(ctx, "2")).must(t); j.State != api.StatePending {
		t.Errorf("job enqueued after the stop: %+v", j)
	}
}

// A long job is heartbeated; when it is canceled the next heartbeat
// cancels the handler's context, with cause ErrJobCanceled.
func TestWorkerHeartbeat(t *testing.T) {
	ctx := context.Background()
	beats := make(chan struct{}, 100)
	c, _, _ := newServer(t, func(o *httpapi.Options) {
		o.Instrument = func(route string, h http.Handler) http.Handler {
			if route != "POST /v1/jobs/{id}/heartbeat" {
				return h
			}
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				beats <- struct{}{}
			})
		}
	})
	ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "long", Timeout: "1h"})).must(t)
	lost := make(chan error, 1)
	w := &client.Worker{
		Client: c,
		Lease:  300 * time.Millisecond, // a heartbeat every 100ms
		Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
			<-beats
			<-beats // two heartbeats went through: the lease was extended
			before := job.LeaseDeadline
			j, err := c.Get(ctx, job.ID)
			if err != nil || !j.LeaseDeadline.After(before) || j.State != api.StateInFlight {
				lost <- fmt.Errorf("not extended: %v -> %+v %v", before, j, err)
				return nil, nil
			}
			if _, err := c.Cancel(ctx, job.ID); err != nil {
				lost <- err
				return nil, nil
			}
			<-ctx.Done() // the next heartbeat finds the lease gone
			lost <- context.Cause(ctx)
			return nil, ctx.Err()
		},
	}
	stop, _ := runWorker(t, w)
	if err := <-lost; !errors.Is(err, client.ErrJobCanceled) {
		t.Fatalf("handler context ended with %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if j := ok(c.Get(ctx, "1")).must(t); j.State != api.StateCanceled {
		t.Errorf("job: %+v", j)
	}
}

// A handler is bounded by the job's timeout.
func TestWorkerTimeout(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newServer(t, nil)
	ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "stuck", Timeout: "20ms", MaxAttempts: 1})).must(t)
	done := make(chan struct{})
	var once sync.Once
	w := &client.Worker{
		Client: c,
		Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
			defer once.Do(func() { close(done) })
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
	stop, _ := runWorker(t, w)
	<-done
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	j := ok(c.Get(ctx, "1")).must(t)
	if j.State != api.StateFailed || !strings.Contains(j.LastError, "timeout after 20ms") {
		t.Errorf("job: %+v", j)
	}
}

// A lease refused with a 4xx stops Run with that error.
func TestWorkerRefused(t *testing.T) {
	c, _, _ := newServer(t, nil)
	w := &client.Worker{Client: c, Queues: []string{"bad queue"}, Handler: func(context.Context, api.Job) (json.RawMessage, error) { return nil, nil }}
	err := w.Run(context.Background())
	var e *client.Error
	if !errors.As(err, &e) || e.Code != api.CodeInvalidArgument {
		t.Fatalf("Run: %v", err)
	}
	if err := (&client.Worker{}).Run(context.Background()); err == nil {
		t.Fatal("Run without Client and Handler succeeded")
	}
}
