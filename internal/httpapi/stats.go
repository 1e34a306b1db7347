package httpapi

import (
	"net/http"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// GET /v1/stats
func (a *API) stats(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	for k := range r.URL.Query() {
		if k != "stale" {
			return invalidf("unknown query parameter %q (known: stale)", k)
		}
	}
	var out api.Stats
	if a.o.Stats != nil {
		out = a.o.Stats()
	}
	for _, s := range []*[]float64{&out.Series.Enqueued, &out.Series.Completed, &out.Series.Failed, &out.Series.Fsyncs} {
		if *s == nil {
			*s = []float64{}
		}
	}
	var depths []fsm.QueueDepth
	rep.Read(func(m *fsm.Machine) { depths = m.Depths() })
	now := a.clock()
	out.Time = now.UTC()
	out.Queues = make([]api.QueueStats, len(depths))
	for i, d := range depths {
		q := api.QueueStats{Queue: d.Queue, Depth: d.Unfinished, Pending: d.Pending}
		if d.Pending > 0 {
			since := time.Unix(0, d.OldestPending)
			q.OldestPendingSince = since.UTC()
			q.OldestPendingAge = max(now.Sub(since), 0).Round(time.Millisecond).String()
		}
		out.Queues[i] = q
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
