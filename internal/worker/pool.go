// Package worker is the in-process worker pool: it leases jobs of the types
// it has handlers for, runs each attempt with the job's timeout, recovers
// panics into errors, and reports outcomes back through the replica, many
// per command.
//
// # Goroutines
//
// Run owns them all: its own loop (leases jobs when slots are free and
// reports outcomes, both in one command), the goroutine of each command in
// flight (at most maxPipeline), and Workers goroutines that run the
// attempts. Run returns once every one of them has stopped.
//
// # Cancel while running
//
// With Options.Cancels hooked to the replica's OnApply, an attempt whose job
// is canceled has its context canceled (cause ErrJobCanceled), and its
// outcome is not reported: the job is canceled already, and a report would
// be refused anyway (fsm.ErrCanceled).
//
// # Shutdown
//
// When Run's context is canceled the dispatcher stops leasing. Running
// attempts go on until they finish or until the drain deadline
// (Options.DrainTimeout) passes; then their contexts are canceled, and an
// attempt that ends because of that is not reported: its job stays in
// flight and returns to the queue when the server restarts (or when its
// lease expires), without a failure counted against it.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/leasing"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Observer receives per-attempt figures (metrics). Calls come from many
// goroutines.
type Observer interface {
	// Started: an attempt began, wait after the job became runnable.
	Started(queue, typ string, wait time.Duration)
	// Finished: an attempt ended after d; outcome is "completed", "failed"
	// (will be retried or is dead: the state machine decides) or
	// "abandoned" (shutdown) or "canceled" (the job was canceled while it
	// ran).
	Finished(queue, typ string, d time.Duration, outcome string)
}

// Options configure a Pool.
type Options struct {
	Replica  replica.Replica
	Handlers map[string]handlers.Handler // by job type
	Workers  int                         // concurrent attempts; default 8
	Queues   []string                    // queues to take from; empty: all
	Retry    backoff.Policy
	// DrainTimeout is how long a shutdown waits for running attempts.
	DrainTimeout time.Duration
	// MaxIdle bounds the sleep between checks for runnable work when no
	// change wakes the dispatcher (default 1s).
	MaxIdle  time.Duration
	Name     string // worker name recorded on leased jobs; default "local"
	Clock    func() time.Time
	Logger   *slog.Logger
	Observer Observer
	// Cancels, if set, cancels the attempts of canceled jobs; the replica
	// must call its Applied (OnApply).
	Cancels *Cancels
}

// Pool runs jobs. Create it with New, run it with Run.
type Pool struct {
	o     Options
	types []string

	// done receives one outcome per attempt, from the attempt's goroutine.
	done chan outcome
}

type outcome struct {
	ack       fsm.Ack
	abandoned bool // cut short by shutdown, or canceled: nothing to report
}

// New returns a pool; it does nothing until Run.
func New(o Options) *Pool {
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = time.Second
	}
	if o.Name == "" {
		o.Name = "local"
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{o: o, done: make(chan outcome, o.Workers)}
	for t := range o.Handlers {
		p.types = append(p.types, t)
	}
	slices.Sort(p.types)
	return p
}

// Types lists the job types the pool runs.
func (p *Pool) Types() []string { return p.types }

// Run leases and runs jobs until ctx is canceled, then drains (see the
// package documentation) and returns nil. It returns early with an error
// only if the replica fails.
//
// One loop owns the pool's state (how many attempts run, which outcomes
// wait to be reported). Whenever slots are free and work is runnable it
// proposes one Lease command that also carries every outcome finished
// since the last command: one log record per cycle, however many jobs.
// Up to maxPipeline such commands are in flight at once: slots freed
// while a Lease waits for its fsync go into the next one.
func (p *Pool) Run(ctx context.Context) error {
	if len(p.types) == 0 {
		<-ctx.Done()
		return nil
	}
	// attempts run under hard, canceled only when the drain deadline passes
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	// Workers goroutines run the attempts, each one after the other: a
	// goroutine per attempt would grow a new stack every time. starts
	// holds a slot for each, so the loop never blocks on it.
	starts := make(chan start, p.o.Workers)
	var wg sync.WaitGroup
	for range p.o.Workers {
		wg.Go(func() {
			// the attempts' contexts are children of this goroutine's own,
			// not all of hard: a context registers its children under its
			// lock, which every worker would otherwise contend for
			wctx, cancel := context.WithCancel(hard)
			defer cancel()
			at := newAttemptTimer()
			defer at.stop()
			for s := range starts {
				p.run(wctx, at, s.job, s.seq)
			}
		})
	}
	defer wg.Wait()
	defer close(starts)
	l := &loop{p: p, starts: starts, results: make(chan proposal, maxPipeline)}
	err := l.serve(ctx)
	return errors.Join(err, l.drain(hardCancel))
}

