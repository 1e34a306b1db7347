package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/permanent"
)

// Defaults of Worker.
const (
	DefaultWorkerLease = 30 * time.Second
	DefaultWorkerWait  = 30 * time.Second
	// DefaultJobTimeout bounds a handler when the job's timeout is unknown.
	DefaultJobTimeout = 30 * time.Second
	// reportTimeout bounds the reporting of one outcome (with its retries).
	reportTimeout = 30 * time.Second
	// maxAckBatch bounds the acks of one /v1/ack call.
	maxAckBatch = 1000
)

// HandlerFunc runs one attempt of a job. It must return when ctx is done
// (the job's timeout, a lost lease, or a drain timeout). A nil error
// completes the job with result (any JSON value, or nil); an error fails
// the attempt (retried with the server's backoff while attempts remain),
// and Permanent(err) fails the job at once.
type HandlerFunc func(ctx context.Context, job api.Job) (result json.RawMessage, err error)

// Worker is a remote worker: it leases jobs from the server over HTTP,
// runs Handler on them, and reports the outcomes.
//
// Run long-polls for up to Concurrency jobs at a time (only as many as it
// has free slots), runs each in its own goroutine with a context bounded
// by the job's timeout, heartbeats jobs that run longer than Heartbeat so
// their lease does not expire, and reports each outcome: one call per job,
// or, with BatchAcks, through /v1/ack batching the outcomes that are ready
// together into one durable write.
//
// When Run's context is canceled, Run stops taking jobs, lets running
// handlers finish (their contexts are not canceled, unless DrainTimeout is
// set and expires), reports their outcomes, and returns. Every goroutine
// it starts has ended when it returns. A job whose lease was lost (it
// expired) has its context canceled and its outcome dropped: the server has
// given it to someone else. A job canceled while it runs has its context
// canceled with cause ErrJobCanceled at the next heartbeat (the server
// answers 409 canceled) and its outcome dropped too.
type Worker struct {
	Client *Client
	// Queues and Types select the jobs, as in api.LeaseRequest (neither:
	// the default queue).
	Queues []string
	Types  []string
	// Concurrency is the most jobs run at once (default 1).
	Concurrency int
	// Lease is how long each lease lasts (default 30s); heartbeats extend
	// it by as much.
	Lease time.Duration
	// Wait is the long poll of each lease call (default 30s; the server
	// caps it).
	Wait    time.Duration
	Handler HandlerFunc
	// Heartbeat is the interval between heartbeats of a running job
	// (default Lease/3).
	Heartbeat time.Duration
	// BatchAcks reports outcomes through /v1/ack.
	BatchAcks bool
	// Name identifies the worker to the server (default host-pid).
	Name string
	// DrainTimeout, if positive, is how long running handlers may go on
	// after Run's context is canceled before their contexts are canceled.
	DrainTimeout time.Duration
	// Logger receives errors of lease, heartbeat and report calls. Default:
	// discard.
	Logger *slog.Logger
}

// Permanent wraps err so that the job fails at once, whatever attempts are
// left (an error a retry cannot fix). Permanent(nil) is nil.
func Permanent(err error) error { return permanent.New(err) }

// IsPermanent reports whether err, or an error it wraps, was made by
// Permanent (of this package or of any other Beaver-Raft package).
func IsPermanent(err error) bool { return permanent.Is(err) }

var (
	errLeaseLost = errors.New("the lease of the job was lost")
	errTimeout   = errors.New("job timeout")
)

