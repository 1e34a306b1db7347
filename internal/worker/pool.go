// Package worker is the in-process worker pool: it leases jobs of the types
// it has handlers for, runs each attempt with the job's timeout, recovers
// panics into errors, and reports outcomes back through the replica, many
// per command.
//
// # Goroutines
//
// Run owns them all: one dispatcher (leases jobs when slots are free), one
// acker (batches outcomes into Ack commands), and one goroutine per running
// attempt, at most Workers. Run returns once every one of them has stopped.
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
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Observer receives per-attempt figures (metrics). Calls come from many
// goroutines.
type Observer interface {
	// Started: an attempt began, wait after the job became runnable.
	Started(queue, typ string, wait time.Duration)
	// Finished: an attempt ended after d; outcome is "completed", "failed"
	// (will be retried or is dead: the state machine decides) or
	// "abandoned" (shutdown).
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
}

// Pool runs jobs. Create it with New, run it with Run.
type Pool struct {
	o     Options
	types []string

	acks chan outcome
}

type outcome struct {
	ack fsm.Ack
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
	p := &Pool{o: o, acks: make(chan outcome, o.Workers)}
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
func (p *Pool) Run(ctx context.Context) error {
	if len(p.types) == 0 {
		<-ctx.Done()
		return nil
	}
	// attempts run under hard, canceled only when the drain deadline passes
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()

	var running sync.WaitGroup
	ackerDone := make(chan error, 1)
	go func() { ackerDone <- p.acker() }()

	slots := make(chan struct{}, p.o.Workers)
	err := p.dispatch(ctx, hard, slots, &running)

	// drain
	drained := make(chan struct{})
	go func() { running.Wait(); close(drained) }()
	if p.o.DrainTimeout > 0 {
		t := time.NewTimer(p.o.DrainTimeout)
		select {
		case <-drained:
		case <-t.C:
			p.o.Logger.Warn("shutdown: drain deadline passed, abandoning running jobs (they run again after restart)")
			hardCancel()
			<-drained
		}
		t.Stop()
	} else {
		hardCancel()
		<-drained
	}
	close(p.acks)
	if aerr := <-ackerDone; err == nil {
		err = aerr
	}
	return err
}

// dispatch leases jobs while slots are free, until ctx is canceled.
func (p *Pool) dispatch(ctx, hard context.Context, slots chan struct{}, running *sync.WaitGroup) error {
	rep := p.o.Replica
	for {
		// wait for a free slot
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		free := 1
	more:
		for free < p.o.Workers {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		// wait until something is runnable
		for {
			changed := rep.Changed()
			now := p.o.Clock().UnixNano()
			var runnable bool
			var due int64
			var hasDue bool
			rep.Read(func(m *fsm.Machine) {
				runnable = m.Runnable(p.o.Queues, p.types, now)
				if !runnable {
					due, hasDue = m.NextDue()
				}
			})
			if runnable {
				break
			}
			wait := p.o.MaxIdle
			if hasDue && time.Duration(due-now) < wait {
				wait = max(time.Duration(due-now), time.Millisecond)
			}
			t := time.NewTimer(wait)
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				for ; free > 0; free-- {
					<-slots
				}
				return nil
			}
			t.Stop()
		}
		res, err := rep.Propose(ctx, &fsm.Command{
			Kind: fsm.KindLease, Now: p.o.Clock().UnixNano(),
			Queues: p.o.Queues, Types: p.types, Max: free, Worker: p.o.Name,
		})
		if err != nil {
			for ; free > 0; free-- {
				<-slots
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("worker pool: lease: %w", err)
		}
		for _, j := range res.Jobs {
			running.Add(1)
			go func(j fsm.Job) {
				defer running.Done()
				defer func() { <-slots }()
				p.run(hard, j)
			}(j)
		}
		for free -= len(res.Jobs); free > 0; free-- {
			<-slots
		}
	}
}

// run executes one attempt and queues its outcome.
func (p *Pool) run(hard context.Context, j fsm.Job) {
	h := p.o.Handlers[j.Type]
	start := p.o.Clock()
	if p.o.Observer != nil {
		p.o.Observer.Started(j.Queue, j.Type, start.Sub(time.Unix(0, j.RunAt)))
	}
	ctx, cancel := context.WithTimeout(hard, time.Duration(j.Timeout))
	result, err := safeHandle(ctx, h, &handlers.Job{
		ID: strconv.FormatUint(j.ID, 10), Queue: j.Queue, Type: j.Type,
		Payload: []byte(j.Payload), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
	})
	ctxErr := ctx.Err()
	cancel()
	d := p.o.Clock().Sub(start)
	if err != nil && hard.Err() != nil {
		// shutdown cut it short: leave it in flight, it runs again later
		if p.o.Observer != nil {
			p.o.Observer.Finished(j.Queue, j.Type, d, "abandoned")
		}
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
	p.acks <- outcome{ack: a}
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

// acker batches outcomes into Ack commands until p.acks is closed and empty.
func (p *Pool) acker() error {
	var firstErr error
	batch := make([]fsm.Ack, 0, p.o.Workers)
	for o := range p.acks {
		batch = append(batch[:0], o.ack)
	drain:
		for len(batch) < cap(batch) {
			select {
			case o, ok := <-p.acks:
				if !ok {
					break drain
				}
				batch = append(batch, o.ack)
			default:
				break drain
			}
		}
		_, err := p.o.Replica.Propose(context.Background(), &fsm.Command{Kind: fsm.KindAck, Now: p.o.Clock().UnixNano(), Acks: slices.Clone(batch)})
		if err != nil {
			// the jobs stay in flight; they run again after their lease
			// expires or the server restarts
			p.o.Logger.Error("worker pool: reporting outcomes failed", "jobs", len(batch), "err", err)
			if firstErr == nil && !errors.Is(err, replica.ErrClosed) {
				firstErr = err
			}
		}
	}
	return firstErr
}
