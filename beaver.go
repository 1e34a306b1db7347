// Package beaver embeds a Beaver-Raft job queue server in a Go program.
//
// Open a server on a data directory, register Go handlers for your job types,
// run it, and enqueue jobs from the same program or from anywhere over HTTP:
//
//	cfg := beaver.DefaultConfig()
//	cfg.DataDir = "./data"
//	srv, err := beaver.New(cfg)
//	...
//	srv.HandleFunc("email", func(ctx context.Context, job *beaver.Job) ([]byte, error) {
//		return nil, sendEmail(ctx, job.Payload)
//	})
//	go srv.Run(ctx)             // serves until ctx is canceled
//	<-srv.Ready()
//	id, err := srv.Enqueue(ctx, beaver.JobSpec{Type: "email", Payload: []byte(`{"to":"a@example.com"}`)})
//
// Every acknowledged Enqueue is on disk (fsynced) before it returns. Handlers
// run on the server's worker pool with the job's timeout; an error retries the
// job with exponential backoff, Permanent(err) fails it at once.
package beaver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

// Job is what a handler sees of a job.
type Job = handlers.Job

// Handler runs one attempt of a job; see HandlerFunc.
type Handler = handlers.Handler

// HandlerFunc adapts a function to Handler. A nil error completes the job
// with the returned result (JSON, or text stored as a JSON string).
type HandlerFunc = handlers.HandlerFunc

// Config is the server configuration (the same keys as the YAML file).
type Config = config.Config

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config { return config.Default() }

// Permanent marks an error as not worth retrying: the job fails at once.
func Permanent(err error) error { return handlers.Permanent(err) }

// Errors of Enqueue.
var (
	// ErrNotReady: Enqueue was called before the server recovered (wait on
	// Ready) or after it stopped.
	ErrNotReady = errors.New("beaver: server is not running")
	// ErrInvalid: the job spec is not valid; the error names the field.
	ErrInvalid = errors.New("beaver: invalid job")
	// ErrQueueFull: the server holds its limit of unfinished jobs
	// (limits.max_queue_depth); retry later.
	ErrQueueFull = errors.New("beaver: queue full")
)

// Server is an embedded Beaver-Raft server.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	handlers map[string]Handler
	srv      *server.Server
}

// Option configures New.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// New checks cfg and returns a server; nothing is opened until Run.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, handlers: map[string]Handler{}, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	srv, err := server.New(server.Options{Config: cfg, Logger: s.log, Handlers: s.handlers, Version: "embedded"})
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, nil
}

// Handle registers h for jobs of type typ. Call it before Run.
func (s *Server) Handle(typ string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[typ] = h
}

// HandleFunc registers f for jobs of type typ. Call it before Run.
func (s *Server) HandleFunc(typ string, f func(ctx context.Context, job *Job) ([]byte, error)) {
	s.Handle(typ, HandlerFunc(f))
}

// Run recovers the data directory, serves the HTTP API and runs jobs until
// ctx is canceled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error { return s.srv.Run(ctx) }

// Ready is closed once recovery has finished and the server serves.
func (s *Server) Ready() <-chan struct{} { return s.srv.Ready() }

// Addr is the HTTP API address, once Ready (useful with listen port 0).
func (s *Server) Addr() string { return s.srv.Addr().String() }

// JobSpec describes a job to enqueue. Zero fields take the configured
// defaults.
type JobSpec struct {
	Queue       string
	Type        string
	Payload     json.RawMessage // any JSON value; nil means null
	Priority    int32
	RunAt       time.Time     // not before this time
	Delay       time.Duration // or not before now + Delay
	MaxAttempts int
	Timeout     time.Duration // per attempt
	UniqueKey   string        // while a job with this key is unfinished, Enqueue returns it
	UniqueFor   time.Duration // and this long after it finished (docs/queues.md)
}

// Enqueue adds a job durably and returns its id; duplicate is true when an
// unfinished job with the same UniqueKey already existed (its id is
// returned).
func (s *Server) Enqueue(ctx context.Context, j JobSpec) (id string, duplicate bool, err error) {
	if len(j.Payload) > 0 && !json.Valid(j.Payload) {
		return "", false, fmt.Errorf("%w: payload is not valid JSON", ErrInvalid)
	}
	res, err := s.srv.Enqueue(ctx, []jobspec.Input{{
		Queue: j.Queue, Type: j.Type, Payload: j.Payload, Priority: j.Priority,
		RunAt: j.RunAt, Delay: j.Delay, MaxAttempts: j.MaxAttempts, Timeout: j.Timeout, UniqueKey: j.UniqueKey,
		UniqueFor: j.UniqueFor,
	}})
	switch {
	case errors.Is(err, server.ErrNotReady):
		return "", false, ErrNotReady
	case errors.Is(err, jobspec.ErrInvalid):
		var e *jobspec.Error
		errors.As(err, &e)
		if e.Kind == jobspec.QueueFull {
			return "", false, fmt.Errorf("%w: %v", ErrQueueFull, e)
		}
		return "", false, fmt.Errorf("%w: %v", ErrInvalid, e)
	case err != nil:
		return "", false, err
	}
	return strconv.FormatUint(res[0].ID, 10), res[0].Duplicate, nil
}

// JobState returns the state of job id ("pending", "completed", ...) and
// its result, or ok false if there is no such job.
func (s *Server) JobState(id string) (state string, result json.RawMessage, ok bool) {
	rep := s.srv.Replica()
	n, err := strconv.ParseUint(id, 10, 64)
	if rep == nil || err != nil {
		return "", nil, false
	}
	rep.Read(func(m *fsm.Machine) {
		var j fsm.Job
		if j, ok = m.Get(n); ok {
			state = j.State.String()
			if j.Result != "" {
				result = json.RawMessage(j.Result)
			}
		}
	})
	return state, result, ok
}
