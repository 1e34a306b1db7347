package fsm

import "errors"

// Rejections returned in Results. They are deterministic: every replica that
// applies the same command gets the same one.
var (
	// ErrNotFound: the command names a job id that does not exist (never
	// existed, or was purged).
	ErrNotFound = errors.New("fsm: job not found")
	// ErrLeaseMismatch: a complete, fail or heartbeat names a lease that is
	// not the job's current one (a late or duplicate report, or the lease
	// expired and the job was handed to someone else).
	ErrLeaseMismatch = errors.New("fsm: lease is not the job's current lease")
	// ErrNotInFlight: a complete, fail or heartbeat names a job that is not
	// running.
	ErrNotInFlight = errors.New("fsm: job is not in flight")
	// ErrCanceled: a complete, fail or heartbeat names a job that was
	// canceled (typically while it ran): the worker should stop it. It is
	// not ErrNotInFlight, so that workers can tell it apart.
	ErrCanceled = errors.New("fsm: job was canceled")
	// ErrFinal: cancel of a job that already reached a final state.
	ErrFinal = errors.New("fsm: job is already final")
	// ErrNotRetryable: retry of a job that is pending, in flight or
	// completed.
	ErrNotRetryable = errors.New("fsm: only failed, canceled or scheduled jobs can be retried")
	// ErrUniqueConflict: retry of a job whose unique key is now held by
	// another job (unfinished, or finished within its unique_for window).
	ErrUniqueConflict = errors.New("fsm: unique key is held by another unfinished job")
	// ErrInvalid: the command itself is malformed (see InvalidError).
	ErrInvalid = errors.New("fsm: invalid command")
	// ErrCorrupt: a snapshot or command encoding failed to decode.
	ErrCorrupt = errors.New("fsm: corrupt encoding")
)

// InvalidError names the field of a command that is not acceptable. It wraps
// ErrInvalid.
type InvalidError struct {
	Index int    // which job of an Enqueue (0 for single-job commands)
	Field string // e.g. "queue", "type", "max_attempts"
	Msg   string
}

func (e *InvalidError) Error() string {
	return "fsm: invalid " + e.Field + ": " + e.Msg
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }
