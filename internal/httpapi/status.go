package httpapi

import (
	"net/http"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// GET /v1/status
func (a *API) status(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	var total fsm.QueueCounts
	var queues []fsm.QueueCounts
	rep.Read(func(m *fsm.Machine) { total, queues = m.Counts() })
	st := rep.Status()
	out := api.Status{
		Role:       st.Role,
		Version:    a.o.Version,
		Uptime:     time.Since(a.started).Round(time.Millisecond).String(),
		AppliedLSN: st.AppliedLSN,
		Jobs:       stateCounts(total),
		Queues:     make(map[string]api.StateCounts, len(queues)),
		WAL: api.WALStatus{
			FirstLSN: st.WAL.FirstLSN,
			LastLSN:  st.WAL.LastLSN,
			Segments: st.WAL.Segments,
			Bytes:    st.WAL.Bytes,
		},
		Snapshot: api.SnapshotStatus{
			Count:        st.Snapshot.Count,
			LastLSN:      st.Snapshot.LastLSN,
			LastSize:     st.Snapshot.LastSize,
			LastDuration: st.Snapshot.LastDuration.String(),
			Taken:        st.Snapshot.Taken,
			Failures:     st.Snapshot.Failures,
			LastError:    st.Snapshot.LastError,
		},
		Recovery: api.RecoveryStatus{
			Duration:         st.Recovery.Duration.String(),
			SnapshotLSN:      st.Recovery.SnapshotLSN,
			SnapshotJobs:     st.Recovery.SnapshotJobs,
			RecordsReplayed:  st.Recovery.RecordsReplayed,
			TornBytes:        st.Recovery.TornBytes,
			TornFile:         st.Recovery.TornFile,
			SkippedSnapshots: st.Recovery.SkippedSnapshot,
			Requeued:         st.Recovery.RequeuedJobs,
		},
	}
	if !st.Snapshot.LastTime.IsZero() {
		out.Snapshot.LastTime = st.Snapshot.LastTime.UTC()
	}
	out.DiskFull = st.DiskFull
	out.Cluster = clusterStatus(st)
	if st.Failed != nil {
		out.Failed = st.Failed.Error()
	}
	for _, q := range queues {
		out.Queues[q.Queue] = stateCounts(q)
	}
	out.PausedQueues = pausedQueues(rep)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func stateCounts(c fsm.QueueCounts) api.StateCounts {
	return api.StateCounts{
		Pending:   c.Count(fsm.StatePending),
		Scheduled: c.Count(fsm.StateScheduled),
		InFlight:  c.Count(fsm.StateInFlight),
		Completed: c.Count(fsm.StateCompleted),
		Failed:    c.Count(fsm.StateFailed),
		Canceled:  c.Count(fsm.StateCanceled),
		Blocked:   c.Count(fsm.StateBlocked),
	}
}
