// Package httpapi serves Beaver-Raft's HTTP API (v1): it decodes and
// validates requests, proposes commands to the replica, and encodes the
// answers. It holds no business rules: the state machine decides every
// transition, and a rejected command (a stale lease, a finished job) is
// mapped to its status code here. docs/api.md is the user-facing reference.
//
// # Routes
//
//	POST /v1/jobs                   enqueue one job            201
//	POST /v1/jobs/batch             enqueue many, all or none  201
//	POST /v1/jobs/stream            JSON Lines in, one durable answer per line out  200
//	GET  /v1/jobs                   list (queue, state, type, order, limit, cursor)
//	POST /v1/jobs/bulk              cancel or retry the jobs that match a filter
//	GET  /v1/jobs/{id}              one job
//	POST /v1/jobs/{id}/cancel       → the job
//	POST /v1/jobs/{id}/retry        → the job
//	POST /v1/jobs/{id}/complete     → the job after the completion
//	POST /v1/jobs/{id}/fail         → the job after the failure
//	POST /v1/jobs/{id}/heartbeat    → the job with its new lease deadline
//	POST /v1/lease                  long-polls for runnable jobs
//	POST /v1/ack                    many completions and failures, one write
//	GET  /v1/periodic               every schedule of periodic jobs
//	GET  /v1/periodic/{name}        one schedule, with its next run
//	PUT  /v1/periodic/{name}        create or replace a schedule
//	DELETE /v1/periodic/{name}      delete a schedule
//	GET  /v1/queues                 queues: counts, settings, what holds them back
//	GET  /v1/queues/{name}          one queue
//	PUT  /v1/queues/{name}          replace its settings (paused, concurrency, rate)
//	PATCH /v1/queues/{name}         change the settings given
//	POST /v1/queues/{name}/pause    → the queue
//	POST /v1/queues/{name}/resume   → the queue
//	GET  /v1/status                 counts, WAL, snapshots, recovery
//	GET  /v1/stats                  live figures: sampled rates, queue backlogs
//	GET  /healthz                   200 while the process serves
//	GET  /readyz                    200 once SetReplica was called (recovery done)
//	     /ui/                       the web dashboard, if Options.UI is set
//	GET  /                          redirects to /ui/, if Options.UI is set
//
// Writes answer only after Propose returned, that is once the command is
// durable. Every error is {"error":{"code","message"}} (see package api).
//
// # Long polls and shutdown
//
// A lease call with a wait parks its request goroutine until a job may be
// runnable (the replica's Changed channel, or the time the next scheduled
// job becomes due), the wait expires, or the request context ends. It
// starts no goroutine. http.Server.Shutdown waits for such requests, so a
// server that wants to stop promptly cancels the context it gives the
// http.Server as BaseContext: parked lease calls then answer
// {"jobs":[]} at once.
package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/authtoken"
	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Defaults of Options.
const (
	DefaultMaxPayload    = 1 << 20  // bytes of one payload (or result)
	DefaultMaxRequest    = 64 << 20 // bytes of one request body
	DefaultMaxBatch      = 10_000   // jobs of one batch, acks of one ack call
	DefaultMaxQueueDepth = 10_000_000
	DefaultMaxLease      = 1000
	DefaultMaxWait       = 60 * time.Second
	// DefaultReadTimeout bounds the time a client takes to send a request
	// body (see Options.ReadTimeout).
	DefaultReadTimeout = 30 * time.Second
	// DefaultLease is how long a lease lasts when the lease call does not
	// say, and how far a heartbeat without "extend" pushes the deadline.
	DefaultLease = 30 * time.Second
	// DefaultListLimit and MaxListLimit bound GET /v1/jobs pages.
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// DefaultMaxStreamInFlight bounds the lines of one enqueue stream read
	// but not yet answered (see Options.MaxStreamInFlight).
	DefaultMaxStreamInFlight = 8192
	// DefaultStreamIdle is how long an enqueue stream waits for its next
	// line (see Options.StreamIdle).
	DefaultStreamIdle = 60 * time.Second
	// MaxWorkerName bounds the worker name of a lease call.
	MaxWorkerName = 256
	// MaxLeaseNames bounds "queues" and "types" of a lease call (each).
	MaxLeaseNames = 256
	// MaxLeaseFor bounds "lease" of a lease call and "extend" of a
	// heartbeat, like the longest job timeout.
	MaxLeaseFor = fsm.MaxTimeout
	// MaxDelay bounds "delay" of an enqueue and "retry_in" of a failure.
	MaxDelay = jobspec.MaxDelay
)

