package worker

import (
	"context"
	"sync"
	"time"
)

// attemptCtx is the context of an attempt: one cancelable child of its
// worker goroutine's context, canceled with cause context.DeadlineExceeded
// when the job's timeout passes (by the worker's timer), ErrJobCanceled when
// the job is canceled, or the drain's cancel. Deadline reports the timeout,
// and Err says context.DeadlineExceeded once it passed, as a context from
// context.WithTimeout would; it costs one context and no timer of its own.
type attemptCtx struct {
	context.Context
	deadline time.Time
}

func (c *attemptCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *attemptCtx) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}

// attemptTimer is a worker goroutine's timer: it enforces the timeout of
// the attempt the goroutine runs, one after the other, with one timer reset
// per attempt instead of a new one.
type attemptTimer struct {
	t        *time.Timer
	mu       sync.Mutex
	deadline time.Time
	cancel   context.CancelCauseFunc // of the attempt running; nil between them
}

func newAttemptTimer() *attemptTimer {
	at := &attemptTimer{}
	at.t = time.AfterFunc(time.Hour, at.fire)
	at.t.Stop()
	return at
}

// fire cancels the attempt running if its deadline passed: a firing late
// for an attempt that ended finds the next one's deadline ahead, or none.
func (at *attemptTimer) fire() {
	at.mu.Lock()
	defer at.mu.Unlock()
	if at.cancel != nil && !time.Now().Before(at.deadline) {
		at.cancel(context.DeadlineExceeded)
	}
}

// start returns the context of an attempt with timeout d under parent, and
// the function that ends it.
func (at *attemptTimer) start(parent context.Context, d time.Duration) (*attemptCtx, context.CancelCauseFunc, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	deadline := time.Now().Add(d)
	at.mu.Lock()
	at.deadline, at.cancel = deadline, cancel
	at.mu.Unlock()
	at.t.Reset(d)
	return &attemptCtx{Context: ctx, deadline: deadline}, cancel, func() {
		at.mu.Lock()
		at.cancel = nil
		at.mu.Unlock()
		at.t.Stop()
		cancel(nil)
	}
}

// stop releases the timer.
func (at *attemptTimer) stop() { at.t.Stop() }