// start is an attempt for a worker goroutine to run.
type start struct {
	job fsm.Job
	seq uint64 // Cancels.Seq before its Lease was proposed
}

// maxPipeline bounds the pool's commands in flight at once. One: a second
// Lease in flight rarely shares its predecessor's fdatasync (it comes
// during it), so it makes more and smaller log records, and the fdatasyncs
// they cost delay the enqueues beside them (bench e2e: 79k jobs/s with 2,
// 90k with 1; BenchmarkPoolNoop alike with both).
const maxPipeline = 1

// loop is the state of Run's loop; only Run's goroutine touches it.
type loop struct {
	p       *Pool
	starts  chan<- start
	running int
	acks    []fsm.Ack
	timer   *time.Timer

	// proposals in flight: each one's goroutine sends it back on results
	// (buffered for all of them, so it never blocks); serve and drain
	// receive every one before they return
	results  chan proposal
	inflight int
	reserved int // slots the Leases in flight may fill

	// idle: the last Try found nothing runnable (or failed transiently:
	// retrying); the loop waits for changed, wait or an outcome before it
	// tries again
	idle     bool
	retrying bool
	changed  <-chan struct{}
	wait     time.Duration
	failed   error // a Lease failed for good: serve returns it
}

// proposal is one command of the pool in flight: a Lease through
// leasing.Try (max > 0), or the outcomes alone (max == 0).
type proposal struct {
	acks []fsm.Ack
	max  int
	seq  uint64 // Cancels.Seq before it was proposed
	turn leasing.Turn
	err  error
}

func (l *loop) collect(o outcome) {
	l.running--
	if !o.abandoned {
		l.acks = append(l.acks, o.ack)
	}
}

// collectReady takes every outcome and proposal result already waiting.
func (l *loop) collectReady() {
	for {
		select {
		case o := <-l.p.done:
			l.collect(o)
		case r := <-l.results:
			l.returned(r)
		default:
			return
		}
	}
}

// serve leases, runs and reports until ctx is canceled.
func (l *loop) serve(ctx context.Context) error {
	p := l.p
	l.timer = time.NewTimer(time.Hour)
	defer l.timer.Stop()
	for {
		l.collectReady()
		if ctx.Err() != nil || l.failed != nil {
			return l.failed
		}
		if !l.idle && l.inflight < maxPipeline {
			if free := p.o.Workers - l.running - l.reserved; free > 0 {
				l.propose(ctx, free)
				continue
			}
		}
		if l.idle && !l.retrying && len(l.acks) > 0 && l.inflight < maxPipeline {
			l.propose(ctx, 0) // nothing to lease: the outcomes on their own
			continue
		}
		var changed <-chan struct{}
		wait := p.o.MaxIdle
		if l.idle {
			changed, wait = l.changed, l.wait
		}
		l.timer.Reset(wait)
		select {
		case o := <-p.done:
			l.collect(o)
			l.idle = false
		case r := <-l.results:
			l.returned(r)
		case <-changed:
			l.idle = false
		case <-l.timer.C:
			l.idle = false
		case <-ctx.Done():
		}
		if !l.timer.Stop() {
			select {
			case <-l.timer.C:
			default:
			}
		}
	}
}

