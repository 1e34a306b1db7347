package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// The queue controls: GET /v1/queues, GET, PUT and PATCH
// /v1/queues/{name}, POST /v1/queues/{name}/pause and /resume. Every change
// is one SetQueue command; the state machine enforces the settings at lease
// time (docs/queues.md).

// GET /v1/queues
func (a *API) queues(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	for k := range r.URL.Query() {
		if k != "stale" {
			return invalidf("unknown query parameter %q (known: stale)", k)
		}
	}
	var infos []fsm.QueueInfo
	rep.Read(func(m *fsm.Machine) { infos = m.QueueInfos() })
	now := a.clock().UnixNano()
	out := api.QueueList{Queues: make([]api.Queue, len(infos))}
	for i := range infos {
		out.Queues[i] = toQueue(&infos[i], now)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/queues/{name}: any valid name answers, a queue nobody used yet
// with no jobs and no settings.
func (a *API) queue(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	name, err := queueName(r)
	if err != nil {
		return err
	}
	var info fsm.QueueInfo
	rep.Read(func(m *fsm.Machine) { info = m.QueueInfo(name) })
	writeJSON(w, http.StatusOK, toQueue(&info, a.clock().UnixNano()))
	return nil
}

// PUT /v1/queues/{name}: every setting; those absent take their default.
func (a *API) putQueue(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	return a.changeQueue(w, r, rep, true)
}

// PATCH /v1/queues/{name}: the settings given.
func (a *API) patchQueue(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	return a.changeQueue(w, r, rep, false)
}

// POST /v1/queues/{name}/pause
func (a *API) pauseQueue(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	return a.setPaused(w, r, rep, true)
}

// POST /v1/queues/{name}/resume
func (a *API) resumeQueue(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	return a.setPaused(w, r, rep, false)
}

func (a *API) setPaused(w http.ResponseWriter, r *http.Request, rep replica.Replica, paused bool) error {
	name, err := queueName(r)
	if err != nil {
		return err
	}
	var body struct{}
	if err := a.decodeOptionalBody(w, r, &body); err != nil {
		return err
	}
	return a.proposeQueue(w, r, rep, fsm.QueueChange{Queue: name, Set: fsm.SetPaused, Settings: fsm.QueueSettings{Paused: paused}})
}

// queueWire is api.QueueSettings as the server decodes it: raw, to tell an
// absent field from null.
type queueWire struct {
	Paused      json.RawMessage `json:"paused"`
	Concurrency json.RawMessage `json:"concurrency"`
	Rate        json.RawMessage `json:"rate"`
}

func (a *API) changeQueue(w http.ResponseWriter, r *http.Request, rep replica.Replica, replace bool) error {
	name, err := queueName(r)
	if err != nil {
		return err
	}
	var req queueWire
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	ch, err := queueChange(name, &req, replace)
	if err != nil {
		return err
	}
	return a.proposeQueue(w, r, rep, ch)
}

// queueChange checks a PUT or PATCH body and makes the change: with
// replace every field is set (absent: its default), else only those given.
// 0 and null mean no limit.
func queueChange(name string, req *queueWire, replace bool) (fsm.QueueChange, error) {
	ch := fsm.QueueChange{Queue: name}
	if replace {
		ch.Set = fsm.AllQueueFields
	}
	s := &ch.Settings
	isNull := func(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }
	if len(req.Paused) > 0 {
		if isNull(req.Paused) || json.Unmarshal(req.Paused, &s.Paused) != nil {
			return ch, invalidf("paused must be true or false, not %s", req.Paused)
		}
		ch.Set |= fsm.SetPaused
	}
	if len(req.Concurrency) > 0 {
		if !isNull(req.Concurrency) && (json.Unmarshal(req.Concurrency, &s.Concurrency) != nil || s.Concurrency < 0 || s.Concurrency > fsm.MaxConcurrency) {
			return ch, invalidf("concurrency must be an integer between 0 (no limit) and %d, not %s", fsm.MaxConcurrency, req.Concurrency)
		}
		ch.Set |= fsm.SetConcurrency
	}
	if len(req.Rate) > 0 {
		ch.Set |= fsm.SetRate
		if !isNull(req.Rate) {
			var rate api.Rate
			if err := decodeStrict(req.Rate, &rate, "rate"); err != nil {
				return ch, err
			}
			switch {
			case rate.Limit < 0 || rate.Limit > fsm.MaxRateLimit:
				return ch, invalidf("rate.limit must be between 0 (no limit) and %d, not %d", fsm.MaxRateLimit, rate.Limit)
			case rate.Limit == 0 && rate.Period != "":
				return ch, invalidf("rate.period must not be given without a rate.limit (a limit of 0 removes the rate limit)")
			case rate.Limit > 0 && rate.Period == "":
				return ch, invalidf("rate.period is required with rate.limit, e.g. {\"limit\": %d, \"period\": \"1s\"}", rate.Limit)
			}
			if rate.Limit > 0 {
				d, err := parseDuration("rate.period", rate.Period, 0, fsm.MaxRatePeriod)
				if err != nil {
					return ch, err
				}
				if d < fsm.MinRatePeriod {
					return ch, invalidf("rate.period must be at least %v, not %s", fsm.MinRatePeriod, rate.Period)
				}
				s.RateLimit, s.RatePeriod = rate.Limit, int64(d)
			}
		}
	}
	if ch.Set == 0 {
		return ch, invalidf("give at least one of paused, concurrency and rate")
	}
	return ch, nil
}

// proposeQueue proposes ch and answers the queue after it.
func (a *API) proposeQueue(w http.ResponseWriter, r *http.Request, rep replica.Replica, ch fsm.QueueChange) error {
	if err := fsm.ValidateQueueChange(&ch); err != nil {
		return rejection(err, "", 0, 0, nil)
	}
	now := a.clock()
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindSetQueue, Now: now.UnixNano(), Queue: &ch})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return rejection(res.Err, "", 0, 0, nil)
	}
	if res.Queue == nil { // a leader of an older build
		return &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "the queue change answered no queue"}
	}
	writeJSON(w, http.StatusOK, toQueue(res.Queue, now.UnixNano()))
	return nil
}

func queueName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if !fsm.ValidQueueName(name) {
		return "", invalidf("queue name must match [a-zA-Z0-9_.-]{1,128}, not %q", name)
	}
	return name, nil
}

// toQueue renders a queue for the wire; now decides whether its rate
// window is still open.
func toQueue(i *fsm.QueueInfo, now int64) api.Queue {
	s := i.Settings
	out := api.Queue{Name: i.Queue, Paused: s.Paused, Concurrency: s.Concurrency, Jobs: stateCounts(i.QueueCounts), Blocked: i.Blocked(now)}
	if s.RateLimit > 0 {
		out.Rate = &api.Rate{Limit: s.RateLimit, Period: time.Duration(s.RatePeriod).String()}
		if end := i.RateResetAt(); end > now {
			out.RateWindow = &api.RateWindow{Used: i.RateUsed, ResetsAt: wireTime(end)}
		}
	}
	return out
}

// pausedQueues lists the paused queues for GET /v1/status.
func pausedQueues(rep replica.Replica) []string {
	var out []string
	rep.Read(func(m *fsm.Machine) {
		for _, q := range m.QueueInfos() {
			if q.Settings.Paused {
				out = append(out, q.Queue)
			}
		}
	})
	return out
}

// durationOrEmpty renders ns as a duration string, or "" for 0.
func durationOrEmpty(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Duration(ns).String()
}
