// Package replica is the seam between the server and the replicated state:
// everything that changes jobs is a Command proposed here, and everything that
// reads them goes through Read. The single-node implementation (package
// local) drives the state machine from our WAL and snapshot files; the
// cluster implementation drives the same machine from hashicorp/raft.
package replica

import (
	"context"
	"errors"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// Replica is the replicated job state machine.
//
// All methods are safe for concurrent use.
type Replica interface {
	// Propose makes cmd durable, applies it to the state machine and returns
	// its result. cmd.Now must be set by the caller (the proposer's clock).
	// The returned error is a system failure (the log failed, the disk is
	// full, the replica is closed, not the leader); a rejected command is a
	// Result with Err set. While the disk is full only enqueues fail
	// (ErrDiskFull); every other command may still use the space held in
	// reserve for them.
	// ctx bounds only the wait to enter the log: once a command is in the
	// log it is applied, and Propose waits for it.
	Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error)

	// Read runs fn with the state machine, which must only be queried
	// (never applied to) and not retained after fn returns. fn runs under a
	// read lock: keep it short.
	Read(fn func(m *fsm.Machine))

	// Changed returns a channel that is closed the next time a command that
	// may make jobs runnable (an enqueue, an ack, a tick, a retry) is
	// applied. Long-polling leases wait on it.
	Changed() <-chan struct{}

	// Status reports figures for status pages and metrics.
	Status() Status

	// Close stops the replica: it waits for proposals already in the log
	// and for background work, and releases the data directory.
	Close() error
}

// Status describes a replica.
type Status struct {
	Role       string // "single", "leader", "follower", "candidate"
	AppliedLSN uint64
	Recovery   Recovery
	WAL        WALStatus
	Snapshot   SnapshotStatus
	// Failed is non-nil once the log has failed (matching ErrFailed and
	// saying why): writes are refused until a restart.
	Failed error
	// DiskFull is set while the disk is full: enqueues are refused
	// (ErrDiskFull), other commands keep working, until space is freed.
	DiskFull bool
	// Cluster is set by the cluster replica.
	Cluster *ClusterStatus
}

// ClusterStatus describes a cluster node.
type ClusterStatus struct {
	NodeID       string
	LeaderID     string // "" while no leader is known
	LeaderAddr   string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	// LastContact is how long ago a follower last heard from the leader
	// (0 on the leader).
	LastContact   time.Duration
	LeaderChanges uint64
	Servers       []Server
}

// Server is a member of the cluster configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
	Leader  bool
}

// Recovery describes what opening the replica did.
type Recovery struct {
	Duration        time.Duration
	SnapshotLSN     uint64 // 0 when no snapshot was loaded
	SnapshotJobs    int
	RecordsReplayed uint64
	TornBytes       int64  // bytes of a torn WAL tail that were cut off
	TornFile        string // the segment they were cut from
	SkippedSnapshot []string
	RequeuedJobs    int // in-flight jobs returned to the queue
}

// WALStatus describes the log.
type WALStatus struct {
	FirstLSN, LastLSN uint64
	Segments          int
	Bytes             int64
}

// SnapshotStatus describes snapshots.
type SnapshotStatus struct {
	Count        int
	LastLSN      uint64
	LastSize     int64
	LastDuration time.Duration
	LastTime     time.Time // when the last one was published (zero if never)
	Taken        uint64    // snapshots taken since start
	Failures     uint64
	LastError    string
}

// Errors of Propose. Match them with errors.Is; errors of the storage also
// wrap the storage's own error (e.g. wal.ErrDiskFull and syscall.ENOSPC).
var (
	// ErrClosed: the replica is closed.
	ErrClosed = errors.New("replica: closed")
	// ErrDiskFull: the disk is full and the command was not written. Only
	// enqueues are refused, until space is freed (the replica notices by
	// itself); other commands fail with it only once the space held in
	// reserve for them is used up too.
	ErrDiskFull = errors.New("replica: disk full")
	// ErrFailed: the log failed (a write or fsync error): no command is
	// accepted until the server restarts and recovers.
	ErrFailed = errors.New("replica: log failed")
	// ErrTooLarge: the command is too large for one log entry; nothing was
	// written. The caller should split it (smaller batches).
	ErrTooLarge = errors.New("replica: command too large for one log entry")
	// ErrNotLeader: this node is not the leader of its cluster and the
	// command was not written. The error may carry the leader (see
	// NotLeaderError): callers forward the call to it.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrUnknownOutcome: the command was handed to the log but the leader
	// was lost (or the wait timed out) before it was known to commit: it
	// may or may not be applied. Retrying an enqueue with the same unique
	// key is safe.
	ErrUnknownOutcome = errors.New("replica: outcome unknown")
	// ErrLastVoter: a removal would leave the cluster without a voter.
	ErrLastVoter = errors.New("cluster: refusing to remove the last voter")
	// ErrNoSuchNode: a removal names a node that is not a member.
	ErrNoSuchNode = errors.New("cluster: no such node")
)

// NotLeaderError is ErrNotLeader with what the node knows of the leader.
type NotLeaderError struct {
	LeaderID   string // "" when no leader is known (an election is running)
	LeaderAddr string // its raft address
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "replica: not the leader, and no leader is known (an election may be running)"
	}
	return "replica: not the leader; the leader is " + e.LeaderID + " at " + e.LeaderAddr
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Leadership is implemented by replicas whose leadership can change (the
// cluster replica). A replica that does not implement it always leads.
type Leadership interface {
	// Leading reports whether this node leads now, and returns a channel
	// that is closed at the next change of leadership.
	Leading() (leading bool, changed <-chan struct{})
}

// Leading reports whether r leads now and a channel closed at the next
// change (nil, never closed, for a replica that always leads).
func Leading(r Replica) (bool, <-chan struct{}) {
	if l, ok := r.(Leadership); ok {
		return l.Leading()
	}
	return true, nil
}

// Linearizable is implemented by replicas whose Read may see a state that
// is behind the cluster (a follower, or a leader that was deposed without
// knowing it).
type Linearizable interface {
	// ReadBarrier returns once every command committed before the call is
	// applied to this node's state and this node was the leader at some
	// point after the call: a Read that follows sees them all. It fails
	// with ErrNotLeader on a follower (forward the read to the leader).
	ReadBarrier(ctx context.Context) error
}

// ReadBarrier waits as Linearizable.ReadBarrier on replicas that implement
// it, and returns nil at once on those that are always current.
func ReadBarrier(ctx context.Context, r Replica) error {
	if l, ok := r.(Linearizable); ok {
		return l.ReadBarrier(ctx)
	}
	return nil
}

// Membership is implemented by the cluster replica: changes of the
// cluster's voters, made by the leader (a follower forwards them).
type Membership interface {
	// Join adds node id, reachable at raft address addr, as a voter. Joining
	// a node that is already a voter at that address does nothing.
	Join(ctx context.Context, id, addr string) error
	// Remove removes node id; the last voter is never removed.
	Remove(ctx context.Context, id string) error
}