// Run runs the worker until ctx is canceled; see Worker. It returns nil
// after a cancellation, or the error that stopped it: a misconfiguration,
// or a lease call the server refused with a 4xx (a bad token or queue
// name), which retrying cannot fix. Transport errors and 5xx answers are
// retried with backoff.
func (w *Worker) Run(ctx context.Context) error {
	if w.Client == nil || w.Handler == nil {
		return errors.New("client: Worker needs a Client and a Handler")
	}
	r := &run{w: w, log: w.Logger, conc: max(w.Concurrency, 1), lease: w.Lease, wait: w.Wait, beat: w.Heartbeat, name: w.Name}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.lease <= 0 {
		r.lease = DefaultWorkerLease
	}
	if r.wait <= 0 {
		r.wait = DefaultWorkerWait
	}
	if r.beat <= 0 {
		r.beat = r.lease / 3
	}
	if r.name == "" {
		host, _ := os.Hostname()
		r.name = host + "-" + strconv.Itoa(os.Getpid())
	}
	// Handlers and reports outlive ctx (a drain), until hard is canceled.
	hard, stopHard := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHard()
	r.hard = hard
	if w.BatchAcks {
		r.acks = make(chan ackJob, r.conc)
		r.ackerDone = make(chan struct{})
		go r.acker()
	}
	err := r.leaseLoop(ctx)

	// Drain: wait for the running handlers, then for the acker.
	drained := make(chan struct{})
	go func() { r.jobs.Wait(); close(drained) }()
	if w.DrainTimeout > 0 {
		t := time.NewTimer(w.DrainTimeout)
		select {
		case <-drained:
		case <-t.C:
			stopHard()
		}
		t.Stop()
	}
	<-drained
	if r.acks != nil {
		close(r.acks)
		<-r.ackerDone
	}
	return err
}

// run is the state of one Worker.Run.
type run struct {
	w                 *Worker
	log               *slog.Logger
	conc              int
	lease, wait, beat time.Duration
	name              string
	hard              context.Context
	jobs              sync.WaitGroup
	acks              chan ackJob // BatchAcks: outcomes for the acker
	ackerDone         chan struct{}
}

// leaseLoop leases jobs for the free slots and starts them, until ctx ends
// or the server refuses the lease call.
func (r *run) leaseLoop(ctx context.Context) error {
	slots := make(chan struct{}, r.conc) // a token per running job
	failures := 0
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		n := 1
	more:
		for n < r.conc {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		res, err := r.w.Client.Lease(ctx, api.LeaseRequest{
			Queues: r.w.Queues, Types: r.w.Types, Max: n,
			Wait: r.wait.String(), Lease: r.lease.String(), Worker: r.name,
		})
		if err != nil {
			for range n {
				<-slots
			}
			if ctx.Err() != nil {
				return nil
			}
			var e *Error
			if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests {
				return fmt.Errorf("client: lease refused: %w", err)
			}
			failures++
			r.log.Warn("lease failed", "err", err, "failures", failures)
			if !sleep(ctx, backoffDelay(failures)) {
				return nil
			}
			continue
		}
		failures = 0
		for i, job := range res.Jobs {
			if i >= n { // never: the server hands out at most n
				break
			}
			r.jobs.Add(1)
			go func() {
				defer r.jobs.Done()
				defer func() { <-slots }()
				r.runJob(job)
			}()
		}
		for range n - min(len(res.Jobs), n) {
			<-slots
		}
	}
}

// runJob runs one job with its timeout and heartbeats, and reports the
// outcome.
func (r *run) runJob(job api.Job) {
	timeout, err := time.ParseDuration(job.Timeout)
	if err != nil || timeout <= 0 {
		timeout = DefaultJobTimeout
	}
	tctx, cancelTimeout := context.WithTimeoutCause(r.hard, timeout, errTimeout)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)

	stopBeat := make(chan struct{})
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		r.heartbeat(ctx, job, stopBeat, cancel)
	}()
	result, herr := r.call(ctx, job)
	close(stopBeat)
	<-beatDone

	if errors.Is(context.Cause(ctx), errLeaseLost) {
		r.log.Info("job dropped: its lease was lost", "job", job.ID)
		return
	}
	if errors.Is(context.Cause(ctx), ErrJobCanceled) {
		r.log.Info("job dropped: it was canceled while it ran", "job", job.ID)
		return
	}
	if herr == nil && len(result) > 0 && !json.Valid(result) {
		herr = fmt.Errorf("the handler returned a result that is not JSON: %.100q", result)
	}
	if herr != nil && errors.Is(context.Cause(ctx), errTimeout) {
		herr = fmt.Errorf("timeout after %v: %w", timeout, herr)
	}
	r.report(job, result, herr)
}

