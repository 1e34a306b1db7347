package raftrep

import (
	"errors"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// The HTTP between nodes carries a follower's proposal to the leader (the
// command in its log encoding, fsm.AppendCommand) and the leader's answer:
// the fsm.Result as JSON, with its rejections as codes so that the
// follower's caller matches them with errors.Is exactly as on the leader.

type wireResult struct {
	Err      *wireErr            `json:"err,omitempty"`
	Enqueued []fsm.EnqueueResult `json:"enqueued,omitempty"`
	Jobs     []fsm.Job           `json:"jobs,omitempty"`
	AckErrs  []*wireErr          `json:"ack_errs,omitempty"`
	Promoted int                 `json:"promoted,omitempty"`
	Expired  int                 `json:"expired,omitempty"`
	Purged   int                 `json:"purged,omitempty"`
	More     bool                `json:"more,omitempty"`
	// periodic fires and dependencies
	Skipped     int `json:"skipped,omitempty"`
	Unblocked   int `json:"unblocked,omitempty"`
	DepCanceled int `json:"dep_canceled,omitempty"`
	// the queue controls' fields of fsm.Result
	CanceledRunning bool           `json:"canceled_running,omitempty"`
	Queue           *fsm.QueueInfo `json:"queue,omitempty"`
}

type wireErr struct {
	Code  string `json:"code"`
	Index int    `json:"index,omitempty"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"msg,omitempty"`
}

// rejections lists the fsm's rejections by wire code.
var rejections = map[string]error{
	"not_found":       fsm.ErrNotFound,
	"lease_mismatch":  fsm.ErrLeaseMismatch,
	"not_in_flight":   fsm.ErrNotInFlight,
	"canceled":        fsm.ErrCanceled,
	"final":           fsm.ErrFinal,
	"not_retryable":   fsm.ErrNotRetryable,
	"unique_conflict": fsm.ErrUniqueConflict,
	"invalid":         fsm.ErrInvalid,
	"corrupt":         fsm.ErrCorrupt,
	"no_schedule":     fsm.ErrNoSchedule,
	"schedule_limit":  fsm.ErrScheduleLimit,
}

func encodeErr(err error) *wireErr {
	if err == nil {
		return nil
	}
	var inv *fsm.InvalidError
	if errors.As(err, &inv) {
		return &wireErr{Code: "invalid_field", Index: inv.Index, Field: inv.Field, Msg: inv.Msg}
	}
	for code, e := range rejections {
		if errors.Is(err, e) {
			return &wireErr{Code: code}
		}
	}
	return &wireErr{Code: "other", Msg: err.Error()}
}

func decodeErr(w *wireErr) error {
	if w == nil {
		return nil
	}
	if w.Code == "invalid_field" {
		return &fsm.InvalidError{Index: w.Index, Field: w.Field, Msg: w.Msg}
	}
	if e, ok := rejections[w.Code]; ok {
		return e
	}
	return errors.New(w.Msg)
}

func encodeResult(r *fsm.Result) *wireResult {
	w := &wireResult{Err: encodeErr(r.Err), Enqueued: r.Enqueued, Jobs: r.Jobs,
		Promoted: r.Promoted, Expired: r.Expired, Purged: r.Purged, More: r.More,
		Skipped: r.Skipped, Unblocked: r.Unblocked, DepCanceled: r.DepCanceled,
		CanceledRunning: r.CanceledRunning, Queue: r.Queue}
	if r.AckErrs != nil {
		w.AckErrs = make([]*wireErr, len(r.AckErrs))
		for i, e := range r.AckErrs {
			w.AckErrs[i] = encodeErr(e)
		}
	}
	return w
}

func (w *wireResult) result() fsm.Result {
	r := fsm.Result{Err: decodeErr(w.Err), Enqueued: w.Enqueued, Jobs: w.Jobs,
		Promoted: w.Promoted, Expired: w.Expired, Purged: w.Purged, More: w.More,
		Skipped: w.Skipped, Unblocked: w.Unblocked, DepCanceled: w.DepCanceled,
		CanceledRunning: w.CanceledRunning, Queue: w.Queue}
	if w.AckErrs != nil {
		r.AckErrs = make([]error, len(w.AckErrs))
		for i, e := range w.AckErrs {
			r.AckErrs[i] = decodeErr(e)
		}
	}
	return r
}

// wireFailure is a system failure of a forwarded call.
type wireFailure struct {
	Code       string `json:"code"` // one of the failure codes below
	Msg        string `json:"msg"`
	LeaderID   string `json:"leader_id,omitempty"`
	LeaderAddr string `json:"leader_addr,omitempty"`
}

// Failure codes.
const (
	failNotLeader  = "not_leader"      // nothing was written: ask the leader
	failUnknown    = "unknown_outcome" // may or may not have committed
	failTooLarge   = "too_large"
	failClosed     = "closed"
	failOther      = "other"
	failLastVoter  = "last_voter"
	failNoSuchNode = "no_such_node"
)