// Options configure an API. Zero values take the defaults above.
type Options struct {
	// Replica serves the calls. It may be nil at construction: until
	// SetReplica is called, /v1 answers 503 "recovering" and /readyz 503.
	Replica replica.Replica
	// Clock stamps every proposed command (Command.Now) and computes
	// run_at of delays and retries. Default time.Now. Waiting (long polls)
	// always uses real timers.
	Clock func() time.Time
	// Logger receives one record per 5xx answer. Default: discard.
	Logger *slog.Logger
	// Tokens are the accepted bearer tokens. When non-empty, every /v1 call
	// needs "Authorization: Bearer <token>" (401 otherwise), or a session
	// of Sessions. Empty strings in the list never match.
	Tokens []string
	// Sessions, if set, authenticates the /v1 calls that carry no
	// Authorization header by the web UI's session cookie, when Tokens are
	// configured. Such a call that is not a GET or HEAD must also carry the
	// session's CSRF token: 403 otherwise.
	Sessions SessionAuth
	// MaxPayload bounds one job payload, and one completion result, in
	// bytes (413).
	MaxPayload int64
	// MaxRequest bounds a request body in bytes (413).
	MaxRequest int64
	// MaxBatch bounds the jobs of one batch and the acks of one ack call
	// (413).
	MaxBatch int
	// MaxQueueDepth bounds the unfinished (pending, scheduled, in-flight)
	// jobs: an enqueue that would go beyond answers 429 queue_full. The
	// check reads the count before proposing, so concurrent enqueues may
	// overshoot it by their number. Negative: no limit.
	MaxQueueDepth int
	// MaxLease bounds "max" of a lease call (400 beyond).
	MaxLease int
	// MaxWait caps "wait" of a lease call (a longer wait is cut to it).
	MaxWait time.Duration
	// ReadTimeout bounds the time from the start of a request's handling
	// (its headers are read) to the end of its body: a client that trickles
	// its body (slow loris) gets 408 and its connection is closed. It is a
	// read deadline on the connection, lifted once the body is read, so
	// that it does not cut a long poll, which waits after reading. The
	// headers themselves are bounded by http.Server.ReadHeaderTimeout.
	ReadTimeout time.Duration
	// MaxStreamInFlight bounds the lines of one enqueue stream
	// (POST /v1/jobs/stream) that were read but not yet answered: once it
	// is reached the server reads no more of that stream until answers
	// went out, so a producer that does not read its answers is held back
	// instead of growing the server's memory.
	MaxStreamInFlight int
	// StreamIdle bounds the wait for the next line of an enqueue stream,
	// and the time one write of its answers may take: a stream that sends
	// no line for this long ends with an error answer (request_timeout).
	// It replaces ReadTimeout, which bounds whole bodies, for streams.
	StreamIdle time.Duration
	// DefaultQueue, DefaultMaxAttempts and DefaultTimeout fill enqueued jobs
	// that do not set them. Defaults: "default", 25, 30s.
	DefaultQueue       string
	DefaultMaxAttempts int
	DefaultTimeout     time.Duration
	// Retry computes the delay before the next attempt of a failure that
	// does not give retry_in.
	Retry backoff.Policy
	// Version is reported by /v1/status.
	Version string
	// UI, if set, is the web dashboard (package ui), served at /ui/; GET /
	// then redirects there. It authenticates its own pages.
	UI http.Handler
	// Stats, if set, gives the sampled part of GET /v1/stats (series, WAL
	// rates, recovery); the API adds the queues. It is called once per
	// request and must be safe for concurrent use. Without it the series
	// are empty.
	Stats func() api.Stats
	// Instrument, if set, wraps the handler of every route (metrics).
	// route is the ServeMux pattern, e.g. "POST /v1/jobs/{id}/complete".
	Instrument func(route string, h http.Handler) http.Handler
}

// SessionAuth checks the session of a request: package ui implements it for
// the web UI's cookies.
type SessionAuth interface {
	// Session reports whether r carries the cookie of a live session (ok),
	// and whether r also carries that session's CSRF token (csrf). It is
	// called from request goroutines, concurrently.
	Session(r *http.Request) (ok, csrf bool)
}

