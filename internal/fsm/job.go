package fsm

import "fmt"

// State is where a job is in its life. See docs/states.md.
type State uint8

const (
	// StatePending jobs are runnable now.
	StatePending State = iota + 1
	// StateScheduled jobs wait for their run_at (a delay or a retry backoff).
	StateScheduled
	// StateInFlight jobs are leased to a worker.
	StateInFlight
	// StateCompleted is final: the job succeeded.
	StateCompleted
	// StateFailed is final: the last attempt failed.
	StateFailed
	// StateCanceled is final: somebody canceled the job.
	StateCanceled
	// StateBlocked jobs wait for the jobs they depend on to complete
	// (deps.go). Numbered after the final states, it is not final.
	StateBlocked

	numStates = int(StateBlocked) + 1
)

var stateNames = [...]string{"", "pending", "scheduled", "in_flight", "completed", "failed", "canceled", "blocked"}

func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Final reports whether no transition leaves s except Retry.
func (s State) Final() bool { return s >= StateCompleted && s <= StateCanceled }

// ParseState is the inverse of State.String.
func ParseState(name string) (State, bool) {
	for i := 1; i < len(stateNames); i++ {
		if stateNames[i] == name {
			return State(i), true
		}
	}
	return 0, false
}

// States lists every state in the order users see them: the unfinished
// states, then the final ones.
func States() []State {
	return []State{StatePending, StateScheduled, StateInFlight, StateBlocked, StateCompleted, StateFailed, StateCanceled}
}

// Job is a read-only copy of a job, as queries and results return it. Times
// are Unix nanoseconds (0 = unset).
type Job struct {
	ID            uint64
	Queue         string
	Type          string
	Payload       string // raw JSON, opaque to the machine
	Priority      int32
	State         State
	Attempt       int // attempts started so far
	MaxAttempts   int
	Timeout       int64 // per attempt, nanoseconds
	UniqueKey     string
	UniqueFor     int64 // ns the key stays reserved after the job finished
	RunAt         int64
	CreatedAt     int64
	StartedAt     int64 // start of the current or last attempt
	FinishedAt    int64
	LastError     string
	Result        string
	LeaseID       uint64   // while in flight
	LeaseDeadline int64    // while in flight
	Worker        string   // while in flight, or who ran the last attempt
	Deps          *JobDeps // nil unless the job was enqueued with dependencies
}

// job is the machine's compact form of a job: about 80 bytes plus the payload
// for a pending job. Rarely used fields live behind ext.
//
// Copy on write: a job whose gen differs from the machine's current gen may be
// shared with a snapshot being written and must be copied before it is
// changed (see Machine.writable). ext is never changed in place; a new one
// replaces it.
type job struct {
	id        uint64
	cls       *class // queue and type, interned
	payload   string
	runAt     int64 // when it becomes (or became) runnable
	createdAt int64
	ext       *jobExt

	timeoutMs   uint32
	priority    int32
	gen         uint32
	attempt     uint16
	maxAttempts uint16
	state       State
}

type jobExt struct {
	uniqueKey     string
	uniqueFor     int64 // ns; see unique.go
	leaseID       uint64
	leaseDeadline int64
	worker        string
	startedAt     int64
	finishedAt    int64
	lastError     string
	result        string
	dep           *jobDeps // dependencies (deps.go); replaced, never changed in place
}

// class interns the (queue, type) pair shared by many jobs, and holds their
// runnable jobs: a lease can then take the jobs of some types only (those an
// in-process worker has handlers for) without scanning past the others.
type class struct {
	q        *queue
	typ      string
	runnable *jobTree // pending jobs: priority desc, run_at asc, id asc
}

var emptyExt jobExt

func (j *job) x() *jobExt {
	if j.ext == nil {
		return &emptyExt
	}
	return j.ext
}

// withExt returns a copy of j's ext (or a new one) for j to take after
// changing it.
func (j *job) cloneExt() *jobExt {
	e := new(jobExt)
	if j.ext != nil {
		*e = *j.ext
	}
	return e
}

func (j *job) view() Job {
	x := j.x()
	return Job{
		ID:            j.id,
		Queue:         j.cls.q.name,
		Type:          j.cls.typ,
		Payload:       j.payload,
		Priority:      j.priority,
		State:         j.state,
		Attempt:       int(j.attempt),
		MaxAttempts:   int(j.maxAttempts),
		Timeout:       int64(j.timeoutMs) * 1e6,
		UniqueKey:     x.uniqueKey,
		UniqueFor:     x.uniqueFor,
		RunAt:         j.runAt,
		CreatedAt:     j.createdAt,
		StartedAt:     x.startedAt,
		FinishedAt:    x.finishedAt,
		LastError:     x.lastError,
		Result:        x.result,
		LeaseID:       x.leaseID,
		LeaseDeadline: x.leaseDeadline,
		Worker:        x.worker,
		Deps:          x.dep.view(),
	}
}
