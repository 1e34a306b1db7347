// Package api holds the wire types of Beaver-Raft's HTTP API (v1) and its
// error codes. It has no logic: the server (internal/httpapi) decodes and
// validates these types, and the Go client (package client) sends them.
// docs/api.md describes every call with examples.
//
// Conventions:
//
//   - Job ids and lease ids are decimal strings ("42"): JSON numbers lose
//     precision above 2^53 in many languages.
//   - Durations are Go duration strings ("1m30s", "250ms"); times are RFC 3339
//     strings, in UTC with nanoseconds in responses.
//   - Payloads and results are any JSON value, passed through as raw JSON.
//   - Every error is an [Error] body with one of the Code constants and a
//     status code that fits it.
package api

import (
	"encoding/json"
	"time"
)

// Error codes of [ErrorBody.Code], with the HTTP status each one comes with.
const (
	// CodeInvalidArgument (400): the request is malformed or a field is not
	// acceptable. The message names the field ("jobs[3].type is required").
	CodeInvalidArgument = "invalid_argument"
	// CodeUnauthorized (401): auth is configured and the request has no
	// valid "Authorization: Bearer <token>" header.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden (403): a call authenticated by the web UI's session
	// cookie that changes something (not a GET) came without the session's
	// CSRF token in its X-CSRF-Token header.
	CodeForbidden = "forbidden"
	// CodeNotFound (404): no job with this id (never existed, or purged
	// after its retention), or no such route.
	CodeNotFound = "not_found"
	// CodeMethodNotAllowed (405): the route exists but not with this method.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeConflict (409): the job is not in a state that allows the call: a
	// stale or unknown lease, a job that is not in flight, cancel of a
	// finished job, retry of a job that is not failed, canceled or
	// scheduled, or a unique key held by another job. (A report of a job
	// that was canceled is CodeCanceled.)
	CodeConflict = "conflict"
	// CodePayloadTooLarge (413): a payload, the request body or a batch is
	// over its limit.
	CodePayloadTooLarge = "payload_too_large"
	// CodeUnsupportedMediaType (415): a request body with a Content-Type
	// other than application/json.
	CodeUnsupportedMediaType = "unsupported_media_type"
	// CodeQueueFull (429): the server holds its maximum of unfinished jobs;
	// retry later (see the Retry-After header).
	CodeQueueFull = "queue_full"
	// CodeInternal (500): a bug; the server logs it.
	CodeInternal = "internal"
	// CodeUnavailable (503): the server cannot serve now: it is still
	// recovering, or its log failed, or it is shutting down. The message
	// says which.
	CodeUnavailable = "unavailable"
	// CodeUnknownOutcome (503): in a cluster, the leader was lost while
	// the write was being committed: it may or may not have been applied.
	// Retrying an enqueue with the same unique_key is safe (no duplicate).
	CodeUnknownOutcome = "unknown_outcome"
	// CodeNotLeader (503): in a cluster, the node is not the leader and no
	// leader is known (an election is running) or the leader could not be
	// reached; retry shortly (see Retry-After).
	CodeNotLeader = "not_leader"
	// CodeInsufficientStorage (507): the disk is full; nothing was written.
	CodeInsufficientStorage = "insufficient_storage"
)

// Job states, as [Job.State] spells them.
const (
	StatePending   = "pending"   // runnable now
	StateScheduled = "scheduled" // waits for run_at (a delay or a retry backoff)
	StateInFlight  = "in_flight" // leased to a worker
	StateCompleted = "completed" // final: succeeded
	StateFailed    = "failed"    // final: the last attempt failed
	StateCanceled  = "canceled"  // final: canceled
	StateBlocked   = "blocked"   // waits for the jobs it depends on (depends_on)
)

