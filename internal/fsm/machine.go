package fsm

import (
	"github.com/google/btree"
)

// Machine is the job state machine. The zero value is not usable; call New.
type Machine struct {
	now       int64  // largest proposal time seen
	nextID    uint64 // next job id to assign
	nextLease uint64 // next lease id to assign
	applied   uint64 // commands applied (for digests and stats)
	gen       uint32 // copy-on-write generation; bumped by each capture

	jobs      pageTable
	queues    map[string]*queue // by name; never ranged over for a decision
	queueList []*queue          // sorted by name, for deterministic listing
	classes   map[classKey]*class
	classList []*class            // sorted by queue, then type
	lastClass *class              // the previous enqueued or restored job's class (a cache)
	scheduled *jobTree            // StateScheduled, by run_at
	inflight  *jobTree            // StateInFlight, by lease deadline
	finished  [numStates]*jobTree // final states, by finished_at
	unique    map[string]uint64   // unique key -> id of the job holding it (unique.go)
	counts    [numStates]int      // by state, all queues

	waits    *btree.BTreeG[depEdge] // blocked jobs by what they wait for (deps.go)
	cascade  cascade                // dependents settled by the current command
	periodic []*Schedule            // schedules, sorted by name (periodic.go)

	// reserved holds the unique keys of purged jobs whose unique_for window
	// has not ended (a state section, unique.go).
	reserved map[string]reservation
}

type classKey struct{ queue, typ string }

// New returns an empty machine.
func New() *Machine {
	m := &Machine{}
	m.reset()
	return m
}

func (m *Machine) reset() {
	*m = Machine{
		nextID:    1,
		nextLease: 1,
		gen:       m.gen + 1, // never reuse a generation a live snapshot may hold
		queues:    make(map[string]*queue),
		classes:   make(map[classKey]*class),
		scheduled: btree.NewG(btreeDegree, lessRunAt),
		inflight:  btree.NewG(btreeDegree, lessDeadline),
		unique:    make(map[string]uint64),
		waits:     btree.NewG(btreeDegree, lessEdge),
		reserved:  make(map[string]reservation),
	}
	for _, s := range []State{StateCompleted, StateFailed, StateCanceled} {
		m.finished[s] = btree.NewG(btreeDegree, lessFinished)
	}
}

// Now is the machine's clock: the largest proposal time applied so far.
func (m *Machine) Now() int64 { return m.now }

// Applied counts the commands applied since the machine was created or
// restored (including those counted in the restored snapshot).
func (m *Machine) Applied() uint64 { return m.applied }

// Apply applies one command and returns its result. It never panics on a
// malformed command: that is a rejected Result.
func (m *Machine) Apply(c *Command) Result {
	m.applied++
	if c.Now > m.now {
		m.now = c.Now
	}
	switch c.Kind {
	case KindEnqueue:
		return m.enqueue(c)
	case KindLease:
		return m.settled(m.lease(c))
	case KindAck:
		return m.settled(m.ack(c))
	case KindHeartbeat:
		return m.heartbeat(c)
	case KindCancel:
		return m.settled(m.cancel(c))
	case KindRetry:
		return m.retry(c)
	case KindTick:
		return m.settled(m.tick(c))
	case KindPurge:
		return m.purge(c)
	case KindRecover:
		return m.settled(m.recoverInFlight())
	case KindPeriodicPut:
		return m.periodicPut(c)
	case KindPeriodicDelete:
		return m.periodicDelete(c)
	case KindPeriodicFire:
		return m.periodicFire(c)
	case KindSetQueue:
		return m.setQueue(c)
	default:
		return Result{Err: &InvalidError{Field: "kind", Msg: "unknown command kind"}}
	}
}

// queueFor returns the queue named name, creating it.
func (m *Machine) queueFor(name string) *queue {
	if q := m.queues[name]; q != nil {
		return q
	}
	q := &queue{name: name}
	m.queues[name] = q
	// keep queueList sorted by name
	i := len(m.queueList)
	m.queueList = append(m.queueList, q)
	for i > 0 && m.queueList[i-1].name > name {
		m.queueList[i] = m.queueList[i-1]
		i--
	}
	m.queueList[i] = q
	return q
}

func (m *Machine) classFor(queueName, typ string) *class {
	if c := m.classes[classKey{queueName, typ}]; c != nil {
		return c
	}
	c := &class{q: m.queueFor(queueName), typ: typ, runnable: btree.NewG(btreeDegree, lessRunnable)}
	m.classes[classKey{queueName, typ}] = c
	i := len(m.classList)
	m.classList = append(m.classList, c)
	for i > 0 && (m.classList[i-1].q.name > queueName || m.classList[i-1].q.name == queueName && m.classList[i-1].typ > typ) {
		m.classList[i] = m.classList[i-1]
		i--
	}
	m.classList[i] = c
	return c
}

// writable returns a version of j that may be changed: j itself, or a copy
// stored in its place if a snapshot may share j.
func (m *Machine) writable(j *job) *job {
	if j.gen == m.gen {
		return j
	}
	c := new(job)
	*c = *j
	c.gen = m.gen
	m.jobs.set(c.id, c, m.gen)
	return c
}

// index adds j to the structures of its state and counts it.
func (m *Machine) index(j *job) {
	m.counts[j.state]++
	j.cls.q.counts[j.state]++
	m.indexTrees(j)
}

// indexTrees is index without the counts: it adds j to the ordered indexes
// of its state.
func (m *Machine) indexTrees(j *job) {
	switch j.state {
	case StatePending:
		j.cls.runnable.ReplaceOrInsert(j)
	case StateScheduled:
		m.scheduled.ReplaceOrInsert(j)
	case StateInFlight:
		m.inflight.ReplaceOrInsert(j)
	case StateCompleted, StateFailed, StateCanceled:
		m.finished[j.state].ReplaceOrInsert(j)
	case StateBlocked:
		for _, d := range j.ext.dep.waiting {
			m.waits.ReplaceOrInsert(depEdge{dep: d, job: j.id})
		}
	}
}

// unindex removes j from the structures of its state. It must be called
// before any ordering field of j changes.
func (m *Machine) unindex(j *job) {
	m.counts[j.state]--
	j.cls.q.counts[j.state]--
	switch j.state {
	case StatePending:
		j.cls.runnable.Delete(j)
	case StateScheduled:
		m.scheduled.Delete(j)
	case StateInFlight:
		m.inflight.Delete(j)
	case StateCompleted, StateFailed, StateCanceled:
		m.finished[j.state].Delete(j)
	case StateBlocked:
		for _, d := range j.ext.dep.waiting {
			m.waits.Delete(depEdge{dep: d, job: j.id})
		}
	}
}

// releaseUnique frees j's unique key if j holds it.
func (m *Machine) releaseUnique(j *job) {
	if j.ext == nil || j.ext.uniqueKey == "" {
		return
	}
	if id, ok := m.unique[j.ext.uniqueKey]; ok && id == j.id {
		delete(m.unique, j.ext.uniqueKey)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// do not cut a UTF-8 sequence in half
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
