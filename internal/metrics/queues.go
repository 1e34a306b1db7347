package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// queueMetrics count what the queue controls did (docs/metrics.md).
type queueMetrics struct {
	canceledRunning *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	queueChanges    *prometheus.CounterVec
}

func newQueueMetrics(reg prometheus.Registerer) *queueMetrics {
	c := &queueMetrics{
		canceledRunning: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_canceled_running_total", Help: "Jobs canceled while they ran (their worker is told at its next report; in-process workers at once).",
		}, []string{"queue", "type"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_duplicate_total", Help: "Enqueues answered as duplicates of the job holding their unique key, by what held it: an unfinished job, or a finished one within its unique_for window.",
		}, []string{"queue", "held_by"}),
		queueChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_queue_changes_total", Help: "Changes of queue settings applied (pause, resume, limits).",
		}, []string{"queue"}),
	}
	reg.MustRegister(c.canceledRunning, c.duplicates, c.queueChanges)
	return c
}

// appliedQueueControls counts the transitions of the queue controls; Applied
// calls it.
func (m *Metrics) appliedQueueControls(c *fsm.Command, r *fsm.Result) {
	switch c.Kind {
	case fsm.KindEnqueue:
		for i, e := range r.Enqueued {
			if !e.Duplicate {
				continue
			}
			q := c.Jobs[i].Queue
			if q == "" {
				q = fsm.DefaultQueue
			}
			by := "unfinished"
			if e.State.Final() {
				by = "window"
			}
			m.queueCtl.duplicates.WithLabelValues(q, by).Inc()
		}
	case fsm.KindCancel:
		if r.Err == nil && r.CanceledRunning && len(r.Jobs) == 1 {
			m.queueCtl.canceledRunning.WithLabelValues(r.Jobs[0].Queue, r.Jobs[0].Type).Inc()
		}
	case fsm.KindSetQueue:
		if r.Err == nil && r.Queue != nil {
			m.queueCtl.queueChanges.WithLabelValues(r.Queue.Queue).Inc()
		}
	}
}

// QueueCollector exports the queue controls at scrape time: which queues
// are paused, their limits, their rate windows and what holds them back.
type QueueCollector struct {
	Replica func() replica.Replica
	Clock   func() time.Time

	paused, concurrency, rateLimit, ratePeriod, rateUsed, blocked, reservations *prometheus.Desc
}

// NewQueueCollector returns the collector; register it.
func NewQueueCollector(rep func() replica.Replica, clock func() time.Time) *QueueCollector {
	if clock == nil {
		clock = time.Now
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &QueueCollector{
		Replica:      rep,
		Clock:        clock,
		paused:       d("beaver_queue_paused", "1 while the queue is paused (leases skip it), for every queue that holds jobs or has settings.", "queue"),
		concurrency:  d("beaver_queue_concurrency_limit", "Most jobs of the queue in flight at once (queues with settings; 0: no limit).", "queue"),
		rateLimit:    d("beaver_queue_rate_limit", "Most leases of the queue per rate period (queues with settings; 0: no limit).", "queue"),
		ratePeriod:   d("beaver_queue_rate_period_seconds", "The queue's rate period (0: no rate limit).", "queue"),
		rateUsed:     d("beaver_queue_rate_window_used", "Leases counted in the queue's current rate window (0 once it is over).", "queue"),
		blocked:      d("beaver_queue_blocked", "1 while pending jobs of the queue wait because of reason: paused, concurrency (limit of jobs in flight reached) or rate (rate window used up).", "queue", "reason"),
		reservations: d("beaver_unique_reservations", "Unique keys kept reserved for purged jobs whose unique_for window has not ended."),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.paused, c.concurrency, c.rateLimit, c.ratePeriod, c.rateUsed, c.blocked, c.reservations} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	var rep replica.Replica
	if c.Replica != nil {
		rep = c.Replica()
	}
	if rep == nil {
		return
	}
	var queues []fsm.QueueInfo
	var reserved int
	rep.Read(func(m *fsm.Machine) { queues, reserved = m.QueueInfos(), m.Reservations() })
	now := c.Clock().UnixNano()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, q := range queues {
		s := q.Settings
		g(c.paused, b2f(s.Paused), q.Queue)
		if s == (fsm.QueueSettings{}) {
			continue
		}
		g(c.concurrency, float64(s.Concurrency), q.Queue)
		g(c.rateLimit, float64(s.RateLimit), q.Queue)
		g(c.ratePeriod, time.Duration(s.RatePeriod).Seconds(), q.Queue)
		used := 0
		if end := q.RateResetAt(); end > now {
			used = q.RateUsed
		}
		g(c.rateUsed, float64(used), q.Queue)
		why := ""
		if q.Count(fsm.StatePending) > 0 {
			why = q.Blocked(now)
		}
		for _, reason := range []string{"paused", "concurrency", "rate"} {
			g(c.blocked, b2f(why == reason), q.Queue, reason)
		}
	}
	g(c.reservations, float64(reserved))
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