// Error is the body of every error response:
//
//	{"error":{"code":"invalid_argument","message":"type is required"}}
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is an error code (one of the Code constants) and a message for
// humans.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EnqueueRequest is the body of POST /v1/jobs, and one element of
// [BatchRequest.Jobs]. Only Type is required.
type EnqueueRequest struct {
	// Queue defaults to the server's default queue ("default"). It must
	// match [a-zA-Z0-9_.-]{1,128}.
	Queue string `json:"queue,omitempty"`
	// Type names the handler that runs the job; [a-zA-Z0-9_.:/-]{1,128}.
	Type string `json:"type"`
	// Payload is any JSON value (default null), at most the server's
	// payload limit (1 MiB by default).
	Payload json.RawMessage `json:"payload,omitempty"`
	// Priority: higher runs first (default 0), a 32-bit integer.
	Priority int32 `json:"priority,omitempty"`
	// RunAt makes the job scheduled until then. At most one of RunAt and
	// Delay may be given.
	RunAt time.Time `json:"run_at,omitzero"`
	// Delay makes the job scheduled for this long, e.g. "5m" (at most
	// 100 years).
	Delay string `json:"delay,omitempty"`
	// MaxAttempts is the number of attempts before the job fails (default
	// 25, at most 65535).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Timeout bounds each attempt, e.g. "30s" (the default), between 1ms and
	// 168h.
	Timeout string `json:"timeout,omitempty"`
	// UniqueKey makes the enqueue idempotent: while a job with this key is
	// not finished, enqueueing the same key returns that job with
	// Duplicate set. At most 256 bytes.
	UniqueKey string `json:"unique_key,omitempty"`
	// DependsOn names existing jobs (ids) this job waits for: it stays
	// blocked until all of them completed (docs/dependencies.md).
	DependsOn []string `json:"depends_on,omitempty"`
	// DependsOnIndex names earlier jobs of the same batch by their index
	// in [BatchRequest.Jobs].
	DependsOnIndex []int `json:"depends_on_index,omitempty"`
	// OnDependencyFailure is "cancel" (the default: the job is canceled
	// when a dependency fails or is canceled) or "run" (it runs anyway).
	OnDependencyFailure string `json:"on_dependency_failure,omitempty"`
	// UniqueFor keeps UniqueKey reserved this long after the job finished,
	// e.g. "1h" (at most 8760h; default: only while it is unfinished): an
	// enqueue of the key within that window is a duplicate of the finished
	// job. See docs/queues.md.
	UniqueFor string `json:"unique_for,omitempty"`
}

// EnqueueResponse answers POST /v1/jobs (201 Created), once the job is
// durable.
type EnqueueResponse struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Duplicate is set when a job holding the same unique key already
	// existed (unfinished, or finished within its unique_for window): ID
	// and State are that job's, and nothing was added.
	Duplicate bool `json:"duplicate"`
}

// BatchRequest is the body of POST /v1/jobs/batch: all the jobs are added in
// one durable write, or none is (any invalid job rejects the batch with a
// message naming it, e.g. "jobs[3].type is required").
type BatchRequest struct {
	Jobs []EnqueueRequest `json:"jobs"`
}

// BatchResponse answers POST /v1/jobs/batch (201 Created): the ids of the
// jobs in request order, and per job whether it was a duplicate of an
// existing job with the same unique key.
type BatchResponse struct {
	IDs        []string `json:"ids"`
	Duplicates []bool   `json:"duplicates"`
}

// ContentTypeNDJSON is the media type of the body and the answer of
// POST /v1/jobs/stream: JSON Lines, one JSON value per line.
const ContentTypeNDJSON = "application/x-ndjson"

// StreamAnswer is one line of the answer of POST /v1/jobs/stream. The
// server writes one answer per non-blank line of the request body, in the
// order of the lines: the job's id once it is durable (ID, State and
// Duplicate, the fields of [EnqueueResponse]), or Error, with the code
// that POST /v1/jobs would have answered and the line's number.
//
// An Error without a Line ends the stream: every line before it was
// answered, and no line after it was read, so none of them was written
// (the code says why: request_timeout when no line came for the idle
// bound, or the failure of the log, e.g. insufficient_storage).
type StreamAnswer struct {
	ID        string       `json:"id,omitempty"`
	State     string       `json:"state,omitempty"`
	Duplicate bool         `json:"duplicate,omitempty"`
	Error     *StreamError `json:"error,omitempty"`
}

// StreamError is the error of a [StreamAnswer]: an [ErrorBody] and the
// number of the request line it answers (1 for the first line of the body;
// blank lines count). Line is 0 in the answer that ends a stream.
type StreamError struct {
	ErrorBody
	Line int `json:"line,omitempty"`
}

