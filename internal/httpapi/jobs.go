package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/jsonscan"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// enqueueWire is api.EnqueueRequest as the server decodes it: run_at is
// kept raw so that a bad time is reported with its field name.
type enqueueWire struct {
	api.EnqueueRequest
	RunAt json.RawMessage `json:"run_at"`
}

// POST /v1/jobs
func (a *API) enqueue(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	// The fast path validates what it reads; decodeStrict answers
	// anything it does not take.
	req, ok := fastDecodeEnqueue(body, nil)
	if !ok {
		slow := new(enqueueWire) // of its own: decodeStrict makes it escape
		if err := decodeStrict(body, slow, ""); err != nil {
			return err
		}
		req = *slow
	}
	now := a.clock()
	spec, err := a.spec(&req, now, "", 0)
	if err != nil {
		return err
	}
	if err := a.checkDepth(rep, 1); err != nil {
		return err
	}
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindEnqueue, Now: now.UnixNano(), Jobs: []fsm.JobSpec{spec}})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return rejection(res.Err, "", 0, 0, nil)
	}
	e := res.Enqueued[0]
	writeJSON(w, http.StatusCreated, api.EnqueueResponse{ID: formatID(e.ID), State: e.State.String(), Duplicate: e.Duplicate})
	return nil
}

// batchBodies holds the buffers of batch bodies, *[]byte: a batch is done
// with its body once its specs are built (they copy what they keep, and
// so do the errors), and a body is hundreds of kilobytes that would
// otherwise be allocated, zeroed and collected for every batch.
var batchBodies sync.Pool

// maxPooledBody bounds the buffers that batchBodies keeps.
const maxPooledBody = 4 << 20

// POST /v1/jobs/batch
func (a *API) enqueueBatch(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	bp, _ := batchBodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	body, err := a.readBodyInto(w, r, *bp)
	if cap(body) <= maxPooledBody {
		defer func() {
			*bp = body[:0]
			batchBodies.Put(bp)
		}()
	}
	if err != nil {
		return err
	}
	now := a.clock()
	specs, err := a.batchSpecs(body, now)
	if err != nil {
		return err
	}
	if err := a.checkDepth(rep, len(specs)); err != nil {
		return err
	}
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindEnqueue, Now: now.UnixNano(), Jobs: specs})
	if err != nil {
		return err
	}
	if res.Err != nil {
		prefix := ""
		if inv, ok := res.Err.(*fsm.InvalidError); ok && inv.Field != "jobs" {
			prefix = "jobs[" + strconv.Itoa(inv.Index) + "]"
		}
		return rejection(res.Err, prefix, 0, 0, nil)
	}
	writeBody(w, http.StatusCreated, appendBatchResponse(nil, res.Enqueued))
	return nil
}

// appendBatchResponse appends the answer of a batch, api.BatchResponse, in
// JSON and with the newline of writeJSON: byte for byte what writeJSON
// writes, without a string per id and without reflection.
func appendBatchResponse(b []byte, enq []fsm.EnqueueResult) []byte {
	b = slices.Grow(b, len(`{"ids":[],"duplicates":[]}`)+len(enq)*len(`"18446744073709551615",false,`)+1)
	b = append(b, `{"ids":[`...)
	for i := range enq {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		if id := enq[i].ID; id != 0 { // formatID
			b = strconv.AppendUint(b, id, 10)
		}
		b = append(b, '"')
	}
	b = append(b, `],"duplicates":[`...)
	for i := range enq {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendBool(b, enq[i].Duplicate)
	}
	return append(b, "]}\n"...)
}

// batchSpecs decodes the body of POST /v1/jobs/batch into the specs of its
// jobs. A body of the common shape takes batchSpecsFast; any other, and
// every body the fast path is not sure of, batchSpecsStrict, whose answer
// (and error message) is then the answer.
func (a *API) batchSpecs(body []byte, now time.Time) ([]fsm.JobSpec, error) {
	if specs, ok, err := a.batchSpecsFast(body, now); ok {
		return specs, err
	}
	return a.batchSpecsStrict(body, now)
}