// call runs the handler, turning a panic into an error.
func (r *run) call(ctx context.Context, job api.Job) (result json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return r.w.Handler(ctx, job)
}

// heartbeat extends the job's lease every r.beat until stop is closed. It
// cancels the handler's context when the server says the lease is gone.
func (r *run) heartbeat(ctx context.Context, job api.Job, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	t := time.NewTicker(r.beat)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := r.w.Client.Heartbeat(ctx, job.ID, api.HeartbeatRequest{LeaseID: job.LeaseID, Extend: r.lease.String()})
		var e *Error
		switch {
		case err == nil:
		case IsCanceled(err):
			cancel(ErrJobCanceled)
			return
		case errors.As(err, &e) && (e.Status == http.StatusConflict || e.Status == http.StatusNotFound):
			cancel(errLeaseLost)
			return
		default:
			r.log.Warn("heartbeat failed", "job", job.ID, "err", err)
		}
	}
}

// ackJob is an outcome waiting for the acker.
type ackJob struct {
	item api.AckItem
}

// report sends the outcome of a job: at once, or through the acker.
func (r *run) report(job api.Job, result json.RawMessage, herr error) {
	item := api.AckItem{ID: job.ID, LeaseID: job.LeaseID}
	if herr != nil {
		msg := herr.Error()
		item.Error, item.Final = &msg, IsPermanent(herr)
	} else {
		item.Result = result
	}
	if r.acks != nil {
		r.acks <- ackJob{item}
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.hard), reportTimeout)
	defer cancel()
	err := retry(ctx, func() error {
		var err error
		if herr != nil {
			_, err = r.w.Client.Fail(ctx, job.ID, api.FailRequest{LeaseID: job.LeaseID, Error: *item.Error, Final: item.Final})
		} else {
			_, err = r.w.Client.Complete(ctx, job.ID, api.CompleteRequest{LeaseID: job.LeaseID, Result: result})
		}
		return err
	})
	switch {
	case IsCanceled(err):
		r.log.Info("outcome dropped: the job was canceled while it ran", "job", job.ID)
	case err != nil:
		r.log.Warn("report failed", "job", job.ID, "err", err)
	}
}

// acker sends the outcomes in r.acks through /v1/ack: whatever is queued
// when it is free goes in one call. It ends when r.acks is closed.
func (r *run) acker() {
	defer close(r.ackerDone)
	for first := range r.acks {
		batch := []api.AckItem{first.item}
	fill:
		for len(batch) < maxAckBatch {
			select {
			case a, ok := <-r.acks:
				if !ok {
					break fill
				}
				batch = append(batch, a.item)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.hard), reportTimeout)
		var res api.AckResponse
		err := retry(ctx, func() error {
			var err error
			res, err = r.w.Client.Ack(ctx, api.AckRequest{Acks: batch})
			return err
		})
		cancel()
		if err != nil {
			r.log.Warn("ack failed", "jobs", len(batch), "err", err)
			continue
		}
		for _, a := range res.Results {
			if !a.OK && a.Error != nil {
				r.log.Info("ack rejected", "job", a.ID, "code", a.Error.Code, "msg", a.Error.Message)
			}
		}
	}
}

// retry calls f until it succeeds, the server refuses it with a 4xx (not
// worth repeating), or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for n := 1; ; n++ {
		err := f()
		var e *Error
		if err == nil || (errors.As(err, &e) && e.Status < 500 && e.Status != http.StatusTooManyRequests) {
			return err
		}
		if !sleep(ctx, backoffDelay(n)) {
			return err
		}
	}
}

// backoffDelay is the pause after n consecutive failures: 100ms doubling,
// at most 5s.
func backoffDelay(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 5*time.Second; i++ {
		d *= 2
	}
	return min(d, 5*time.Second)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
