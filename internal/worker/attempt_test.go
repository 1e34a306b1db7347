package worker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An attempt's context ends at its timeout as one from context.WithTimeout
// would: Deadline is reported, Err is DeadlineExceeded, a child sees it.
func TestAttemptContextTimesOut(t *testing.T) {
	at := newAttemptTimer()
	defer at.stop()
	before := time.Now()
	ctx, _, end := at.start(context.Background(), 20*time.Millisecond)
	defer end()
	if d, ok := ctx.Deadline(); !ok || d.Before(before.Add(20*time.Millisecond)) {
		t.Fatalf("deadline %v, %v", d, ok)
	}
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	<-child.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("after the timeout: Err %v, Cause %v", ctx.Err(), context.Cause(ctx))
	}
	if !errors.Is(context.Cause(child), context.DeadlineExceeded) {
		t.Fatalf("child's cause %v", context.Cause(child))
	}
}

// The worker's timer firing late, for an attempt that has ended, cancels
// neither that one nor the next one (whose deadline is ahead); a Cancel's
// cause and the parent's cancel go through.
func TestAttemptTimerFiringLateCancelsNothing(t *testing.T) {
	at := newAttemptTimer()
	defer at.stop()
	first, _, end := at.start(context.Background(), time.Hour)
	end()
	if !errors.Is(first.Err(), context.Canceled) || errors.Is(first.Err(), context.DeadlineExceeded) {
		t.Fatalf("an ended attempt: %v", first.Err())
	}
	at.fire()
	next, cancel, end := at.start(context.Background(), time.Hour)
	at.fire() // a firing meant for the first one
	if next.Err() != nil {
		t.Fatalf("a late firing canceled the next attempt: %v", context.Cause(next))
	}
	cancel(ErrJobCanceled)
	if !errors.Is(context.Cause(next), ErrJobCanceled) || errors.Is(next.Err(), context.DeadlineExceeded) {
		t.Fatalf("canceled attempt: Err %v, Cause %v", next.Err(), context.Cause(next))
	}
	end()

	parent, stop := context.WithCancel(context.Background())
	ctx, _, end := at.start(parent, time.Hour)
	defer end()
	stop()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("parent canceled: %v", ctx.Err())
	}
}
