package fsm

import "math"

// Get returns the job with the given id.
func (m *Machine) Get(id uint64) (Job, bool) {
	j := m.jobs.get(id)
	if j == nil {
		return Job{}, false
	}
	return j.view(), true
}

// Filter selects jobs for List. Zero fields match everything.
type Filter struct {
	Queue string
	State State
	Type  string
	After uint64 // cursor: only ids greater than this (ascending order)
	// Desc lists the newest jobs (highest ids) first; Before is its cursor:
	// only ids less than this (0: no bound). After is ignored.
	Desc   bool
	Before uint64
	Limit  int // at most this many (<= 0: 100)
}

// List returns jobs matching f in id order (descending with f.Desc), and
// the cursor for the next page: the last id returned, to pass as After (or
// Before), or 0 when there are no more.
func (m *Machine) List(f Filter) (jobs []Job, next uint64) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	visit := func(j *job) bool {
		if (f.Queue != "" && j.cls.q.name != f.Queue) || (f.State != 0 && j.state != f.State) || (f.Type != "" && j.cls.typ != f.Type) {
			return true
		}
		if len(jobs) == limit {
			next = jobs[len(jobs)-1].ID
			return false
		}
		jobs = append(jobs, j.view())
		return true
	}
	switch {
	case !f.Desc:
		m.jobs.ascend(f.After+1, visit)
	case f.Before == 0:
		m.jobs.descend(^uint64(0), visit)
	case f.Before > 1:
		m.jobs.descend(f.Before-1, visit)
	}
	return jobs, next
}

// descend calls fn for every job with id <= from in descending id order
// until fn returns false.
func (t *pageTable) descend(from uint64, fn func(*job) bool) {
	if len(t.pages) == 0 || from>>pageBits < t.base {
		return
	}
	pn, si := from>>pageBits, int(from&(pageSize-1))
	if last := t.base + uint64(len(t.pages)) - 1; pn > last {
		pn, si = last, pageSize-1
	}
	for {
		if p := t.pages[pn-t.base]; p != nil {
			for ; si >= 0; si-- {
				if j := p.slots[si]; j != nil && !fn(j) {
					return
				}
			}
		}
		if pn == t.base {
			return
		}
		pn, si = pn-1, pageSize-1
	}
}

// QueueDepth describes the unfinished jobs of one queue.
type QueueDepth struct {
	Queue      string
	Unfinished int // pending + scheduled + in flight + blocked
	Pending    int
	// OldestPending is the earliest run_at of the queue's pending jobs:
	// since when the job that has waited longest has been runnable (0 when
	// nothing is pending).
	OldestPending int64
}

// Depths reports, for every queue that holds jobs (sorted by name), its
// unfinished jobs and its oldest pending job. It costs one index seek per
// distinct priority of the pending jobs of each (queue, type).
func (m *Machine) Depths() []QueueDepth {
	var out []QueueDepth
	var cur *QueueDepth
	for _, cl := range m.classList {
		q := cl.q
		if q.counts == ([numStates]int{}) {
			continue
		}
		if cur == nil || cur.Queue != q.name {
			out = append(out, QueueDepth{
				Queue:      q.name,
				Unfinished: q.counts[StatePending] + q.counts[StateScheduled] + q.counts[StateInFlight] + q.counts[StateBlocked],
				Pending:    q.counts[StatePending],
			})
			cur = &out[len(out)-1]
		}
		if at, ok := oldestRunnable(cl.runnable); ok && (cur.OldestPending == 0 || at < cur.OldestPending) {
			cur.OldestPending = at
		}
	}
	return out
}

// oldestRunnable is the earliest run_at in a runnable index, which is ordered
// by priority first: the first job of each priority is the oldest of that
// priority, and a seek skips to the next priority.
func oldestRunnable(t *jobTree) (at int64, ok bool) {
	var first *job
	take := func(j *job) bool { first = j; return false }
	t.Ascend(take)
	for first != nil {
		j := first
		if !ok || j.runAt < at {
			at, ok = j.runAt, true
		}
		if j.priority == math.MinInt32 {
			break
		}
		first = nil
		t.AscendGreaterOrEqual(&job{priority: j.priority - 1, runAt: math.MinInt64}, take)
	}
	return at, ok
}

// QueueCounts counts the jobs of one queue by state.
type QueueCounts struct {
	Queue   string
	ByState [numStates]int
}

// Count returns how many jobs of this queue are in state s.
func (c QueueCounts) Count(s State) int { return c.ByState[s] }

// Counts reports job counts by state overall and per queue (queues sorted by
// name; queues with no jobs left are omitted).
func (m *Machine) Counts() (total QueueCounts, queues []QueueCounts) {
	total.ByState = m.counts
	for _, q := range m.queueList {
		if q.counts == ([numStates]int{}) {
			continue
		}
		queues = append(queues, QueueCounts{Queue: q.name, ByState: q.counts})
	}
	return total, queues
}

// Totals counts jobs by state over all queues, without allocating.
func (m *Machine) Totals() QueueCounts { return QueueCounts{ByState: m.counts} }

// Unfinished is the number of pending, scheduled, in-flight and blocked
// jobs.
func (m *Machine) Unfinished() int {
	return m.counts[StatePending] + m.counts[StateScheduled] + m.counts[StateInFlight] + m.counts[StateBlocked]
}

// Len is the number of jobs held (all states).
func (m *Machine) Len() int { return m.jobs.count }

// NextDue is the earliest time at which a Tick has work: a scheduled job
// becomes runnable or a lease expires. ok is false when there is none.
func (m *Machine) NextDue() (at int64, ok bool) {
	if j, has := m.scheduled.Min(); has {
		at, ok = j.runAt, true
	}
	if j, has := m.inflight.Min(); has {
		if d := j.x().leaseDeadline; !ok || d < at {
			at, ok = d, true
		}
	}
	return at, ok
}

// NextPurge is the earliest finished_at among finished jobs, per final state
// (0 when there is none): a purge is worth proposing once it is older than
// that state's retention.
func (m *Machine) NextPurge() (completed, failed, canceled int64) {
	first := func(s State) int64 {
		if j, ok := m.finished[s].Min(); ok {
			return j.x().finishedAt
		}
		return 0
	}
	return first(StateCompleted), first(StateFailed), first(StateCanceled)
}

// Runnable reports whether a Lease of these queues and types (empty: all)
// would hand out a job at now: a pending job, or a scheduled one that is due,
// of a queue that admits a lease (not paused, under its limits).
func (m *Machine) Runnable(queues, types []string, now int64) bool {
	if now < m.now {
		now = m.now
	}
	for _, cl := range m.classesFor(queues, types) {
		if cl.runnable.Len() > 0 && cl.q.admits(now) {
			return true
		}
	}
	due := false
	m.scheduled.Ascend(func(j *job) bool {
		if j.runAt > now {
			return false
		}
		if (len(queues) == 0 || contains(queues, j.cls.q.name)) && (len(types) == 0 || contains(types, j.cls.typ)) && j.cls.q.admits(now) {
			due = true
			return false
		}
		return true
	})
	return due
}
