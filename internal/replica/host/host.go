// Package host holds the state machine for a replica driver: the lock
// around fsm.Machine, applying commands in log order, the OnApply hook, the
// Changed broadcast (the fsm says which kinds wake waiters), the index of
// the last applied log entry, and the counters that trigger snapshots.
//
// Both drivers use it: the single-node replica (package local) applies each
// WAL record once it is durable; the cluster replica (package raftrep)
// applies each batch of committed raft entries. Neither repeats these
// rules.
//
// # Concurrency
//
// Apply, ApplyBatch, Capture and Reset are called by the driver's one apply
// goroutine (the WAL's completion goroutine, raft's FSM goroutine), never
// concurrently with each other. Read, Changed, Applied and Since may be
// called from any goroutine.
package host

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// OnApply is called after each command is applied, under the host's lock,
// in log order. It must be fast and must not call the host.
type OnApply func(m *fsm.Machine, c *fsm.Command, r *fsm.Result)

// Host owns an fsm.Machine. The zero value is not usable; call New.
type Host struct {
	onApply OnApply

	mu      sync.RWMutex // guards m, applied, changed, watched
	m       *fsm.Machine
	applied uint64 // log index (LSN or raft index) of the last applied command
	changed chan struct{}
	watched bool // someone holds changed: close it at the next waking command
	// progress is closed at the next advance of applied, if progressWatched
	progress        chan struct{}
	progressWatched bool

	sinceRecords atomic.Uint64 // commands applied since the last Capture (or Reset)
	sinceBytes   atomic.Int64  // and their encoded bytes, as the driver reported them
}

// New hosts m, whose state includes every log entry up to applied.
// onApply may be nil.
func New(m *fsm.Machine, applied uint64, onApply OnApply) *Host {
	return &Host{m: m, applied: applied, onApply: onApply, changed: make(chan struct{}), progress: make(chan struct{})}
}

// Apply applies cmd, the log entry at index, whose encoding is size bytes.
func (h *Host) Apply(index uint64, cmd *fsm.Command, size int) fsm.Result {
	h.mu.Lock()
	res := h.applyLocked(index, cmd)
	h.advancedLocked()
	h.mu.Unlock()
	h.count(1, int64(size))
	return res
}

// ApplyBatch applies cmds, the log entries at indexes, under one lock, and
// stores the results in res (len(res) == len(cmds)). A nil command is an
// entry that carries no command (raft's own entries): only its index is
// recorded. size is the encoded bytes of the whole batch.
func (h *Host) ApplyBatch(indexes []uint64, cmds []*fsm.Command, res []fsm.Result, size int) {
	n := 0
	h.mu.Lock()
	for i, c := range cmds {
		if c == nil {
			if indexes[i] > h.applied {
				h.applied = indexes[i]
			}
			continue
		}
		res[i] = h.applyLocked(indexes[i], c)
		n++
	}
	h.advancedLocked()
	h.mu.Unlock()
	if n > 0 {
		h.count(uint64(n), int64(size))
	}
}

func (h *Host) applyLocked(index uint64, c *fsm.Command) fsm.Result {
	res := h.m.Apply(c)
	h.applied = index
	if h.onApply != nil {
		h.onApply(h.m, c, &res)
	}
	if h.watched && (c.Kind.Wakes() || res.Unblocked > 0) {
		close(h.changed)
		h.changed = make(chan struct{})
		h.watched = false
	}
	return res
}

func (h *Host) advancedLocked() {
	if h.progressWatched {
		close(h.progress)
		h.progress = make(chan struct{})
		h.progressWatched = false
	}
}

// WaitApplied returns once the entry at index is applied, or with ctx's
// error.
func (h *Host) WaitApplied(ctx context.Context, index uint64) error {
	for {
		h.mu.Lock()
		if h.applied >= index {
			h.mu.Unlock()
			return nil
		}
		h.progressWatched = true
		ch := h.progress
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (h *Host) count(records uint64, bytes int64) {
	h.sinceRecords.Add(records)
	h.sinceBytes.Add(bytes)
}

// Since reports the commands (and their bytes) applied since the last
// Capture or Reset: the drivers' snapshot trigger.
func (h *Host) Since() (records uint64, bytes int64) {
	return h.sinceRecords.Load(), h.sinceBytes.Load()
}

// AddSince counts commands that were applied without Apply (replayed at
// recovery straight into the machine) towards the snapshot trigger.
func (h *Host) AddSince(records uint64, bytes int64) { h.count(records, bytes) }

// Read runs fn with the machine under a read lock; fn must only query it
// and must not retain it.
func (h *Host) Read(fn func(m *fsm.Machine)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	fn(h.m)
}

// Changed returns a channel closed the next time a command that may make
// jobs runnable is applied (fsm.Kind.Wakes), or the machine is replaced.
func (h *Host) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watched = true
	return h.changed
}

// Applied is the index of the last applied log entry.
func (h *Host) Applied() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.applied
}

// Capture freezes the state for a snapshot (cheap: copy on write) and
// returns it with the index it covers. It resets the snapshot counters.
func (h *Host) Capture() (*fsm.Snapshot, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.m.Capture()
	h.sinceRecords.Store(0)
	h.sinceBytes.Store(0)
	return s, h.applied
}

// Reset replaces the machine with m, whose state includes every log entry
// up to applied (a snapshot installed by raft), and wakes every waiter.
func (h *Host) Reset(m *fsm.Machine, applied uint64) {
	h.mu.Lock()
	h.m = m
	h.applied = applied
	h.advancedLocked()
	close(h.changed)
	h.changed = make(chan struct{})
	h.watched = false
	h.mu.Unlock()
	h.sinceRecords.Store(0)
	h.sinceBytes.Store(0)
}