// Job is a job as the server shows it (GET /v1/jobs/{id}, lists, leases and
// the answers of cancel, retry, complete, fail and heartbeat). Times that
// are unset are omitted.
type Job struct {
	ID          string          `json:"id"`
	Queue       string          `json:"queue"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int32           `json:"priority"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"` // attempts started so far; the first lease makes it 1
	MaxAttempts int             `json:"max_attempts"`
	Timeout     string          `json:"timeout"` // per attempt, a Go duration string
	UniqueKey   string          `json:"unique_key,omitempty"`
	UniqueFor   string          `json:"unique_for,omitempty"` // the key's window after the job finished
	// RunAt is when the job became, or becomes, runnable.
	RunAt     time.Time `json:"run_at,omitzero"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// StartedAt is the start of the current or the last attempt.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// LastError is the error of the last failed attempt.
	LastError string `json:"last_error,omitempty"`
	// Result is what the completing worker reported (any JSON value).
	Result json.RawMessage `json:"result,omitempty"`
	// LeaseID and LeaseDeadline are set while the job is in flight. A
	// worker quotes the lease id to complete, fail or heartbeat the job.
	LeaseID       string    `json:"lease_id,omitempty"`
	LeaseDeadline time.Time `json:"lease_deadline,omitzero"`
	// Worker is the worker that holds, or held last, the job.
	Worker string `json:"worker,omitempty"`
	// DependsOn lists the jobs this one depends on; WaitingFor those it
	// still waits for (while blocked); OnDependencyFailure is "run" when
	// it runs even if one fails.
	DependsOn           []string `json:"depends_on,omitempty"`
	WaitingFor          []string `json:"waiting_for,omitempty"`
	OnDependencyFailure string   `json:"on_dependency_failure,omitempty"`
}

// ListResponse answers GET /v1/jobs?queue=&state=&type=&limit=&cursor=:
// jobs in id order. NextCursor is empty on the last page; otherwise pass it
// as cursor to get the next one.
type ListResponse struct {
	Jobs       []Job  `json:"jobs"`
	NextCursor string `json:"next_cursor"`
}

// BulkRequest is the body of POST /v1/jobs/bulk: cancel or retry every job
// that matches the filters, up to Limit jobs. State is required; Queue and
// Type narrow the match when given.
type BulkRequest struct {
	Action string `json:"action"` // "cancel" or "retry"
	Queue  string `json:"queue,omitempty"`
	State  string `json:"state"`
	Type   string `json:"type,omitempty"`
	// Limit is the most jobs to act on (default 10000, at most 100000).
	Limit int `json:"limit,omitempty"`
}

// BulkResponse answers POST /v1/jobs/bulk: how many jobs matched, how many
// the action changed (each change is one durable write, like the single
// call), and how many were refused (a job that changed state meanwhile,
// or a retry whose unique key is held by another job).
type BulkResponse struct {
	Matched int `json:"matched"`
	Changed int `json:"changed"`
	Errors  int `json:"errors"`
	// FirstError is the refusal of the first job that was refused.
	FirstError *ErrorBody `json:"first_error,omitempty"`
	// More is set when the call stopped at Limit and more jobs match.
	More bool `json:"more"`
}

// LeaseRequest is the body of POST /v1/lease: take up to Max runnable jobs
// for this worker, waiting up to Wait for one to become runnable.
type LeaseRequest struct {
	// Queues to take jobs from. When neither Queues nor Types is given,
	// ["default"].
	Queues []string `json:"queues,omitempty"`
	// Types, when given, restricts the lease to jobs of these types (of
	// any queue if Queues is empty).
	Types []string `json:"types,omitempty"`
	// Max is the most jobs to take (default 1, at most the server's
	// limit, 1000 by default).
	Max int `json:"max,omitempty"`
	// Wait is how long to long-poll when nothing is runnable (default "0s":
	// answer at once; the server caps it at its maximum, 60s by default).
	Wait string `json:"wait,omitempty"`
	// Lease is how long the worker holds each job before it is handed to
	// someone else unless heartbeated (default "30s", at most "168h").
	Lease string `json:"lease,omitempty"`
	// Worker names the worker (default: its network address).
	Worker string `json:"worker,omitempty"`
}

// LeaseResponse answers POST /v1/lease: the leased jobs, each with its
// lease_id; empty when the wait expired with nothing runnable.
type LeaseResponse struct {
	Jobs []Job `json:"jobs"`
}

// CompleteRequest is the body of POST /v1/jobs/{id}/complete. The answer
// is the job after the completion.
type CompleteRequest struct {
	LeaseID string `json:"lease_id"`
	// Result is any JSON value, kept with the job.
	Result json.RawMessage `json:"result,omitempty"`
}

// FailRequest is the body of POST /v1/jobs/{id}/fail. The job is retried
// (state scheduled) while it has attempts left, else it is failed. The
// answer is the job after the failure.
type FailRequest struct {
	LeaseID string `json:"lease_id"`
	Error   string `json:"error"`
	// RetryIn is the delay before the next attempt, e.g. "10s". Default:
	// the server's exponential backoff with jitter.
	RetryIn string `json:"retry_in,omitempty"`
	// Final fails the job now, whatever attempts are left (an error that a
	// retry cannot fix).
	Final bool `json:"final,omitempty"`
}

// HeartbeatRequest is the body of POST /v1/jobs/{id}/heartbeat: the lease
// now ends Extend from now (default "30s", at most "168h"). The answer is
// the job with its new lease_deadline.
type HeartbeatRequest struct {
	LeaseID string `json:"lease_id"`
	Extend  string `json:"extend,omitempty"`
}

// AckRequest is the body of POST /v1/ack: many completions and failures in
// one durable write.
type AckRequest struct {
	Acks []AckItem `json:"acks"`
}

// AckItem completes (no Error) or fails (Error set, even to "") one leased
// job.
type AckItem struct {
	ID      string `json:"id"`
	LeaseID string `json:"lease_id"`
	// Result completes the job with this JSON value.
	Result json.RawMessage `json:"result,omitempty"`
	// Error fails the attempt with this message. Result and Error are
	// exclusive.
	Error *string `json:"error,omitempty"`
	// RetryIn and Final are as in [FailRequest]; only with Error.
	RetryIn string `json:"retry_in,omitempty"`
	Final   bool   `json:"final,omitempty"`
}

// AckResponse answers POST /v1/ack (200 when the request was valid, even if
// some acks were rejected): one result per ack, in request order.
type AckResponse struct {
	Results []AckResult `json:"results"`
}

// AckResult is the outcome of one [AckItem]: OK, or the Error the single
// call would have answered (not_found or conflict).
type AckResult struct {
	ID    string     `json:"id"`
	OK    bool       `json:"ok"`
	Error *ErrorBody `json:"error,omitempty"`
}

// StateCounts counts jobs by state.
type StateCounts struct {
	Pending   int `json:"pending"`
	Scheduled int `json:"scheduled"`
	InFlight  int `json:"in_flight"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
	Blocked   int `json:"blocked"`
}