// batchSpecsFast is batchSpecsStrict for a body of exactly the shape
// batchElems reads, in one pass and without encoding/json: batchElems
// validates the body as it finds the jobs, and each job is decoded
// (fastEnqueue) and built as it is found. A job fastEnqueue does not take
// is only delimited and validated (jsonscan.Value) and decoded with decodeStrict
// once the whole body is known to be valid JSON, as batchSpecsStrict would.
// Past MaxBatch jobs, or past the first job that fails, the jobs are only
// validated: a hostile batch (megabytes of "1,") costs that scan and no
// memory. When ok, its specs and error are those of batchSpecsStrict; when
// not (invalid JSON among it), it did nothing that the caller must undo.
func (a *API) batchSpecsFast(body []byte, now time.Time) (specs []fsm.JobSpec, ok bool, err error) {
	max := a.o.MaxBatch
	type slowJob struct{ k, start, end int }
	var slowBuf [8]slowJob
	slow := slowBuf[:0] // jobs for decodeStrict, in order
	failed := -1        // the first job that failed to build
	var strs strCache   // the jobs' queue, type and durations, mostly alike
	var failErr error   // and why
	n, ok := batchElems(body, func(k, i int) (int, bool) {
		if k >= max || failed >= 0 {
			return jsonscan.Value(body, i)
		}
		req, j, fast := fastEnqueue(body, i, &strs)
		if !fast {
			var valid bool
			if j, valid = jsonscan.Value(body, i); !valid {
				return 0, false
			}
			slow = append(slow, slowJob{k, i, j})
		}
		if k == 0 {
			specs = make([]fsm.JobSpec, 0, batchCap(len(body)-i, j-i, max))
		}
		if !fast {
			specs = append(specs, fsm.JobSpec{}) // decoded after the scan
			return j, true
		}
		// spec is a pure function: the prefix of its messages, a string per
		// job, is only made for a job that fails.
		spec, serr := a.spec(&req, now, "", k)
		if serr != nil {
			_, serr = a.spec(&req, now, jobPrefix(k), k)
			failed, failErr = k, serr
		}
		specs = append(specs, spec)
		return j, true
	})
	if !ok {
		return nil, false, nil
	}
	if serr := a.batchSize(n); serr != nil {
		return nil, true, serr
	}
	for _, s := range slow {
		if failed >= 0 && s.k > failed {
			break
		}
		prefix := jobPrefix(s.k)
		// A variable of its own: decodeStrict makes it escape.
		jr := new(enqueueWire)
		if serr := decodeStrict(body[s.start:s.end], jr, prefix); serr != nil {
			return nil, true, serr
		}
		var serr error
		if specs[s.k], serr = a.spec(jr, now, prefix, s.k); serr != nil {
			return nil, true, serr
		}
	}
	if failed >= 0 {
		return nil, true, failErr
	}
	return specs, true, nil
}

// batchCap is a capacity for the specs of a batch whose jobs start with
// one of size bytes, rest bytes before the end of the body: as many jobs
// as fit if they are alike, and an eighth more, at most max.
func batchCap(rest, size, max int) int {
	n := rest / (size + 1) // each job but the last is followed by a comma
	return min(max, n+n/8+1)
}

func jobPrefix(k int) string { return "jobs[" + strconv.Itoa(k) + "]" }

// batchSpecsStrict decodes a batch body with decodeStrict: the whole body,
// then each job. It answers every body, and is the reference that
// batchSpecsFast must agree with.
func (a *API) batchSpecsStrict(body []byte, now time.Time) ([]fsm.JobSpec, error) {
	var req struct {
		Jobs boundedList[json.RawMessage] `json:"jobs"`
	}
	req.Jobs.max = a.o.MaxBatch
	if err := decodeStrict(body, &req, ""); err != nil {
		return nil, err
	}
	if err := a.batchSize(req.Jobs.n); err != nil {
		return nil, err
	}
	return jobSpecs(a, req.Jobs.items, now)
}

// batchSize refuses a batch of no job or of more than MaxBatch jobs.
func (a *API) batchSize(n int) error {
	switch {
	case n == 0:
		return invalidf("jobs must hold at least one job")
	case n > a.o.MaxBatch:
		return tooLargef("jobs holds %d jobs, more than the limit of %d per batch", n, a.o.MaxBatch)
	}
	return nil
}

