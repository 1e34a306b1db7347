// Package handlers defines what runs a job (Handler) and the built-in
// handlers: noop, sleep, http and exec.
//
// The worker pool calls Handle once per attempt, from one of its goroutines,
// with a context that ends at the attempt's timeout or at shutdown. The pool
// owns retries: a nil error completes the job, an error fails the attempt
// (retried with backoff while attempts remain), and an error marked
// Permanent fails the job at once. Built-in handlers mark as permanent every
// error that a retry cannot fix, such as a malformed payload.
package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/permanent"
)

// Job is what a handler sees of a job.
type Job struct {
	ID, Queue, Type string
	Payload         []byte // raw JSON
	Attempt         int    // 1 for the first run
	MaxAttempts     int
}

// Handler runs one attempt of a job.
//
// Handle must return when ctx is done (the attempt's timeout or shutdown),
// leaving nothing running behind it. A nil error completes the job with
// result (raw bytes, may be nil); an error fails the attempt, and
// Permanent(err) fails the job without retrying. Handle may be called from
// many goroutines at once, and must not keep job or its payload after it
// returned.
type Handler interface {
	Handle(ctx context.Context, job *Job) (result []byte, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) ([]byte, error)

// Handle calls f(ctx, job).
func (f HandlerFunc) Handle(ctx context.Context, job *Job) ([]byte, error) { return f(ctx, job) }

// Permanent wraps err to mean "do not retry": the job fails at once. The
// error's text and errors.Is/As see through the wrapper. Permanent(nil) is
// nil.
func Permanent(err error) error { return permanent.New(err) }

// IsPermanent reports whether err, or an error it wraps, was made by
// Permanent (of this package or of any other Beaver-Raft package).
func IsPermanent(err error) bool { return permanent.Is(err) }

// Noop returns a handler that completes every job at once with no result.
func Noop() Handler {
	return HandlerFunc(func(context.Context, *Job) ([]byte, error) { return nil, nil })
}

// MaxSleep is the longest duration the sleep handler accepts.
const MaxSleep = 24 * time.Hour

// Sleep returns a handler that waits for the duration in the payload
// {"duration":"50ms"} (a Go duration, required, from 0 to MaxSleep), then
// completes with no result. If ctx ends first it returns ctx.Err(). A bad
// payload is a permanent error.
func Sleep() Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) ([]byte, error) {
		var p struct {
			Duration *string `json:"duration"`
		}
		if err := decodePayload(job, &p); err != nil {
			return nil, err
		}
		if p.Duration == nil {
			return nil, badPayload(job, errors.New(`"duration" is required`))
		}
		d, err := time.ParseDuration(*p.Duration)
		if err != nil || d < 0 || d > MaxSleep {
			return nil, badPayload(job, fmt.Errorf(`"duration" must be a Go duration from 0s to %s, got %q`, MaxSleep, *p.Duration))
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// decodePayload decodes the job's payload into v strictly: one JSON value,
// no unknown fields. Any problem is a permanent error.
func decodePayload(job *Job, v any) error {
	dec := json.NewDecoder(bytes.NewReader(job.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badPayload(job, err)
	}
	if dec.More() {
		return badPayload(job, errors.New("data after the JSON value"))
	}
	return nil
}

func badPayload(job *Job, err error) error {
	return Permanent(fmt.Errorf("%s: bad payload: %w", job.Type, err))
}