// propose starts a command in flight: a Lease for up to max jobs carrying
// the waiting outcomes, or (max == 0) the outcomes alone.
func (l *loop) propose(ctx context.Context, max int) {
	p, rep := l.p, l.p.o.Replica
	r := proposal{acks: l.acks, max: max, seq: p.cancelSeq()}
	l.acks = nil
	l.inflight++
	l.reserved += max
	now := p.o.Clock().UnixNano()
	go func() {
		if r.max == 0 {
			// not under ctx: outcomes are reported during the drain too
			r.turn.Result, r.err = rep.Propose(context.Background(), &fsm.Command{Kind: fsm.KindAck, Now: now, Acks: r.acks})
			r.turn.Proposed = r.err == nil
		} else {
			r.turn, r.err = leasing.Try(ctx, rep, &fsm.Command{
				Kind: fsm.KindLease, Now: now,
				Queues: p.o.Queues, Types: p.types, Max: r.max, Worker: p.o.Name,
				Acks: r.acks,
			})
		}
		l.results <- r
	}()
}

// returned takes the result of a proposal: it starts the jobs a Lease got,
// or says what to wait for before the next try.
func (l *loop) returned(r proposal) {
	p := l.p
	l.inflight--
	l.reserved -= r.max
	t, err := r.turn, r.err
	if r.max == 0 {
		if err != nil {
			// the jobs stay in flight; they run again after their lease
			// expires or the server restarts
			p.o.Logger.Error("worker pool: reporting outcomes failed", "jobs", len(r.acks), "err", err)
			return
		}
		p.logRejected(r.acks, t.Result.AckErrs)
		return
	}
	if !t.Proposed || err != nil {
		l.acks = append(l.acks, r.acks...) // still unreported
	}
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		// shutdown: serve is returning
	case err != nil && transient(err):
		// a cluster without a (reachable) leader for now: the node goes
		// on serving and the pool tries again; jobs a lost Lease may have
		// taken come back when it expires, and its acks go with the next
		// Lease (a replayed ack of an applied one is rejected, harmlessly)
		p.o.Logger.Warn("worker pool: lease failed, retrying", "err", err)
		l.idle, l.retrying, l.changed, l.wait = true, true, nil, leaseRetry
	case err != nil:
		if l.failed == nil {
			l.failed = fmt.Errorf("worker pool: lease: %w", err)
		}
	case t.Proposed:
		l.started(r.acks, t.Result, r.seq)
		l.idle = false
	default:
		wait := p.o.MaxIdle
		if t.HasDue && t.Due < wait {
			wait = max(t.Due, time.Millisecond)
		}
		l.idle, l.retrying, l.changed, l.wait = true, false, t.Changed, wait
	}
}

// leaseRetry is the pause after a transient failure of a Lease.
const leaseRetry = 200 * time.Millisecond

// transient reports whether a failed proposal leaves the replica working:
// in a cluster, no leader is known, the leader was lost before the outcome
// was known, or the write did not commit in time. The pool retries those;
// any other error (the log failed, the replica closed) stops it.
func transient(err error) bool {
	if errors.Is(err, replica.ErrClosed) || errors.Is(err, replica.ErrFailed) {
		return false
	}
	return errors.Is(err, replica.ErrNotLeader) || errors.Is(err, replica.ErrUnknownOutcome) ||
		errors.Is(err, context.DeadlineExceeded)
}

// started logs the acks a Lease rejected and starts the jobs it got.
func (l *loop) started(acks []fsm.Ack, res fsm.Result, seq uint64) {
	p := l.p
	p.logRejected(acks, res.AckErrs)
	for _, j := range res.Jobs {
		l.running++
		l.starts <- start{job: j, seq: seq}
	}
}

// cancelSeq is Cancels.Seq, or 0 without Cancels.
func (p *Pool) cancelSeq() uint64 {
	if p.o.Cancels == nil {
		return 0
	}
	return p.o.Cancels.Seq()
}

func (p *Pool) logRejected(acks []fsm.Ack, errs []error) {
	for i, err := range errs {
		if err != nil {
			p.o.Logger.Debug("worker pool: outcome rejected (job canceled or lease expired meanwhile)", "id", acks[i].ID, "err", err)
		}
	}
}

