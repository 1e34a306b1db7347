package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

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
	// seq counts the Cancels applied: an attempt whose Lease was proposed
	// when seq was s and that finds seq still at s once it is watched
	// cannot have missed one (see Pool.watch)
	seq    atomic.Uint64
	shards [cancelShards]cancelShard // by job id: workers add and remove concurrently
}

const cancelShards = 32

type cancelShard struct {
	mu      sync.Mutex
	running map[uint64]watched // by job id
	_       [40]byte           // a cache line of its own
}

func (c *Cancels) shard(id uint64) *cancelShard { return &c.shards[id%cancelShards] }

// watched is the running attempt of a job under one lease, and rarely
// others of the same job (an expired lease taken again while the first
// attempt still runs).
type watched struct {
	lease  uint64
	cancel context.CancelCauseFunc
	more   []watched
}

// NewCancels returns a Cancels with nothing to watch.
func NewCancels() *Cancels {
	c := &Cancels{}
	for i := range c.shards {
		c.shards[i].running = make(map[uint64]watched)
	}
	return c
}

// Applied is the replica's OnApply hook: it cancels the attempts of a job
// that a Cancel ended. It runs under the replica's lock and only takes its
// own.
func (c *Cancels) Applied(_ *fsm.Machine, cmd *fsm.Command, r *fsm.Result) {
	if cmd.Kind != fsm.KindCancel || r.Err != nil {
		return
	}
	// seq moves under the job's shard lock: an add of this job either
	// comes after (and sees it) or before (and is found here)
	sh := c.shard(cmd.ID)
	sh.mu.Lock()
	c.seq.Add(1)
	if w, ok := sh.running[cmd.ID]; ok {
		w.cancel(ErrJobCanceled)
		for _, m := range w.more {
			m.cancel(ErrJobCanceled)
		}
	}
	sh.mu.Unlock()
}

// Seq is the number of Cancels applied so far: take it before proposing
// the Lease whose attempts are then watched with it.
func (c *Cancels) Seq() uint64 { return c.seq.Load() }

// add watches the attempt of job id under lease until remove is called. It
// reports whether a Cancel was applied since seq.
func (c *Cancels) add(id, lease uint64, cancel context.CancelCauseFunc, seq uint64) (since bool) {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, ok := sh.running[id]
	if !ok {
		sh.running[id] = watched{lease: lease, cancel: cancel}
	} else {
		w.more = append(w.more, watched{lease: lease, cancel: cancel})
		sh.running[id] = w
	}
	return c.seq.Load() != seq
}

// remove stops watching the attempt of job id under lease.
func (c *Cancels) remove(id, lease uint64) {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	w, ok := sh.running[id]
	switch {
	case !ok:
	case w.lease == lease && len(w.more) == 0:
		delete(sh.running, id)
	case w.lease == lease:
		w.lease, w.cancel, w.more = w.more[0].lease, w.more[0].cancel, w.more[1:]
		sh.running[id] = w
	default:
		for i := range w.more {
			if w.more[i].lease == lease {
				w.more = append(w.more[:i], w.more[i+1:]...)
				break
			}
		}
		sh.running[id] = w
	}
}

// watching is the number of attempts watched (for tests).
func (c *Cancels) watching() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, w := range sh.running {
			n += 1 + len(w.more)
		}
		sh.mu.Unlock()
	}
	return n
}

// watch cancels an attempt of job j (cancel, with cause ErrJobCanceled)
// when the job is canceled, until the function it returns is called. seq
// is Cancels.Seq taken before the Lease of j was proposed.
func (p *Pool) watch(j fsm.Job, seq uint64, cancel context.CancelCauseFunc) func() {
	c := p.o.Cancels
	if c == nil {
		return func() {}
	}
	// A Cancel applied between the Lease and add was not seen by Applied:
	// the state says so, and only then is it read (a read per attempt
	// contends with the apply path). A state from before this attempt's
	// own lease (a follower behind the leader) says nothing about it. A
	// snapshot a lagging follower installs applies no Cancel: an attempt
	// running there then goes on, and its report is refused (the job is
	// canceled), as it would be had it started before the install.
	if c.add(j.ID, j.LeaseID, cancel, seq) {
		p.o.Replica.Read(func(m *fsm.Machine) {
			if cur, ok := m.Get(j.ID); ok && cur.State == fsm.StateCanceled && m.LeaseIssued(j.LeaseID) {
				cancel(ErrJobCanceled)
			}
		})
	}
	return func() { c.remove(j.ID, j.LeaseID) }
}