// jobSpecs decodes the jobs of a batch, each a valid JSON value, and turns
// them into specs, in order: the first job that fails, at decoding or at
// building, gives the error, named "jobs[i]". It is a function because a
// method cannot have a type parameter: E is json.RawMessage or []byte.
func jobSpecs[E ~[]byte](a *API, elems []E, now time.Time) ([]fsm.JobSpec, error) {
	specs := make([]fsm.JobSpec, len(elems))
	for i, raw := range elems {
		prefix := jobPrefix(i)
		jr, ok := fastDecodeEnqueue(raw, nil)
		if !ok {
			// A variable of its own: decodeStrict makes it escape, and jr
			// would be allocated for every job otherwise.
			slow := new(enqueueWire)
			if err := decodeStrict(raw, slow, prefix); err != nil {
				return nil, err
			}
			jr = *slow
		}
		var err error
		if specs[i], err = a.spec(&jr, now, prefix, i); err != nil {
			return nil, err
		}
	}
	return specs, nil
}

// spec turns one enqueue request into a JobSpec through the one builder
// (defaults and limits). prefix names the job in messages ("jobs[3]"),
// index in the machine's own errors.
func (a *API) spec(req *enqueueWire, now time.Time, prefix string, index int) (fsm.JobSpec, error) {
	in := jobspec.Input{
		Queue:       req.Queue,
		Type:        req.Type,
		Payload:     req.Payload,
		Priority:    req.Priority,
		MaxAttempts: req.MaxAttempts,
		UniqueKey:   req.UniqueKey,
	}
	if len(req.RunAt) > 0 && string(req.RunAt) != "null" {
		var str string
		if err := json.Unmarshal(req.RunAt, &str); err != nil {
			return fsm.JobSpec{}, invalidf("%s: expected an RFC 3339 time string, got %s", field(prefix, "run_at"), req.RunAt)
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return fsm.JobSpec{}, invalidf("%s: %v", field(prefix, "run_at"), err)
		}
		if t.IsZero() {
			t = time.Unix(0, 0).Add(-1) // year 1969: refused by the builder, not taken for "none"
		}
		in.RunAt = t
		if req.Delay != "" {
			return fsm.JobSpec{}, invalidf("%s and %s are exclusive: give one of them", field(prefix, "run_at"), field(prefix, "delay"))
		}
	}
	var err error
	if in.Deps, err = parseDeps(&req.EnqueueRequest, prefix); err != nil {
		return fsm.JobSpec{}, err
	}
	if in.Delay, err = jobspec.ParseDuration("delay", req.Delay); err != nil {
		return fsm.JobSpec{}, specError(prefix, err)
	}
	if in.UniqueFor, err = jobspec.ParseDuration("unique_for", req.UniqueFor); err != nil {
		return fsm.JobSpec{}, specError(prefix, err)
	}
	if in.Timeout, err = jobspec.ParseDuration("timeout", req.Timeout); err != nil {
		return fsm.JobSpec{}, specError(prefix, err)
	}
	s, err := a.jobs.Build(&in, now, index)
	if err != nil {
		return s, specError(prefix, err)
	}
	return s, nil
}

// specError maps a refusal of the job builder to its answer, naming the
// field with prefix.
func specError(prefix string, err error) error {
	var e *jobspec.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Msg
	if e.Field != "" || prefix != "" {
		sep := " "
		if strings.HasPrefix(msg, ":") {
			sep = ""
		}
		msg = field(prefix, e.Field) + sep + msg
	}
	switch e.Kind {
	case jobspec.TooLarge:
		return tooLargef("%s", msg)
	case jobspec.QueueFull:
		return &httpError{status: http.StatusTooManyRequests, code: api.CodeQueueFull, retryAfter: 1, msg: msg}
	}
	return invalidf("%s", msg)
}

// checkDepth answers 429 when adding n jobs would exceed MaxQueueDepth
// unfinished jobs.
func (a *API) checkDepth(rep replica.Replica, n int) error {
	return specError("", a.jobs.Admit(rep, n))
}

// propose stamps nothing (the caller set cmd.Now) and maps a system failure
// of the replica to its answer.
func (a *API) propose(ctx context.Context, rep replica.Replica, cmd *fsm.Command) (fsm.Result, error) {
	res, err := rep.Propose(ctx, cmd)
	if err != nil {
		return res, systemError(cmd.Kind, err)
	}
	return res, nil
}

// GET /v1/jobs/{id}
func (a *API) get(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var job fsm.Job
	var ok bool
	rep.Read(func(m *fsm.Machine) { job, ok = m.Get(id) })
	if !ok {
		return rejection(fsm.ErrNotFound, "", id, 0, nil)
	}
	writeJSON(w, http.StatusOK, toJob(&job))
	return nil
}