// drain waits for the proposals in flight (starting the jobs a last Lease
// got), then for running attempts up to the drain deadline, reporting
// their outcomes, then cancels what is left.
func (l *loop) drain(hardCancel context.CancelFunc) error {
	p := l.p
	for l.inflight > 0 {
		l.returned(<-l.results)
	}
	var deadline <-chan time.Time
	if p.o.DrainTimeout > 0 {
		t := time.NewTimer(p.o.DrainTimeout)
		defer t.Stop()
		deadline = t.C
	} else {
		hardCancel()
	}
	for l.running > 0 {
		select {
		case o := <-p.done:
			l.collect(o)
			l.collectReady()
			if len(l.acks) > 0 {
				l.report()
			}
		case <-deadline:
			p.o.Logger.Warn("shutdown: drain deadline passed, abandoning running jobs (they run again after restart)", "jobs", l.running)
			hardCancel()
			deadline = nil
		}
	}
	if len(l.acks) > 0 {
		l.report()
	}
	return nil
}

// report proposes the waiting acks on their own and waits for the answer.
func (l *loop) report() {
	l.propose(context.Background(), 0)
	l.returned(<-l.results)
}

// run executes one attempt and queues its outcome.
func (p *Pool) run(wctx context.Context, at *attemptTimer, j fsm.Job, seq uint64) {
	h := p.o.Handlers[j.Type]
	start := p.o.Clock()
	if p.o.Observer != nil {
		p.o.Observer.Started(j.Queue, j.Type, start.Sub(time.Unix(0, j.RunAt)))
	}
	ctx, cancel, end := at.start(wctx, time.Duration(j.Timeout))
	unwatch := p.watch(j, seq, cancel)
	result, err := safeHandle(ctx, h, &handlers.Job{
		ID: strconv.FormatUint(j.ID, 10), Queue: j.Queue, Type: j.Type,
		Payload: []byte(j.Payload), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
	})
	ctxErr := ctx.Err()
	canceled := errors.Is(context.Cause(ctx), ErrJobCanceled)
	unwatch()
	end()
	d := p.o.Clock().Sub(start)
	if canceled {
		// the job is canceled: nothing to report, whatever the handler did
		p.o.Logger.Debug("job canceled while it ran", "id", j.ID, "type", j.Type, "attempt", j.Attempt)
		if p.o.Observer != nil {
			p.o.Observer.Finished(j.Queue, j.Type, d, "canceled")
		}
		p.done <- outcome{abandoned: true}
		return
	}
	if err != nil && wctx.Err() != nil {
		// shutdown cut it short: leave it in flight, it runs again later
		if p.o.Observer != nil {
			p.o.Observer.Finished(j.Queue, j.Type, d, "abandoned")
		}
		p.done <- outcome{abandoned: true}
		return
	}
	a := fsm.Ack{ID: j.ID, LeaseID: j.LeaseID}
	outcomeName := "completed"
	if err != nil {
		outcomeName = "failed"
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", time.Duration(j.Timeout), err)
		}
		a.Fail = true
		a.Error = err.Error()
		a.Final = handlers.IsPermanent(err)
		a.RetryAt = p.o.Clock().Add(p.o.Retry.Next(j.Attempt)).UnixNano()
		p.o.Logger.Debug("job attempt failed", "id", j.ID, "type", j.Type, "attempt", j.Attempt, "err", err)
	} else {
		a.Result = resultJSON(result)
	}
	if p.o.Observer != nil {
		p.o.Observer.Finished(j.Queue, j.Type, d, outcomeName)
	}
	p.done <- outcome{ack: a}
}

// safeHandle turns a panic into an error.
func safeHandle(ctx context.Context, h handlers.Handler, j *handlers.Job) (result []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return h.Handle(ctx, j)
}

// resultJSON stores a result as JSON: as it is when it is valid JSON,
// otherwise as a JSON string.
func resultJSON(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if json.Valid(b) {
		return string(b)
	}
	s, _ := json.Marshal(string(b))
	return string(s)
}