// API is the HTTP API. Create it with New; it is safe for concurrent use.
type API struct {
	o       Options
	log     *slog.Logger
	clock   func() time.Time
	started time.Time
	tokens  authtoken.Set
	auth    bool
	jobs    jobspec.Builder
	rep     atomic.Pointer[replicaRef]
}

type replicaRef struct{ r replica.Replica }

// New returns an API configured by o.
func New(o Options) *API {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxRequest <= 0 {
		o.MaxRequest = DefaultMaxRequest
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxQueueDepth == 0 {
		o.MaxQueueDepth = DefaultMaxQueueDepth
	}
	if o.MaxLease <= 0 {
		o.MaxLease = DefaultMaxLease
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.MaxStreamInFlight <= 0 {
		o.MaxStreamInFlight = DefaultMaxStreamInFlight
	}
	if o.StreamIdle <= 0 {
		o.StreamIdle = DefaultStreamIdle
	}
	if o.DefaultQueue == "" {
		o.DefaultQueue = fsm.DefaultQueue
	}
	if o.DefaultMaxAttempts <= 0 {
		o.DefaultMaxAttempts = fsm.DefaultMaxAttempt
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = fsm.DefaultTimeout
	}
	a := &API{o: o, log: o.Logger, clock: o.Clock, started: time.Now(), auth: len(o.Tokens) > 0,
		jobs: jobspec.Builder{
			DefaultQueue:       o.DefaultQueue,
			DefaultMaxAttempts: o.DefaultMaxAttempts,
			DefaultTimeout:     o.DefaultTimeout,
			MaxPayload:         o.MaxPayload,
			MaxQueueDepth:      o.MaxQueueDepth,
		}}
	a.tokens = authtoken.New(o.Tokens)
	if o.Replica != nil {
		a.SetReplica(o.Replica)
	}
	return a
}

// SetReplica makes the API serve from r: call it once recovery is done.
// Before, /v1 calls answer 503 {"code":"unavailable","message":"recovering"}
// and /readyz answers 503.
func (a *API) SetReplica(r replica.Replica) {
	if r == nil {
		a.rep.Store(nil)
		return
	}
	a.rep.Store(&replicaRef{r})
}

func (a *API) replica() replica.Replica {
	if ref := a.rep.Load(); ref != nil {
		return ref.r
	}
	return nil
}

// handlerFunc serves one /v1 route with the replica the request saw when it
// arrived. A returned error is written as an error response: an *httpError
// as it is, anything else as a 500.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rep replica.Replica) error

// Handler returns the handler of every route (see the package
// documentation). Unknown paths answer 404 and known paths with another
// method 405, both as JSON errors.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	v1 := func(pattern string, h handlerFunc) {
		a.handle(mux, pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serveV1(w, r, h) }))
	}
	v1("POST /v1/jobs", a.enqueue)
	v1("POST /v1/jobs/batch", a.enqueueBatch)
	v1("POST /v1/jobs/stream", a.enqueueStream)
	v1("GET /v1/jobs", a.list)
	v1("POST /v1/jobs/bulk", a.bulk)
	v1("GET /v1/jobs/{id}", a.get)
	v1("POST /v1/jobs/{id}/cancel", a.cancel)
	v1("POST /v1/jobs/{id}/retry", a.retry)
	v1("POST /v1/jobs/{id}/complete", a.complete)
	v1("POST /v1/jobs/{id}/fail", a.fail)
	v1("POST /v1/jobs/{id}/heartbeat", a.heartbeat)
	v1("POST /v1/lease", a.lease)
	v1("POST /v1/ack", a.ack)
	v1("GET /v1/queues", a.queues)
	v1("GET /v1/queues/{name}", a.queue)
	v1("PUT /v1/queues/{name}", a.putQueue)
	v1("PATCH /v1/queues/{name}", a.patchQueue)
	v1("POST /v1/queues/{name}/pause", a.pauseQueue)
	v1("POST /v1/queues/{name}/resume", a.resumeQueue)
	v1("GET /v1/status", a.status)
	v1("GET /v1/stats", a.stats)
	v1("GET /v1/periodic", a.periodicList)
	v1("GET /v1/periodic/{name}", a.periodicGet)
	v1("PUT /v1/periodic/{name}", a.periodicPut)
	v1("DELETE /v1/periodic/{name}", a.periodicDelete)
	v1("GET /v1/cluster", a.cluster)
	v1("POST /v1/cluster/join", a.clusterJoin)
	v1("POST /v1/cluster/remove", a.clusterRemove)
	if a.o.UI != nil {
		a.handle(mux, "/ui/", a.o.UI)
		a.handle(mux, "GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	a.handle(mux, "GET /healthz", http.HandlerFunc(a.healthz))
	a.handle(mux, "GET /readyz", http.HandlerFunc(a.readyz))
	return &router{a: a, mux: mux}
}

func (a *API) handle(mux *http.ServeMux, pattern string, h http.Handler) {
	if a.o.Instrument != nil {
		h = a.o.Instrument(pattern, h)
	}
	mux.Handle(pattern, h)
}

// serveV1 authenticates, checks readiness, and runs h.
func (a *API) serveV1(w http.ResponseWriter, r *http.Request, h handlerFunc) {
	if err := a.authenticate(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	rep := a.replica()
	if rep == nil {
		a.writeError(w, r, &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: "recovering", retryAfter: 1, quiet: true})
		return
	}
	// Reads are linearizable unless the caller asks for this node's own,
	// possibly stale, state (?stale=true): a follower first learns the
	// leader's commit index and applies up to it.
	if r.Method == http.MethodGet && r.URL.Query().Get("stale") != "true" {
		if err := replica.ReadBarrier(r.Context(), rep); err != nil {
			a.writeError(w, r, systemError(0, err))
			return
		}
	}
	if err := h(w, r, rep); err != nil {
		a.writeError(w, r, err)
	}
}

// authenticate checks the bearer token of a /v1 request, or else its
// session cookie (and CSRF token) if Options.Sessions is set.
func (a *API) authenticate(r *http.Request) error {
	if !a.auth {
		return nil
	}
	if a.o.Sessions != nil && r.Header.Get("Authorization") == "" {
		if ok, csrf := a.o.Sessions.Session(r); ok {
			if !csrf && r.Method != http.MethodGet && r.Method != http.MethodHead {
				return &httpError{status: http.StatusForbidden, code: api.CodeForbidden,
					msg: "missing or wrong X-CSRF-Token header: a call authenticated by a session cookie must carry its session's CSRF token"}
			}
			return nil
		}
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized,
			msg: "missing bearer token: send Authorization: Bearer <token>", authenticate: `Bearer realm="beaver-raft"`}
	}
	if !a.ValidToken(strings.TrimSpace(token)) {
		return &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized,
			msg: "invalid bearer token", authenticate: `Bearer realm="beaver-raft", error="invalid_token"`}
	}
	return nil
}

