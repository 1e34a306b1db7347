// Package jobspec turns a request to enqueue a job into an fsm.JobSpec: the
// configured defaults, delay and run_at, and every limit, in one place.
// Every way in goes through it: the HTTP API (single, batch and stream
// enqueues), the embedding Go API (package beaver) and the CLI's file
// check. The edges only translate their own wire form into an Input.
package jobspec

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Limits that are not configuration.
const (
	// MaxDelay bounds a delay (and a failure's retry_in).
	MaxDelay = 100 * 365 * 24 * time.Hour
	// MinYear and MaxYear bound run_at: Unix nanoseconds hold 1678..2262.
	MinYear, MaxYear = 1970, 2261
)

// Defaults of Builder.
const (
	DefaultMaxPayload    = 1 << 20
	DefaultMaxQueueDepth = 10_000_000
)

// Input is one job as a caller asked for it. Zero fields take the
// Builder's defaults.
type Input struct {
	Queue       string
	Type        string
	Payload     []byte // raw JSON; empty means null
	Priority    int32
	RunAt       time.Time     // not before this time (zero: none)
	Delay       time.Duration // or not before now + Delay
	MaxAttempts int
	Timeout     time.Duration // per attempt
	UniqueKey   string
	Deps        *fsm.Deps     // jobs it waits for (checked by fsm.ValidateSpec)
	UniqueFor   time.Duration // UniqueKey stays reserved this long after the job finished
}

// Kinds of Error.
const (
	Invalid   = iota + 1 // a field is not acceptable (HTTP 400)
	TooLarge             // the payload is over MaxPayload (413)
	QueueFull            // the server holds MaxQueueDepth unfinished jobs (429)
)

// Error is a job refused before it was proposed. Field names the field of
// the job ("payload", "run_at"), without the caller's prefix ("jobs[3]").
type Error struct {
	Kind  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	switch {
	case e.Field == "":
		return e.Msg
	case strings.HasPrefix(e.Msg, ":"):
		return e.Field + e.Msg
	}
	return e.Field + " " + e.Msg
}

// ErrInvalid is matched (errors.Is) by every *Error.
var ErrInvalid = errors.New("jobspec: job refused")

func (e *Error) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Builder applies defaults and limits. The zero value uses the fsm's
// defaults and DefaultMaxPayload.
type Builder struct {
	DefaultQueue       string
	DefaultMaxAttempts int
	DefaultTimeout     time.Duration
	MaxPayload         int64 // bytes of one payload
	// MaxQueueDepth bounds the unfinished jobs (Admit); 0 takes
	// DefaultMaxQueueDepth, negative: no limit.
	MaxQueueDepth int
}

// Build checks in and fills in the defaults. now is the proposer's clock
// (the command's Now), from which a delay counts; index names the job in
// its batch for the state machine's own errors.
func (b *Builder) Build(in *Input, now time.Time, index int) (fsm.JobSpec, error) {
	s := fsm.JobSpec{
		Queue:       in.Queue,
		Type:        in.Type,
		Payload:     "null",
		Priority:    in.Priority,
		MaxAttempts: in.MaxAttempts,
		UniqueKey:   in.UniqueKey,
		Deps:        in.Deps,
		UniqueFor:   int64(in.UniqueFor),
	}
	if s.Queue == "" {
		s.Queue = b.DefaultQueue
		if s.Queue == "" {
			s.Queue = fsm.DefaultQueue
		}
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = b.DefaultMaxAttempts
		if s.MaxAttempts == 0 {
			s.MaxAttempts = fsm.DefaultMaxAttempt
		}
	}
	maxPayload := b.MaxPayload
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if n := int64(len(in.Payload)); n > maxPayload {
		return s, &Error{Kind: TooLarge, Field: "payload", Msg: fmt.Sprintf("is %d bytes, more than the limit of %d bytes", n, maxPayload)}
	} else if n > 0 {
		s.Payload = string(in.Payload)
	}
	switch {
	case !in.RunAt.IsZero() && in.Delay != 0:
		return s, &Error{Kind: Invalid, Field: "", Msg: "run_at and delay are exclusive: give one of them"}
	case in.Delay < 0:
		return s, invalid("delay", "must not be negative")
	case in.Delay > MaxDelay:
		return s, invalid("delay", "must be at most %v", MaxDelay)
	case !in.RunAt.IsZero():
		if y := in.RunAt.Year(); y < MinYear || y > MaxYear {
			return s, invalid("run_at", "must be between the years %d and %d", MinYear, MaxYear)
		}
		s.RunAt = in.RunAt.UnixNano()
	case in.Delay > 0:
		s.RunAt = now.Add(in.Delay).UnixNano()
	}
	switch {
	case in.Timeout < 0:
		return s, invalid("timeout", "must not be negative")
	case in.Timeout == 0:
		s.Timeout = int64(b.DefaultTimeout)
		if s.Timeout == 0 {
			s.Timeout = int64(fsm.DefaultTimeout)
		}
	default:
		s.Timeout = int64(in.Timeout)
	}
	if err := fsm.ValidateSpec(index, &s); err != nil {
		var inv *fsm.InvalidError
		if errors.As(err, &inv) {
			return s, &Error{Kind: Invalid, Field: inv.Field, Msg: inv.Msg}
		}
		return s, err
	}
	return s, nil
}

// ParseDuration parses a Go duration string of field name ("delay",
// "timeout"); empty gives 0. A negative duration is refused here; upper
// bounds are Build's.
func ParseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &Error{Kind: Invalid, Field: name, Msg: ": " + err.Error()}
	}
	if d < 0 {
		return 0, invalid(name, "must not be negative")
	}
	return d, nil
}

// Admit refuses (QueueFull) adding n jobs when the replica already holds
// MaxQueueDepth unfinished jobs. It reads the count before proposing, so
// concurrent enqueues may overshoot the limit by their number.
func (b *Builder) Admit(rep replica.Replica, n int) error {
	limit := b.MaxQueueDepth
	if limit == 0 {
		limit = DefaultMaxQueueDepth
	}
	if limit < 0 {
		return nil
	}
	var depth int
	rep.Read(func(m *fsm.Machine) { depth = m.Unfinished() })
	if depth+n > limit {
		return &Error{Kind: QueueFull, Msg: fmt.Sprintf("queue full: the server holds %d unfinished jobs and its limit is %d; retry later", depth, limit)}
	}
	return nil
}