// Status answers GET /v1/status.
type Status struct {
	// Role is "single" for a single-node server; "leader", "follower" or
	// "candidate" in a cluster.
	Role    string `json:"role"`
	Version string `json:"version"`
	// Uptime is how long this HTTP server has been up, a duration string.
	Uptime string `json:"uptime"`
	// AppliedLSN is the log position of the last applied command.
	AppliedLSN uint64 `json:"applied_lsn"`
	// Failed is set once the log failed: writes are refused until restart.
	Failed string `json:"failed,omitempty"`
	// DiskFull is true while the disk is full: enqueues answer 507,
	// completions keep working.
	DiskFull bool `json:"disk_full"`
	// Jobs counts all jobs held, by state; Queues counts them per queue
	// (queues with no jobs are omitted).
	Jobs     StateCounts            `json:"jobs"`
	Queues   map[string]StateCounts `json:"queues"`
	WAL      WALStatus              `json:"wal"`
	Snapshot SnapshotStatus         `json:"snapshot"`
	Recovery RecoveryStatus         `json:"recovery"`
	// Cluster is set in cluster mode.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// PausedQueues lists the paused queues (GET /v1/queues has their
	// settings).
	PausedQueues []string `json:"paused_queues,omitempty"`
}

// ClusterStatus describes a cluster node and what it knows of the others
// (GET /v1/status, GET /v1/cluster).
type ClusterStatus struct {
	NodeID     string `json:"node_id"`
	Role       string `json:"role"`
	LeaderID   string `json:"leader_id"` // "" while no leader is known
	LeaderAddr string `json:"leader_addr"`
	Term       uint64 `json:"term"`
	// CommitIndex is the last raft index this node knows committed;
	// AppliedIndex the last it applied; Lag their difference.
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	Lag          uint64 `json:"lag"`
	// LastContact is how long ago a follower last heard from the leader,
	// a duration string ("0s" on the leader).
	LastContact   string          `json:"last_contact"`
	LeaderChanges uint64          `json:"leader_changes"`
	Servers       []ClusterServer `json:"servers"`
}