// GET /v1/jobs?queue=&state=&type=&order=&limit=&cursor=
func (a *API) list(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "queue", "state", "type", "order", "limit", "cursor", "stale":
		default:
			return invalidf("unknown query parameter %q (known: queue, state, type, order, limit, cursor, stale)", k)
		}
	}
	f := fsm.Filter{Queue: q.Get("queue"), Type: q.Get("type"), Limit: DefaultListLimit}
	if f.Queue != "" && !fsm.ValidQueueName(f.Queue) {
		return invalidf("queue must match [a-zA-Z0-9_.-]{1,128}")
	}
	if s := q.Get("state"); s != "" {
		st, ok := fsm.ParseState(s)
		if !ok {
			names := make([]string, 0, 6)
			for _, s := range fsm.States() {
				names = append(names, s.String())
			}
			return invalidf("state must be one of %s, not %q", strings.Join(names, ", "), s)
		}
		f.State = st
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return invalidf("limit must be an integer between 1 and %d, not %q", MaxListLimit, s)
		}
		f.Limit = n
	}
	switch o := q.Get("order"); o {
	case "", "asc":
	case "desc":
		f.Desc = true
	default:
		return invalidf("order must be asc (oldest first) or desc (newest first), not %q", o)
	}
	cursor, err := decodeCursor(q.Get("cursor"), f.Desc)
	if err != nil {
		return err
	}
	if f.Desc {
		f.Before = cursor
	} else {
		f.After = cursor
	}
	var jobs []fsm.Job
	var next uint64
	rep.Read(func(m *fsm.Machine) { jobs, next = m.List(f) })
	writeBody(w, http.StatusOK, appendListAnswer(newJobsBuffer(jobs), jobs, encodeCursor(next, f.Desc)))
	return nil
}

// POST /v1/jobs/{id}/cancel
func (a *API) cancel(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	return a.jobCommand(w, r, rep, fsm.KindCancel)
}

// POST /v1/jobs/{id}/retry
func (a *API) retry(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	return a.jobCommand(w, r, rep, fsm.KindRetry)
}

// jobCommand proposes a Cancel or Retry of the job {id} and answers the job
// after it. The body may be empty or {}.
func (a *API) jobCommand(w http.ResponseWriter, r *http.Request, rep replica.Replica, kind fsm.Kind) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var body struct{}
	if err := a.decodeOptionalBody(w, r, &body); err != nil {
		return err
	}
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: kind, Now: a.clock().UnixNano(), ID: id})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return rejection(res.Err, "", id, 0, stateOf(rep, id))
	}
	writeJSON(w, http.StatusOK, toJob(&res.Jobs[0]))
	return nil
}

// toJob renders a job for the wire.
func toJob(j *fsm.Job) api.Job {
	out := api.Job{
		ID:            formatID(j.ID),
		Queue:         j.Queue,
		Type:          j.Type,
		Payload:       rawJSON(j.Payload, "null"),
		Priority:      j.Priority,
		State:         j.State.String(),
		Attempt:       j.Attempt,
		MaxAttempts:   j.MaxAttempts,
		Timeout:       time.Duration(j.Timeout).String(),
		UniqueKey:     j.UniqueKey,
		UniqueFor:     durationOrEmpty(j.UniqueFor),
		RunAt:         wireTime(j.RunAt),
		CreatedAt:     wireTime(j.CreatedAt),
		StartedAt:     wireTime(j.StartedAt),
		FinishedAt:    wireTime(j.FinishedAt),
		LastError:     j.LastError,
		Result:        rawJSON(j.Result, ""),
		LeaseID:       formatID(j.LeaseID),
		LeaseDeadline: wireTime(j.LeaseDeadline),
		Worker:        j.Worker,
	}
	if j.Deps != nil {
		depsToWire(j.Deps, &out)
	}
	return out
}

// rawJSON passes stored JSON through. Empty gives def (omitted when ""),
// and bytes that are not JSON (written by some other proposer) are sent as
// a JSON string rather than breaking the whole answer.
func rawJSON(s, def string) json.RawMessage {
	if s == "" {
		if def == "" {
			return nil
		}
		return json.RawMessage(def)
	}
	if !json.Valid([]byte(s)) {
		b, _ := json.Marshal(s)
		return b
	}
	return json.RawMessage(s)
}

func wireTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
