package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// POST /v1/jobs/{id}/complete
func (a *API) complete(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req api.CompleteRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	leaseID, err := parseID("lease_id", req.LeaseID)
	if err != nil {
		return err
	}
	ack := fsm.Ack{ID: id, LeaseID: leaseID}
	if ack.Result, err = a.result("result", req.Result); err != nil {
		return err
	}
	return a.ackOne(w, r, rep, ack)
}

// POST /v1/jobs/{id}/fail
func (a *API) fail(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req api.FailRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	leaseID, err := parseID("lease_id", req.LeaseID)
	if err != nil {
		return err
	}
	retryIn, err := parseDuration("retry_in", req.RetryIn, -1, MaxDelay)
	if err != nil {
		return err
	}
	ack := fsm.Ack{ID: id, LeaseID: leaseID, Fail: true, Error: req.Error, Final: req.Final}
	now := a.clock()
	a.retryAt(rep, now, []*fsm.Ack{&ack}, []time.Duration{retryIn})
	return a.ackOneAt(w, r, rep, ack, now)
}

func (a *API) ackOne(w http.ResponseWriter, r *http.Request, rep replica.Replica, ack fsm.Ack) error {
	return a.ackOneAt(w, r, rep, ack, a.clock())
}

// ackOneAt proposes one ack and answers the job as it is after it.
func (a *API) ackOneAt(w http.ResponseWriter, r *http.Request, rep replica.Replica, ack fsm.Ack, now time.Time) error {
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindAck, Now: now.UnixNano(), Acks: []fsm.Ack{ack}})
	if err != nil {
		return err
	}
	if res.Err == nil && len(res.AckErrs) == 1 {
		res.Err = res.AckErrs[0]
	}
	if res.Err != nil {
		return rejection(res.Err, "", ack.ID, ack.LeaseID, stateOf(rep, ack.ID))
	}
	var job fsm.Job
	var ok bool
	rep.Read(func(m *fsm.Machine) { job, ok = m.Get(ack.ID) })
	if !ok {
		// Purged between the ack and this read (a retention of nearly 0).
		writeJSON(w, http.StatusOK, api.Job{ID: formatID(ack.ID)})
		return nil
	}
	writeJSON(w, http.StatusOK, toJob(&job))
	return nil
}

// retryAt sets RetryAt of failing acks: now + retryIn when given (>= 0),
// else now + the backoff after the job's current attempt.
func (a *API) retryAt(rep replica.Replica, now time.Time, acks []*fsm.Ack, retryIn []time.Duration) {
	attempts := make([]int, len(acks))
	need := false
	for i := range acks {
		need = need || retryIn[i] < 0
	}
	if need {
		rep.Read(func(m *fsm.Machine) {
			for i, ack := range acks {
				if retryIn[i] < 0 {
					if j, ok := m.Get(ack.ID); ok {
						attempts[i] = j.Attempt
					}
				}
			}
		})
	}
	for i, ack := range acks {
		d := retryIn[i]
		if d < 0 {
			d = a.o.Retry.Next(max(attempts[i], 1))
		}
		ack.RetryAt = now.Add(d).UnixNano()
	}
}

// result checks a completion result: any JSON value, at most MaxPayload
// bytes. Absent is stored as nothing.
func (a *API) result(name string, raw json.RawMessage) (string, error) {
	if n := int64(len(raw)); n > a.o.MaxPayload {
		return "", tooLargef("%s is %d bytes, more than the limit of %d bytes", name, n, a.o.MaxPayload)
	}
	return string(raw), nil
}

// POST /v1/jobs/{id}/heartbeat
func (a *API) heartbeat(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req api.HeartbeatRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	leaseID, err := parseID("lease_id", req.LeaseID)
	if err != nil {
		return err
	}
	extend, err := parseDuration("extend", req.Extend, DefaultLease, MaxLeaseFor)
	if err != nil {
		return err
	}
	if extend == 0 {
		return invalidf("extend must be positive")
	}
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindHeartbeat, Now: a.clock().UnixNano(), ID: id, LeaseID: leaseID, LeaseFor: int64(extend)})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return rejection(res.Err, "", id, leaseID, stateOf(rep, id))
	}
	writeJSON(w, http.StatusOK, toJob(&res.Jobs[0]))
	return nil
}

