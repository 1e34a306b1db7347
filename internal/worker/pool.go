// Package worker is the in-process worker pool: it leases jobs of the types
// it has handlers for, runs each attempt with the job's timeout, recovers
// panics into errors, and reports outcomes back through the replica, many
// per command.
//
// # Goroutines
//
// Run owns them all: its own loop (leases jobs when slots are free and
// reports outcomes, both in one command), and one goroutine per running
// attempt, at most Workers. Run returns once every one of them has stopped.
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
func (p *Pool) Run(ctx context.Context) error {
	if len(p.types) == 0 {
		<-ctx.Done()
		return nil
	}
	// attempts run under hard, canceled only when the drain deadline passes
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	l := &loop{p: p, hard: hard}
	err := l.serve(ctx)
	return errors.Join(err, l.drain(hardCancel))
}

// loop is the state of Run's loop; only Run's goroutine touches it.
type loop struct {
	p       *Pool
	hard    context.Context
	running int
	acks    []fsm.Ack
	timer   *time.Timer
}

func (l *loop) collect(o outcome) {
	l.running--
	if !o.abandoned {
		l.acks = append(l.acks, o.ack)
	}
}

// collectReady takes every outcome already waiting.
func (l *loop) collectReady() {
	for {
		select {
		case o := <-l.p.done:
			l.collect(o)
		default:
			return
		}
	}
}

// serve leases, runs and reports until ctx is canceled.
func (l *loop) serve(ctx context.Context) error {
	p, rep := l.p, l.p.o.Replica
	l.timer = time.NewTimer(time.Hour)
	defer l.timer.Stop()
	for {
		l.collectReady()
		if ctx.Err() != nil {
			return nil
		}
		free := p.o.Workers - l.running
		var changed <-chan struct{}
		wait := p.o.MaxIdle
		retry := false
		if free > 0 {
			acks := l.acks
			l.acks = nil
			t, err := leasing.Try(ctx, rep, &fsm.Command{
				Kind: fsm.KindLease, Now: p.o.Clock().UnixNano(),
				Queues: p.o.Queues, Types: p.types, Max: free, Worker: p.o.Name,
				Acks: acks,
			})
			if !t.Proposed || err != nil {
				l.acks = acks // still unreported
			}
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil && transient(err):
				// a cluster without a (reachable) leader for now: the
				// node goes on serving and the pool tries again; jobs a
				// lost Lease may have taken come back when it expires, and
				// its acks go with the next Lease (a replayed ack of an
				// applied one is rejected, harmlessly)
				p.o.Logger.Warn("worker pool: lease failed, retrying", "err", err)
				wait, retry = leaseRetry, true
			case err != nil:
				return fmt.Errorf("worker pool: lease: %w", err)
			case t.Proposed:
				l.started(acks, t.Result)
				continue
			default:
				changed = t.Changed
				if t.HasDue && t.Due < wait {
					wait = max(t.Due, time.Millisecond)
				}
			}
		}
		if len(l.acks) > 0 && !retry {
			l.report()
			continue
		}
		l.timer.Reset(wait)
		select {
		case o := <-p.done:
			l.collect(o)
		case <-changed:
		case <-l.timer.C:
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
func (l *loop) started(acks []fsm.Ack, res fsm.Result) {
	p := l.p
	p.logRejected(acks, res.AckErrs)
	for _, j := range res.Jobs {
		l.running++
		go p.run(l.hard, j)
	}
}

// report proposes the waiting acks on their own.
func (l *loop) report() {
	p := l.p
	acks := l.acks
	l.acks = nil
	res, err := p.o.Replica.Propose(context.Background(), &fsm.Command{Kind: fsm.KindAck, Now: p.o.Clock().UnixNano(), Acks: acks})
	if err != nil {
		// the jobs stay in flight; they run again after their lease
		// expires or the server restarts
		p.o.Logger.Error("worker pool: reporting outcomes failed", "jobs", len(acks), "err", err)
		return
	}
	p.logRejected(acks, res.AckErrs)
}

func (p *Pool) logRejected(acks []fsm.Ack, errs []error) {
	for i, err := range errs {
		if err != nil {
			p.o.Logger.Debug("worker pool: outcome rejected (job canceled or lease expired meanwhile)", "id", acks[i].ID, "err", err)
		}
	}
}

// drain waits for running attempts up to the drain deadline, reporting
// their outcomes, then cancels what is left.
func (l *loop) drain(hardCancel context.CancelFunc) error {
	p := l.p
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

// run executes one attempt and queues its outcome.
func (p *Pool) run(hard context.Context, j fsm.Job) {
	h := p.o.Handlers[j.Type]
	start := p.o.Clock()
	if p.o.Observer != nil {
		p.o.Observer.Started(j.Queue, j.Type, start.Sub(time.Unix(0, j.RunAt)))
	}
	ctx, cancel := context.WithTimeout(hard, time.Duration(j.Timeout))
	ctx, unwatch := p.watch(ctx, j)
	result, err := safeHandle(ctx, h, &handlers.Job{
		ID: strconv.FormatUint(j.ID, 10), Queue: j.Queue, Type: j.Type,
		Payload: []byte(j.Payload), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
	})
	ctxErr := ctx.Err()
	canceled := errors.Is(context.Cause(ctx), ErrJobCanceled)
	unwatch()
	cancel()
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
	if err != nil && hard.Err() != nil {
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
