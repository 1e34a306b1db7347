package server

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// applied is the replica's OnApply hook: metrics, and the worker pool's
// cancels of running jobs.
func (s *Server) applied(m *fsm.Machine, c *fsm.Command, r *fsm.Result) {
	s.met.Applied(m, c, r)
	s.cancels.Applied(m, c, r)
}

// QueueChanges turns the queues of the configuration into the changes to
// propose, sorted by queue name: each sets the fields the configuration
// gives.
func QueueChanges(qs config.QueuesConfig) []fsm.QueueChange {
	var out []fsm.QueueChange
	for _, name := range slices.Sorted(maps.Keys(qs)) {
		q := qs[name]
		ch := fsm.QueueChange{Queue: name}
		if q.Paused != nil {
			ch.Set |= fsm.SetPaused
			ch.Settings.Paused = *q.Paused
		}
		if q.Concurrency != nil {
			ch.Set |= fsm.SetConcurrency
			ch.Settings.Concurrency = *q.Concurrency
		}
		if q.Rate != nil {
			ch.Set |= fsm.SetRate
			ch.Settings.RateLimit, ch.Settings.RatePeriod = q.Rate.Limit, int64(q.Rate.Period.Duration())
		}
		out = append(out, ch)
	}
	return out
}

// differs reports whether applying ch to cur would change a setting.
func differs(cur fsm.QueueSettings, ch fsm.QueueChange) bool {
	s := ch.Settings
	return ch.Set&fsm.SetPaused != 0 && cur.Paused != s.Paused ||
		ch.Set&fsm.SetConcurrency != 0 && cur.Concurrency != s.Concurrency ||
		ch.Set&fsm.SetRate != 0 && (cur.RateLimit != s.RateLimit || cur.RatePeriod != s.RatePeriod)
}

// queueRetry paces the retries of a queue setting whose proposal failed
// for a while (a cluster between leaders).
const queueRetry = 200 * time.Millisecond

// applyQueueSettings proposes the configured queue settings that differ
// from the state, once per process: a single node calls it before its
// workers start, a cluster node when it first leads. It gives up (and
// tries again at the next leadership) when the context ends or a proposal
// fails for good.
func (s *Server) applyQueueSettings(ctx context.Context, rep replica.Replica) {
	if len(s.cfg.Queues) == 0 || s.queuesApplied.Load() {
		return
	}
	if err := replica.ReadBarrier(ctx, rep); err != nil {
		s.log.Warn("queue settings of the configuration not applied yet", "err", err)
		return
	}
	for _, ch := range QueueChanges(s.cfg.Queues) {
		var cur fsm.QueueSettings
		rep.Read(func(m *fsm.Machine) { cur = m.QueueInfo(ch.Queue).Settings })
		if !differs(cur, ch) {
			continue
		}
		for {
			res, err := rep.Propose(ctx, &fsm.Command{Kind: fsm.KindSetQueue, Now: s.o.Clock().UnixNano(), Queue: &ch})
			if err == nil && res.Err == nil {
				st := res.Queue.Settings
				s.log.Info("queue settings from the configuration", "queue", ch.Queue, "paused", st.Paused,
					"concurrency", st.Concurrency, "rate_limit", st.RateLimit, "rate_period", time.Duration(st.RatePeriod).String())
				break
			}
			if err == nil {
				// Validate checked the values: the machine refusing them is a bug
				s.log.Error("queue settings of the configuration refused", "queue", ch.Queue, "err", res.Err)
				break
			}
			if ctx.Err() != nil || !(errors.Is(err, replica.ErrNotLeader) || errors.Is(err, replica.ErrUnknownOutcome)) {
				s.log.Warn("queue settings of the configuration not applied yet", "queue", ch.Queue, "err", err)
				return
			}
			t := time.NewTimer(queueRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
	s.queuesApplied.Store(true)
}
