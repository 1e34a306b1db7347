package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// Controls are the counters of periodic jobs and dependencies. Like the
// job counters they are counted from applied commands, so every node of a
// cluster counts the same (a node counts from its start).
type Controls struct {
	PeriodicFired   *prometheus.CounterVec // by schedule
	PeriodicSkipped *prometheus.CounterVec // by schedule
	Unblocked       prometheus.Counter
	DepCanceled     prometheus.Counter
	schedules       *prometheus.Desc
}

func newControls(reg prometheus.Registerer) *Controls {
	c := &Controls{
		PeriodicFired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_periodic_runs_fired_total", Help: "Runs of periodic schedules enqueued, by schedule (each scheduled time once).",
		}, []string{"schedule"}),
		PeriodicSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_periodic_runs_skipped_total", Help: "Runs of periodic schedules skipped by their catch_up policy (missed while the server was down), by schedule.",
		}, []string{"schedule"}),
		Unblocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beaver_dependency_released_total", Help: "Blocked jobs that became runnable because the last job they depended on finished.",
		}),
		DepCanceled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beaver_dependency_canceled_total", Help: "Jobs canceled because a job they depended on failed or was canceled.",
		}),
	}
	reg.MustRegister(c.PeriodicFired, c.PeriodicSkipped, c.Unblocked, c.DepCanceled)
	return c
}

// appliedControls counts what a command did to schedules and dependents.
func (m *Metrics) appliedControls(mc *fsm.Machine, c *fsm.Command, r *fsm.Result) {
	x := m.Controls
	x.Unblocked.Add(float64(r.Unblocked))
	x.DepCanceled.Add(float64(r.DepCanceled))
	if c.Kind != fsm.KindPeriodicFire || r.Err != nil || c.Periodic == nil {
		return
	}
	name := c.Periodic.Name
	for _, e := range r.Enqueued {
		if e.Duplicate {
			continue
		}
		x.PeriodicFired.WithLabelValues(name).Inc()
		if j, ok := mc.Get(e.ID); ok {
			m.job(j.Queue, j.Type).enqueued.Inc()
		}
	}
	if r.Skipped > 0 {
		x.PeriodicSkipped.WithLabelValues(name).Add(float64(r.Skipped))
	}
}
