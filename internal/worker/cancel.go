package worker

import (
	"context"
	"errors"
	"sync"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// ErrJobCanceled is the cause (context.Cause) of the context of an attempt
// whose job was canceled while it ran.
var ErrJobCanceled = errors.New("worker: the job was canceled")

// Cancels tells the pool's running attempts that their job was canceled:
// the replica calls Applied, its OnApply hook, for every command it
// applies. In a cluster every node applies every Cancel, so a pool on any
// node learns it. Give the same Cancels to the pool (Options.Cancels).
//
// An attempt is watched from when it starts: a Cancel applied before that
// is found by a read of the job's state when the watch begins (see
// Pool.watch), so no cancel is missed.
type Cancels struct {
	mu      sync.Mutex
	running map[uint64]map[uint64]context.CancelCauseFunc // job id -> lease id -> cancel
}

// NewCancels returns a Cancels with nothing to watch.
func NewCancels() *Cancels {
	return &Cancels{running: make(map[uint64]map[uint64]context.CancelCauseFunc)}
}

// Applied is the replica's OnApply hook: it cancels the attempts of a job
// that a Cancel ended. It runs under the replica's lock and only takes its
// own.
func (c *Cancels) Applied(_ *fsm.Machine, cmd *fsm.Command, r *fsm.Result) {
	if cmd.Kind != fsm.KindCancel || r.Err != nil {
		return
	}
	c.mu.Lock()
	for _, cancel := range c.running[cmd.ID] {
		cancel(ErrJobCanceled)
	}
	c.mu.Unlock()
}

// add watches the attempt of job id under lease until the returned
// function is called.
func (c *Cancels) add(id, lease uint64, cancel context.CancelCauseFunc) (remove func()) {
	c.mu.Lock()
	byLease := c.running[id]
	if byLease == nil {
		byLease = make(map[uint64]context.CancelCauseFunc, 1)
		c.running[id] = byLease
	}
	byLease[lease] = cancel
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(byLease, lease)
		if len(byLease) == 0 {
			delete(c.running, id)
		}
		c.mu.Unlock()
	}
}

// watching is the number of attempts watched (for tests).
func (c *Cancels) watching() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.running {
		n += len(m)
	}
	return n
}

// watch returns ctx canceled (with cause ErrJobCanceled) when job j is
// canceled, and the function that stops watching.
func (p *Pool) watch(ctx context.Context, j fsm.Job) (context.Context, func()) {
	if p.o.Cancels == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	remove := p.o.Cancels.add(j.ID, j.LeaseID, cancel)
	// A Cancel applied between the Lease and add was not seen by Applied:
	// the state says so. A state from before this attempt's own lease (a
	// follower behind the leader) says nothing about it.
	p.o.Replica.Read(func(m *fsm.Machine) {
		if cur, ok := m.Get(j.ID); ok && cur.State == fsm.StateCanceled && m.LeaseIssued(j.LeaseID) {
			cancel(ErrJobCanceled)
		}
	})
	return ctx, func() { remove(); cancel(nil) }
}