// ValidToken reports whether token is one of Options.Tokens, comparing in
// constant time. The web UI's login checks tokens with it.
func (a *API) ValidToken(token string) bool { return a.tokens.Valid(token) }

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	rep := a.replica()
	if rep == nil {
		a.writeError(w, r, &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: "recovering", retryAfter: 1, quiet: true})
		return
	}
	if err := rep.Status().Failed; err != nil {
		a.writeError(w, r, &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable, msg: "the log failed: " + err.Error(), err: err})
		return
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ready"})
}

// router answers the requests that no route matches with JSON errors (404,
// or 405 with an Allow header), and passes the others to the mux.
type router struct {
	a   *API
	mux *http.ServeMux
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body must arrive within ReadTimeout; readBody lifts the deadline
	// once it has the body. A handler that reads no body leaves it, which
	// bounds the server's discarding of that body after the answer.
	// (Recorders and HTTP/2 may not support it: ErrNotSupported.)
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(rt.a.o.ReadTimeout))
	h, pattern := rt.mux.Handler(r)
	if pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		if err := rt.a.authenticate(r); err != nil {
			rt.a.writeError(w, r, err)
			return
		}
	}
	// Let the mux decide between 404 and 405 (and which methods to allow),
	// then answer in JSON.
	c := &captureWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	switch c.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", c.header.Get("Allow"))
		rt.a.writeError(w, r, &httpError{status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed,
			msg: "method " + r.Method + " is not allowed on " + r.URL.Path + " (allowed: " + c.header.Get("Allow") + ")"})
	case http.StatusNotFound:
		rt.a.writeError(w, r, &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "no such route: " + r.Method + " " + r.URL.Path})
	default:
		for k, v := range c.header {
			w.Header()[k] = v
		}
		w.WriteHeader(c.status)
		w.Write(c.body)
	}
}

// captureWriter records what the mux's own handlers (not found, method not
// allowed, redirects) write.
type captureWriter struct {
	header http.Header
	status int
	body   []byte
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	c.body = append(c.body, b...)
	return len(b), nil
}
