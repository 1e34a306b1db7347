package httpapi

import (
	"net/http"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/leasing"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// leaseWire is api.LeaseRequest as the server decodes it: queues and types
// are bounded while they are decoded.
type leaseWire struct {
	api.LeaseRequest
	Queues boundedList[string] `json:"queues"`
	Types  boundedList[string] `json:"types"`
}

// leaseParams is a validated lease request.
type leaseParams struct {
	queues, types []string
	max           int
	wait, lease   time.Duration
	worker        string
}

func (a *API) leaseParams(r *http.Request, req *api.LeaseRequest) (leaseParams, error) {
	p := leaseParams{queues: req.Queues, types: req.Types, max: req.Max, worker: req.Worker}
	if len(p.queues) == 0 && len(p.types) == 0 {
		p.queues = []string{a.o.DefaultQueue}
	}
	for i, q := range p.queues {
		if !fsm.ValidQueueName(q) {
			return p, invalidf("queues[%d] must match [a-zA-Z0-9_.-]{1,128}", i)
		}
	}
	for i, t := range p.types {
		if !fsm.ValidTypeName(t) {
			return p, invalidf("types[%d] must match [a-zA-Z0-9_.:/-]{1,128}", i)
		}
	}
	if p.max == 0 {
		p.max = 1
	}
	if p.max < 1 || p.max > a.o.MaxLease {
		return p, invalidf("max must be between 1 and %d", a.o.MaxLease)
	}
	var err error
	if p.wait, err = parseDuration("wait", req.Wait, 0, MaxDelay); err != nil {
		return p, err
	}
	p.wait = min(p.wait, a.o.MaxWait)
	if p.lease, err = parseDuration("lease", req.Lease, DefaultLease, MaxLeaseFor); err != nil {
		return p, err
	}
	if p.lease == 0 {
		return p, invalidf("lease must be positive")
	}
	if p.worker == "" {
		p.worker = r.RemoteAddr
	}
	if len(p.worker) > MaxWorkerName {
		return p, invalidf("worker is longer than %d bytes", MaxWorkerName)
	}
	return p, nil
}

// POST /v1/lease
//
// The long poll is package leasing's: a Lease is proposed only when a read
// of the machine shows a runnable job, so an idle poll writes nothing to
// the log; otherwise it waits for a change, for the next scheduled job to
// become due, for the end of the wait, or for the request context to end
// (then it answers no jobs).
func (a *API) lease(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	req := leaseWire{Queues: boundedList[string]{max: MaxLeaseNames}, Types: boundedList[string]{max: MaxLeaseNames}}
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	// The names go into the log record of the lease: a record must stay
	// far below what its decoder believes (fsm.MaxDecodeItems), and every
	// poll looks at each name.
	if req.Queues.n > MaxLeaseNames || req.Types.n > MaxLeaseNames {
		return invalidf("queues and types may name at most %d each, not %d and %d", MaxLeaseNames, req.Queues.n, req.Types.n)
	}
	req.LeaseRequest.Queues, req.LeaseRequest.Types = req.Queues.items, req.Types.items
	p, err := a.leaseParams(r, &req.LeaseRequest)
	if err != nil {
		return err
	}
	res, err := leasing.Wait(r.Context(), rep, p.wait, func() *fsm.Command {
		return &fsm.Command{
			Kind: fsm.KindLease, Now: a.clock().UnixNano(),
			Queues: p.queues, Types: p.types, Max: p.max, Worker: p.worker, LeaseFor: int64(p.lease),
		}
	})
	if err != nil {
		return systemError(fsm.KindLease, err)
	}
	if res.Err != nil {
		return rejection(res.Err, "", 0, 0, nil)
	}
	writeBody(w, http.StatusOK, appendLeaseAnswer(newJobsBuffer(res.Jobs), res.Jobs))
	return nil
}
