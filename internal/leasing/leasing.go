// Package leasing is the one lease loop of Beaver-Raft: look for runnable
// work, propose a Lease only when there is some (an idle poll writes
// nothing to the log), and otherwise say what to wait for. The HTTP API's
// long poll (remote workers) and the in-process worker pool both use it.
package leasing

import (
	"context"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Turn is the outcome of one Try.
type Turn struct {
	// Proposed is set when the Lease was proposed; Result is its result
	// (its Jobs may be empty when another worker took the job first).
	Proposed bool
	Result   fsm.Result
	// Changed is closed at the next change that may make work runnable. It
	// was taken before the machine was read, so no change is missed.
	Changed <-chan struct{}
	// Due is how long until the next scheduled job (or lease deadline) is
	// due, or a rate window that holds back pending jobs of these queues
	// ends, when HasDue; a due time in the past means a Tick is about to
	// promote it (and will close Changed).
	Due    time.Duration
	HasDue bool
}

// Try proposes cmd, a KindLease stamped by the caller (cmd.Now), if a job
// of its queues and types is runnable at cmd.Now. The error is a system
// failure of Propose; a rejected Lease is in Result.Err.
func Try(ctx context.Context, rep replica.Replica, cmd *fsm.Command) (Turn, error) {
	var t Turn
	t.Changed = rep.Changed()
	var runnable bool
	var due int64
	rep.Read(func(m *fsm.Machine) {
		runnable = m.Runnable(cmd.Queues, cmd.Types, cmd.Now)
		if !runnable {
			due, t.HasDue = m.NextDue()
			// no command marks the end of a rate window: wake up for it
			if at, ok := m.RateReopens(cmd.Queues, cmd.Types); ok && (!t.HasDue || at < due) {
				due, t.HasDue = at, true
			}
		}
	})
	if t.HasDue {
		t.Due = time.Duration(due - cmd.Now)
	}
	if !runnable {
		return t, nil
	}
	res, err := rep.Propose(ctx, cmd)
	if err != nil {
		return t, err
	}
	t.Proposed, t.Result = true, res
	return t, nil
}

// Wait leases like Try, long-polling until it got jobs, until wait has
// passed (then it returns an empty result), or until ctx ends (also an
// empty result: the caller left, or the server is stopping). next builds
// the command of each try, stamped with the current time. It starts no
// goroutine.
//
// On a node that does not lead (a follower of a cluster), the local state
// may be behind: before answering that nothing is runnable, Wait catches
// up with the leader once (a read barrier) and looks again, so a poll
// without a wait through a follower sees a job enqueued just before it.
func Wait(ctx context.Context, rep replica.Replica, wait time.Duration, next func() *fsm.Command) (fsm.Result, error) {
	deadline := time.Now().Add(wait)
	caughtUp := false
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		t, err := Try(ctx, rep, next())
		if err != nil {
			return fsm.Result{}, err
		}
		if t.Proposed {
			if t.Result.Err != nil || len(t.Result.Jobs) > 0 {
				return t.Result, nil
			}
			if t.Result.Promoted > 0 {
				continue // it promoted due jobs of other queues first: look again
			}
			// Another worker took the job between the read and the lease.
		}
		left := time.Until(deadline)
		if left <= 0 {
			if !caughtUp && !t.Proposed {
				caughtUp = true
				if leading, _ := replica.Leading(rep); !leading && replica.ReadBarrier(ctx, rep) == nil {
					continue
				}
			}
			return fsm.Result{}, nil
		}
		if t.HasDue && t.Due > 0 && t.Due < left {
			left = t.Due
		}
		if timer == nil {
			timer = time.NewTimer(left)
		} else {
			timer.Reset(left)
		}
		select {
		case <-t.Changed:
		case <-timer.C:
		case <-ctx.Done():
			return fsm.Result{}, nil
		}
	}
}