// POST /v1/ack: every ack in one Ack command, one durable write.
func (a *API) ack(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		Acks boundedList[json.RawMessage] `json:"acks"`
	}
	// the common body, completions without results, is read by hand
	plain, fast := plainAcks(body, a.o.MaxBatch)
	n := len(plain)
	if !fast {
		req.Acks.max = a.o.MaxBatch
		if err := decodeStrict(body, &req, ""); err != nil {
			return err
		}
		n = req.Acks.n
	}
	switch {
	case n == 0:
		return invalidf("acks must hold at least one ack")
	case n > a.o.MaxBatch:
		return tooLargef("acks holds %d acks, more than the limit of %d per call", n, a.o.MaxBatch)
	}
	acks := make([]fsm.Ack, n)
	var fails []*fsm.Ack
	var retryIn []time.Duration
	for i := range acks {
		prefix := "acks[" + strconv.Itoa(i) + "]"
		var it api.AckItem
		if fast {
			it.ID, it.LeaseID = plain[i][0], plain[i][1]
		} else if id, lease, ok := plainAck(req.Acks.items[i]); ok {
			it.ID, it.LeaseID = id, lease
		} else if err := decodeStrict(req.Acks.items[i], &it, prefix); err != nil {
			return err
		}
		ack := &acks[i]
		var err error
		if ack.ID, err = parseID(field(prefix, "id"), it.ID); err != nil {
			return err
		}
		if ack.LeaseID, err = parseID(field(prefix, "lease_id"), it.LeaseID); err != nil {
			return err
		}
		if it.Error == nil {
			if it.RetryIn != "" || it.Final {
				return invalidf("%s: retry_in and final go with error (a failure)", prefix)
			}
			if ack.Result, err = a.result(field(prefix, "result"), it.Result); err != nil {
				return err
			}
			continue
		}
		if len(it.Result) > 0 {
			return invalidf("%s: result and error are exclusive: give result to complete the job, error to fail it", prefix)
		}
		d, err := parseDuration(field(prefix, "retry_in"), it.RetryIn, -1, MaxDelay)
		if err != nil {
			return err
		}
		ack.Fail, ack.Error, ack.Final = true, *it.Error, it.Final
		fails = append(fails, ack)
		retryIn = append(retryIn, d)
	}
	now := a.clock()
	a.retryAt(rep, now, fails, retryIn)
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindAck, Now: now.UnixNano(), Acks: acks})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return rejection(res.Err, "", 0, 0, nil)
	}
	// api.AckResponse, written by hand: an ok result is
	// {"id":"N","ok":true}, what json.Marshal writes for it
	b := make([]byte, 0, 16+len(acks)*32)
	b = append(b, `{"results":[`...)
	for i, ack := range acks {
		if i > 0 {
			b = append(b, ',')
		}
		if i < len(res.AckErrs) && res.AckErrs[i] != nil {
			he := rejection(res.AckErrs[i], "", ack.ID, ack.LeaseID, stateOf(rep, ack.ID))
			e, err := json.Marshal(api.AckResult{ID: formatID(ack.ID), Error: &api.ErrorBody{Code: he.code, Message: he.msg}})
			if err != nil {
				return fmt.Errorf("encode an ack result: %w", err)
			}
			b = append(b, e...)
			continue
		}
		b = append(b, `{"id":`...)
		b = appendIDString(b, ack.ID)
		b = append(b, `,"ok":true}`...)
	}
	writeBody(w, http.StatusOK, append(b, "]}\n"...))
	return nil
}

// plainAck reads an ack item of exactly the form
// {"id":"DIGITS","lease_id":"DIGITS"}, the one remote workers send for a
// completion without a result, without encoding/json; ok false for
// anything else (decodeStrict reads it). Digits decode to themselves in
// JSON, so the strings are what decodeStrict would give.
func plainAck(raw []byte) (id, lease string, ok bool) { return plainAckString(string(raw)) }

func plainAckString(s string) (id, lease string, ok bool) {
	const open, mid, end = `{"id":"`, `","lease_id":"`, `"}`
	rest, found := strings.CutPrefix(s, open)
	if !found {
		return "", "", false
	}
	id, rest, found = strings.Cut(rest, mid)
	if !found || !allDigits(id) {
		return "", "", false
	}
	lease, found = strings.CutSuffix(rest, end)
	if !found || !allDigits(lease) {
		return "", "", false
	}
	return id, lease, true
}

// plainAcks reads a body of exactly the form {"acks":[ITEM,ITEM,...]},
// every ITEM as plainAck reads it, then only white space; ok false for
// anything else, and for more than max items. It gives each item's id and
// lease_id.
func plainAcks(body []byte, max int) (items [][2]string, ok bool) {
	const open, close = `{"acks":[`, `]}`
	s, found := strings.CutPrefix(string(body), open)
	if !found {
		return nil, false
	}
	s = strings.TrimRight(s, " \t\r\n")
	s, found = strings.CutSuffix(s, close)
	if !found || s == "" {
		return nil, false
	}
	items = make([][2]string, 0, min(strings.Count(s, "},{")+1, max))
	for s != "" {
		if len(items) == max {
			return nil, false // too many: the strict path counts and refuses them
		}
		item, rest, more := strings.Cut(s, "},")
		if more {
			if rest == "" {
				return nil, false // a comma before the ]
			}
			item = s[:len(item)+1] // with its }
		}
		id, lease, ok := plainAckString(item)
		if !ok {
			return nil, false
		}
		items = append(items, [2]string{id, lease})
		s = rest
	}
	return items, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
