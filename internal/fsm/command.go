package fsm

import "time"

// Kind names what a Command does.
type Kind uint8

const (
	// KindEnqueue adds Jobs, all or none.
	KindEnqueue Kind = iota + 1
	// KindLease hands up to Max runnable jobs of Queues (and of Types, if
	// given) to Worker. Acks, if any, are applied first (a worker reporting
	// what it finished and asking for more in one log record); their
	// outcomes are in Result.AckErrs.
	KindLease
	// KindAck completes or fails leased jobs (one durable write for many
	// reports). A single complete or fail is an Ack of one.
	KindAck
	// KindHeartbeat extends the lease of job ID.
	KindHeartbeat
	// KindCancel cancels job ID.
	KindCancel
	// KindRetry puts failed, canceled or scheduled job ID back to pending.
	KindRetry
	// KindTick promotes due scheduled jobs and expires overdue leases.
	KindTick
	// KindPurge drops finished jobs older than their retention.
	KindPurge
	// KindRecover returns every in-flight job to the queue. The single-node
	// replica proposes it after a restart: the workers that held those
	// leases died with the process.
	KindRecover
)

// Kinds 10 to 19: the queue controls (queuectl.go).
const (
	// KindSetQueue changes the settings of one queue (pause, concurrency
	// and rate limits): the fields Queue.Set names, the others are kept.
	KindSetQueue Kind = 10
)

// Kinds 20 to 29: periodic jobs (periodic.go).
const (
	// KindPeriodicPut creates or replaces the schedule Periodic.Name.
	KindPeriodicPut Kind = iota + 20
	// KindPeriodicDelete deletes the schedule Periodic.Name.
	KindPeriodicDelete
	// KindPeriodicFire enqueues the runs Periodic.Fires of the schedule
	// Periodic.Name that are after its last fired run, and records them.
	KindPeriodicFire

	maxKind = KindPeriodicFire
)

var kindNames = [...]string{
	KindEnqueue: "enqueue", KindLease: "lease", KindAck: "ack", KindHeartbeat: "heartbeat",
	KindCancel: "cancel", KindRetry: "retry", KindTick: "tick", KindPurge: "purge", KindRecover: "recover",
	KindSetQueue:    "set_queue",
	KindPeriodicPut: "periodic_put", KindPeriodicDelete: "periodic_delete", KindPeriodicFire: "periodic_fire",
}

// Wakes reports whether applying a command of this kind may make jobs
// runnable (an enqueue, an ack, a tick, a retry, a recover, a periodic
// fire, a resumed queue or a raised queue limit), so that waiters for
// runnable work (long-polling leases, the worker pool) must look again. The
// hosts of the machine close their Changed channel on it, and on any
// command whose Result.Unblocked is not zero (a cancel or a lease's acks
// may release jobs that depended on another).
func (k Kind) Wakes() bool {
	switch k {
	case KindEnqueue, KindAck, KindTick, KindRetry, KindRecover, KindPeriodicFire, KindSetQueue:
		return true
	}
	return false
}

func (k Kind) String() string {
	if k >= 1 && k <= maxKind && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(?)"
}

// Limits enforced by the machine itself. Proposers enforce tighter,
// configurable ones (payload size, batch size) before proposing.
const (
	MaxNameLen        = 128
	MaxUniqueKeyLen   = 256
	MaxAttemptsLimit  = 65535
	MaxTimeout        = 7 * 24 * time.Hour
	MinTimeout        = time.Millisecond
	DefaultQueue      = "default"
	DefaultMaxAttempt = 25
	DefaultTimeout    = 30 * time.Second
	// LeaseGrace is added to a job's timeout when a Lease does not say how
	// long the lease lasts: the worker's own deadline fires first.
	LeaseGrace = 5 * time.Second
	// MaxErrorLen bounds a stored last_error; longer ones are cut.
	MaxErrorLen = 4096
)

// Command is one entry of the log. Now is the proposer's clock (Unix
// nanoseconds); the remaining fields are read according to Kind.
type Command struct {
	Kind Kind
	Now  int64

	Jobs []JobSpec // Enqueue

	Queues   []string // Lease: queues to take from (empty: all)
	Types    []string // Lease: job types to take (empty: all)
	Max      int      // Lease: jobs to hand out; Tick, Purge: jobs to touch at most (0 = no bound)
	Worker   string   // Lease
	LeaseFor int64    // Lease, Heartbeat: lease length in ns (Lease: 0 = job timeout + LeaseGrace)

	Acks []Ack // Ack; Lease (applied before leasing)

	ID      uint64 // Heartbeat, Cancel, Retry
	LeaseID uint64 // Heartbeat

	Retention Retention // Purge

	Periodic *PeriodicCommand // PeriodicPut, PeriodicDelete, PeriodicFire

	Queue *QueueChange // SetQueue
}

// JobSpec is a job to enqueue. Zero values take defaults: queue "default",
// 25 attempts, 30 s timeout, run now.
type JobSpec struct {
	Queue       string
	Type        string
	Payload     string // raw JSON
	Priority    int32
	RunAt       int64 // Unix ns; 0 or <= Now: runnable at once
	MaxAttempts int
	Timeout     int64 // ns
	UniqueKey   string
	// Deps, if set, makes the job wait for other jobs (deps.go).
	Deps *Deps
	// UniqueFor keeps UniqueKey reserved this long (ns) after the job
	// finished (0: only while it is unfinished). Needs UniqueKey.
	UniqueFor int64
}

// Ack reports the outcome of one leased attempt.
type Ack struct {
	ID      uint64
	LeaseID uint64
	Fail    bool
	Result  string // on success
	Error   string // on failure
	// RetryAt is when a failed job runs again if it has attempts left; the
	// proposer computes it (backoff with jitter). 0 or <= Now: at once.
	RetryAt int64
	// Final fails the job now whatever attempts are left.
	Final bool
}

// Retention says how long finished jobs are kept, per final state, in ns.
// Zero keeps that state forever.
type Retention struct {
	Completed, Failed, Canceled int64
}

// Result is what applying a Command produced. Err is a rejection of the whole
// command (nothing changed); per-job outcomes of Ack are in AckErrs.
type Result struct {
	Err error

	Enqueued []EnqueueResult // Enqueue, in the order of Jobs
	Jobs     []Job           // Lease: the leased jobs; Cancel, Retry, Heartbeat: the job
	AckErrs  []error         // Ack: nil or a rejection, per Ack entry

	Promoted int // Tick, Lease: scheduled jobs that became pending
	Expired  int // Tick: leases that expired (requeued or failed)
	Purged   int // Purge
	// More is set by Tick and Purge when they stopped at Max with work left.
	More bool

	// Skipped is the number of runs a PeriodicFire skipped (catch-up).
	Skipped int
	// Unblocked counts the jobs that depended on jobs this command
	// finished and became runnable (or scheduled) because of it;
	// DepCanceled those canceled because a dependency failed or was
	// canceled (deps.go). Any command that finishes jobs may set them.
	Unblocked, DepCanceled int

	// CanceledRunning is set by a Cancel of a job that was in flight: its
	// worker learns it from the ErrCanceled of its next report.
	CanceledRunning bool
	// Queue is the queue a SetQueue changed, as it is after the change.
	Queue *QueueInfo
}

// EnqueueResult describes one enqueued job.
type EnqueueResult struct {
	ID    uint64
	State State
	// Duplicate: a job holding the same unique key already existed (an
	// unfinished one, or a finished one within its unique_for window); ID
	// and State are that job's.
	Duplicate bool
}