// ClusterServer is a member of the cluster configuration.
type ClusterServer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

// ClusterJoinRequest is the body of POST /v1/cluster/join.
type ClusterJoinRequest struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
}

// ClusterRemoveRequest is the body of POST /v1/cluster/remove.
type ClusterRemoveRequest struct {
	NodeID string `json:"node_id"`
}

// WALStatus describes the write-ahead log.
type WALStatus struct {
	FirstLSN uint64 `json:"first_lsn"`
	LastLSN  uint64 `json:"last_lsn"`
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
}

// SnapshotStatus describes snapshots.
type SnapshotStatus struct {
	Count        int       `json:"count"`
	LastLSN      uint64    `json:"last_lsn"`
	LastSize     int64     `json:"last_size"`
	LastDuration string    `json:"last_duration"`
	LastTime     time.Time `json:"last_time,omitzero"`
	Taken        uint64    `json:"taken"` // since start
	Failures     uint64    `json:"failures"`
	LastError    string    `json:"last_error,omitempty"`
}

// RecoveryStatus describes what the last start did to recover the state.
type RecoveryStatus struct {
	Duration        string `json:"duration"`
	SnapshotLSN     uint64 `json:"snapshot_lsn"` // 0 when no snapshot was loaded
	SnapshotJobs    int    `json:"snapshot_jobs"`
	RecordsReplayed uint64 `json:"records_replayed"`
	// TornBytes were cut from the end of TornFile: a write that a crash
	// interrupted before it was acknowledged.
	TornBytes        int64    `json:"torn_bytes"`
	TornFile         string   `json:"torn_file,omitempty"`
	SkippedSnapshots []string `json:"skipped_snapshots,omitempty"`
	// Requeued in-flight jobs were returned to their queue: their workers
	// died with the process.
	Requeued int `json:"requeued"`
}

// Stats answers GET /v1/stats: live figures for dashboards. The series are
// rates sampled by the server once every Interval over the last Window,
// oldest first (shorter after a start: the last value is the latest
// sample); the queues are computed when asked.
type Stats struct {
	Time     time.Time `json:"time"`     // when the answer was made
	Interval string    `json:"interval"` // between two samples, "1s"
	Window   string    `json:"window"`   // what the series cover at most, "15m0s"
	// SampledAt is the time of the latest sample (omitted before the first).
	SampledAt time.Time   `json:"sampled_at,omitzero"`
	Series    StatsSeries `json:"series"`
	WAL       WALRates    `json:"wal"`
	// ReadyAt is when the last recovery finished and the server began to
	// serve; JobsRecovered the jobs it held then.
	ReadyAt       time.Time    `json:"ready_at,omitzero"`
	JobsRecovered int          `json:"jobs_recovered"`
	Queues        []QueueStats `json:"queues"`
}

// StatsSeries are per-second rates, one value per sample, oldest first.
type StatsSeries struct {
	Enqueued  []float64 `json:"enqueued"`  // jobs enqueued per second
	Completed []float64 `json:"completed"` // attempts that completed per second
	Failed    []float64 `json:"failed"`    // attempts that failed per second (retried or not)
	Fsyncs    []float64 `json:"fsyncs"`    // WAL fsyncs per second
}

// WALRates are the write-ahead log's rates over the last Over.
type WALRates struct {
	Over            string  `json:"over"` // the span they are averaged over, "10s"
	FsyncsPerSecond float64 `json:"fsyncs_per_second"`
	RecordsPerFsync float64 `json:"records_per_fsync"` // group commit: records made durable by one fsync (0 without fsyncs)
	BytesPerSecond  float64 `json:"bytes_per_second"`
}

// QueueStats describes the backlog of one queue.
type QueueStats struct {
	Queue   string `json:"queue"`
	Depth   int    `json:"depth"` // unfinished jobs: pending + scheduled + in flight
	Pending int    `json:"pending"`
	// OldestPendingSince is the run_at of the pending job that has waited
	// longest (since when it is runnable); OldestPendingAge is how long ago
	// that was, a duration string. Both are omitted when nothing is
	// pending.
	OldestPendingSince time.Time `json:"oldest_pending_since,omitzero"`
	OldestPendingAge   string    `json:"oldest_pending_age,omitempty"`
}

// Health is the body of GET /healthz and GET /readyz.
type Health struct {
	Status string `json:"status"` // "ok", "ready", or why not ready
}
