package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Bounds of POST /v1/jobs/bulk.
const (
	// DefaultBulkLimit and MaxBulkLimit bound the jobs one bulk call acts on.
	DefaultBulkLimit = 10_000
	MaxBulkLimit     = 100_000
	// bulkBatch is how many matching jobs one Read collects: the read lock
	// is held for one page of the list at a time, never for the whole call.
	bulkBatch = 1000
	// bulkParallel bounds the proposals of one bulk call in flight at once:
	// concurrent proposals share the WAL's fsyncs (group commit).
	bulkParallel = 16
)

// POST /v1/jobs/bulk
//
// The matching ids are read a page at a time with the list query, and each
// job gets the same Cancel or Retry command that the single call proposes:
// the state machine decides every change, and a job that changed state
// since it was read is refused there (counted in errors).
func (a *API) bulk(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	var req api.BulkRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	var kind fsm.Kind
	switch req.Action {
	case "cancel":
		kind = fsm.KindCancel
	case "retry":
		kind = fsm.KindRetry
	case "":
		return invalidf("action is required: cancel or retry")
	default:
		return invalidf("action must be cancel or retry, not %q", req.Action)
	}
	f := fsm.Filter{Queue: req.Queue, Type: req.Type}
	if req.State == "" {
		return invalidf("state is required: the state of the jobs to %s (%s)", req.Action, stateNames())
	}
	st, ok := fsm.ParseState(req.State)
	if !ok {
		return invalidf("state must be one of %s, not %q", stateNames(), req.State)
	}
	f.State = st
	if f.Queue != "" && !fsm.ValidQueueName(f.Queue) {
		return invalidf("queue must match [a-zA-Z0-9_.-]{1,128}")
	}
	if f.Type != "" && !fsm.ValidTypeName(f.Type) {
		return invalidf("type must match [a-zA-Z0-9_.:/-]{1,128}")
	}
	limit := req.Limit
	switch {
	case limit == 0:
		limit = DefaultBulkLimit
	case limit < 0 || limit > MaxBulkLimit:
		return invalidf("limit must be between 1 and %d, not %d", MaxBulkLimit, limit)
	}

	var out api.BulkResponse
	for {
		f.Limit = min(bulkBatch, limit-out.Matched)
		var jobs []fsm.Job
		var next uint64
		rep.Read(func(m *fsm.Machine) { jobs, next = m.List(f) })
		ids := make([]uint64, len(jobs))
		for i := range jobs {
			ids[i] = jobs[i].ID
		}
		out.Matched += len(ids)
		if err := a.bulkApply(r.Context(), rep, kind, ids, &out); err != nil {
			he := systemError(kind, err)
			he.msg = fmt.Sprintf("%s (the bulk %s stopped after it changed %d jobs)", he.msg, req.Action, out.Changed)
			return he
		}
		if next == 0 {
			break
		}
		if out.Matched == limit {
			out.More = true
			break
		}
		f.After = next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// bulkApply proposes a kind command for each id, bulkParallel at a time,
// and counts the outcomes in out. It returns the first system failure of
// Propose (the log failed, the request ended), after the proposals already
// started have returned.
func (a *API) bulkApply(ctx context.Context, rep replica.Replica, kind fsm.Kind, ids []uint64, out *api.BulkResponse) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards out and failed
		failed error
		sem    = make(chan struct{}, bulkParallel)
	)
	for _, id := range ids {
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := rep.Propose(ctx, &fsm.Command{Kind: kind, Now: a.clock().UnixNano(), ID: id})
			var refused *httpError
			if err == nil && res.Err != nil {
				refused = rejection(res.Err, "", id, 0, stateOf(rep, id))
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if failed == nil {
					failed = err
				}
			case refused != nil:
				out.Errors++
				if out.FirstError == nil {
					out.FirstError = &api.ErrorBody{Code: refused.code, Message: refused.msg}
				}
			default:
				out.Changed++
			}
		}()
	}
	wg.Wait()
	return failed
}

// stateNames lists the job states for messages.
func stateNames() string {
	names := make([]string, 0, 6)
	for _, s := range fsm.States() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}
