package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// httpError is an error answer: a status, an api code and a message.
type httpError struct {
	status int
	code   string
	msg    string
	err    error // the cause, logged with 5xx answers

	retryAfter   int    // seconds, for a Retry-After header (0: none)
	authenticate string // WWW-Authenticate header of a 401
	quiet        bool   // a 5xx that is expected (recovering): not logged
}

func (e *httpError) Error() string { return e.msg }

// codeRequestTimeout (408): the request body did not arrive within
// Options.ReadTimeout. It belongs in package api beside the other codes.
const codeRequestTimeout = "request_timeout"

func invalidf(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidArgument, msg: fmt.Sprintf(format, args...)}
}

func tooLargef(format string, args ...any) *httpError {
	return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodePayloadTooLarge, msg: fmt.Sprintf(format, args...)}
}

// field joins a prefix ("jobs[3]") and a field name ("type").
func field(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

// invalidSpec maps a rejection by fsm.ValidateSpec (or by the machine) to
// a 400 naming the field: "jobs[3].type is required".
func invalidSpec(prefix string, e *fsm.InvalidError) *httpError {
	return invalidf("%s %s", field(prefix, e.Field), e.Msg)
}

// writeError writes err as a JSON error answer, and logs 5xx answers.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "internal error: " + err.Error(), err: err}
	}
	if he.status >= 500 && !he.quiet {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", he.status, "code", he.code, "err", errOr(he.err, he.msg))
	}
	h := w.Header()
	if he.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	if he.authenticate != "" {
		h.Set("WWW-Authenticate", he.authenticate)
	}
	writeJSON(w, he.status, api.Error{Error: api.ErrorBody{Code: he.code, Message: clip(he.msg)}})
}

// maxMessage bounds an error message: messages quote what the client sent
// (a Content-Type, an id, a duration), which may be megabytes.
const maxMessage = 1024

// clip cuts msg to maxMessage bytes, at a rune boundary.
func clip(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "... (cut)"
}

func errOr(err error, msg string) any {
	if err != nil {
		return err
	}
	return msg
}

// writeJSON writes v as the JSON body of a status answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own types always encode; this is a bug.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Error: api.ErrorBody{Code: api.CodeInternal, Message: "encode answer: " + err.Error()}})
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody writes the JSON answer b, newline included.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// Messages of the disk-full answers (507).
const (
	msgDiskFull = "disk full: enqueues are refused until space is freed; completions keep working"
	// The space held in reserve for everything but enqueues is used up too.
	msgReserveFull = "disk full: the space reserved for completions is used up too; nothing was written: free space on the data directory's disk"
)

// systemError maps an error of Propose (the log or the replica failed, not
// the command) to 507 when the disk is full and 503 otherwise. kind is the
// command that failed.
func systemError(kind fsm.Kind, err error) *httpError {
	switch {
	case errors.Is(err, replica.ErrFailed):
		return &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable,
			msg: "the write-ahead log failed and accepts no writes until the server is restarted: " + err.Error(), err: err}
	case errors.Is(err, replica.ErrDiskFull):
		// Expected while the disk is full (the log said so once): not logged
		// per request.
		msg := msgDiskFull
		if kind != fsm.KindEnqueue {
			msg = msgReserveFull
		}
		return &httpError{status: http.StatusInsufficientStorage, code: api.CodeInsufficientStorage, msg: msg, err: err, quiet: true}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable,
			msg: "request ended before the command entered the log: " + err.Error(), err: err, quiet: true}
	case errors.Is(err, replica.ErrUnknownOutcome):
		return &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnknownOutcome,
			msg: "the leader was lost before the write was known to commit: it may or may not have been applied; retrying an enqueue with the same unique_key is safe: " + err.Error(), err: err, retryAfter: 1}
	case errors.Is(err, replica.ErrNotLeader):
		return &httpError{status: http.StatusServiceUnavailable, code: api.CodeNotLeader,
			msg: "this node is not the leader and could not forward the call: " + err.Error(), err: err, retryAfter: 1, quiet: true}
	case errors.Is(err, replica.ErrTooLarge):
		// A batch under max_request whose command is still over the log's
		// record limit: the client's to split, nothing was written.
		return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodePayloadTooLarge,
			msg: "the request is too large for one log record; send smaller batches: " + err.Error()}
	case errors.Is(err, replica.ErrClosed):
		return &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable,
			msg: "the server is shutting down: " + err.Error(), err: err, retryAfter: 1}
	}
	return &httpError{status: http.StatusServiceUnavailable, code: api.CodeUnavailable,
		msg: "unavailable: " + err.Error(), err: err}
}

// rejection maps a command rejected by the state machine to its answer.
// id and leaseID name what the command was about; state looks up the
// job's current state for the message (it may be nil).
func rejection(err error, prefix string, id, leaseID uint64, state func() string) *httpError {
	conflict := func(format string, args ...any) *httpError {
		return &httpError{status: http.StatusConflict, code: api.CodeConflict, msg: fmt.Sprintf(format, args...)}
	}
	st := func() string {
		if state == nil {
			return "in another state"
		}
		return state()
	}
	var inv *fsm.InvalidError
	switch {
	case errors.As(err, &inv):
		return invalidSpec(prefix, inv)
	case errors.Is(err, fsm.ErrNotFound):
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: fmt.Sprintf("job %d not found", id)}
	case errors.Is(err, fsm.ErrLeaseMismatch):
		return conflict("lease %d is not the current lease of job %d: the lease expired, or the job was handed to another worker", leaseID, id)
	case errors.Is(err, fsm.ErrCanceled):
		return &httpError{status: http.StatusConflict, code: api.CodeCanceled,
			msg: fmt.Sprintf("job %d was canceled: stop working on it (this report is refused; the job stays canceled)", id)}
	case errors.Is(err, fsm.ErrNotInFlight):
		return conflict("job %d is not in flight (it is %s)", id, st())
	case errors.Is(err, fsm.ErrFinal):
		return conflict("job %d is already %s", id, st())
	case errors.Is(err, fsm.ErrNotRetryable):
		return conflict("job %d is %s: only failed, canceled or scheduled jobs can be retried", id, st())
	case errors.Is(err, fsm.ErrUniqueConflict):
		return conflict("job %d cannot be retried: its unique key is held by another job (unfinished, or finished within its unique_for window)", id)
	}
	return &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "unexpected rejection: " + err.Error(), err: err}
}

// stateOf returns a function that reads job id's state for messages.
func stateOf(rep replica.Replica, id uint64) func() string {
	return func() string {
		s := "gone"
		rep.Read(func(m *fsm.Machine) {
			if j, ok := m.Get(id); ok {
				s = j.State.String()
			}
		})
		return s
	}
}
