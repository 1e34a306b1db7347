// Package metrics holds Beaver-Raft's Prometheus collectors. Everything is
// registered on a Registerer the caller passes in (never the global one), so
// several servers can live in one process. Job depth gauges are computed from
// the state machine at scrape time, not maintained on the hot path.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Metrics are the server's collectors.
type Metrics struct {
	Enqueued       *prometheus.CounterVec
	Completed      *prometheus.CounterVec
	AttemptsFailed *prometheus.CounterVec
	Retried        *prometheus.CounterVec
	Dead           *prometheus.CounterVec
	Canceled       *prometheus.CounterVec
	LeasesExpired  prometheus.Counter
	Purged         prometheus.Counter
	RunDuration    *prometheus.HistogramVec
	WaitTime       *prometheus.HistogramVec
	WALSync        prometheus.Histogram
	WALBatch       prometheus.Histogram
	WALWritten     prometheus.Counter
	SnapshotDur    prometheus.Histogram
	SnapshotFailed prometheus.Counter
	HTTPRequests   *prometheus.CounterVec
	HTTPDuration   *prometheus.HistogramVec
	// Cluster mode: the time from raft.Apply to the command applied on the
	// leader, and proposals a follower forwarded to the leader.
	RaftApply     prometheus.Histogram
	RaftForwarded *prometheus.CounterVec
	// Periodic jobs and dependencies (controls.go).
	Controls *Controls

	series   sync.Map // jobKey -> *jobSeries
	queueCtl *queueMetrics
}

type jobKey struct{ queue, typ string }

// jobSeries holds the per-(queue, type) children, resolved once: looking
// labels up for every job costs more than running a noop job.
type jobSeries struct {
	enqueued, completed, attemptsFailed, retried, dead, canceled prometheus.Counter
	runDuration, waitTime                                        prometheus.Observer
}

func (m *Metrics) job(queue, typ string) *jobSeries {
	k := jobKey{queue, typ}
	if s, ok := m.series.Load(k); ok {
		return s.(*jobSeries)
	}
	s := &jobSeries{
		enqueued:       m.Enqueued.WithLabelValues(queue, typ),
		completed:      m.Completed.WithLabelValues(queue, typ),
		attemptsFailed: m.AttemptsFailed.WithLabelValues(queue, typ),
		retried:        m.Retried.WithLabelValues(queue, typ),
		dead:           m.Dead.WithLabelValues(queue, typ),
		canceled:       m.Canceled.WithLabelValues(queue, typ),
		runDuration:    m.RunDuration.WithLabelValues(queue, typ),
		waitTime:       m.WaitTime.WithLabelValues(queue, typ),
	}
	actual, _ := m.series.LoadOrStore(k, s)
	return actual.(*jobSeries)
}

// New creates the collectors and registers them, with the collectors that
// read rep at scrape time (rep may be set later with SetReplica).
func New(reg prometheus.Registerer) *Metrics {
	jobLabels := []string{"queue", "type"}
	m := &Metrics{
		Enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_enqueued_total", Help: "Jobs enqueued (duplicates of a unique key not counted).",
		}, jobLabels),
		Completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_completed_total", Help: "Jobs that completed.",
		}, jobLabels),
		AttemptsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_job_attempts_failed_total", Help: "Attempts that failed (errors, timeouts, panics).",
		}, jobLabels),
		Retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_retried_total", Help: "Failed attempts that were scheduled to run again.",
		}, jobLabels),
		Dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_dead_total", Help: "Jobs that failed for good (last attempt, or a permanent error).",
		}, jobLabels),
		Canceled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_jobs_canceled_total", Help: "Jobs canceled.",
		}, jobLabels),
		LeasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beaver_leases_expired_total", Help: "Leases that expired or were returned at restart.",
		}),
		Purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beaver_jobs_purged_total", Help: "Finished jobs removed after their retention.",
		}),
		RunDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "beaver_job_run_duration_seconds", Help: "Duration of attempts run by the in-process worker pool.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, jobLabels),
		WaitTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "beaver_job_wait_seconds", Help: "Time from a job becoming runnable to an in-process worker starting it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, jobLabels),
		WALSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "beaver_wal_fsync_duration_seconds", Help: "Duration of WAL fdatasync calls.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		WALBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "beaver_wal_batch_records", Help: "Records written per WAL batch (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		WALWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beaver_wal_written_bytes_total", Help: "Bytes written to the WAL.",
		}),
		SnapshotDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "beaver_snapshot_duration_seconds", Help: "Time to capture and write a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		SnapshotFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beaver_snapshot_failures_total", Help: "Snapshots that failed.",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_http_requests_total", Help: "HTTP API requests by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "beaver_http_request_duration_seconds", Help: "HTTP API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"route"}),
		RaftApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "beaver_raft_apply_duration_seconds", Help: "Cluster mode: time from proposing a command to raft on the leader to its being committed and applied.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		RaftForwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beaver_raft_forwarded_total", Help: "Cluster mode: calls this follower forwarded to the leader, by kind (propose, readindex, membership) and outcome (ok, error).",
		}, []string{"kind", "outcome"}),
	}
	reg.MustRegister(m.Enqueued, m.Completed, m.AttemptsFailed, m.Retried, m.Dead, m.Canceled,
		m.LeasesExpired, m.Purged, m.RunDuration, m.WaitTime, m.WALSync, m.WALBatch, m.WALWritten,
		m.SnapshotDur, m.SnapshotFailed, m.HTTPRequests, m.HTTPDuration, m.RaftApply, m.RaftForwarded)
	m.Controls = newControls(reg)
	m.queueCtl = newQueueMetrics(reg)
	return m
}

// ObserveRaftApply records one command's time from raft.Apply to applied.
func (m *Metrics) ObserveRaftApply(d time.Duration) { m.RaftApply.Observe(d.Seconds()) }

// ObserveForward counts one call forwarded to the leader.
func (m *Metrics) ObserveForward(kind string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.RaftForwarded.WithLabelValues(kind, outcome).Inc()
}

// ObserveWrite implements wal.Observer.
func (m *Metrics) ObserveWrite(records, bytes int) {
	m.WALBatch.Observe(float64(records))
	m.WALWritten.Add(float64(bytes))
}

// ObserveSync implements wal.Observer.
func (m *Metrics) ObserveSync(d time.Duration) { m.WALSync.Observe(d.Seconds()) }

// ObserveSnapshot is the local replica's OnSnapshot hook.
func (m *Metrics) ObserveSnapshot(d time.Duration, _ int64, err error) {
	if err != nil {
		m.SnapshotFailed.Inc()
		return
	}
	m.SnapshotDur.Observe(d.Seconds())
}

// Started implements worker.Observer.
func (m *Metrics) Started(queue, typ string, wait time.Duration) {
	m.job(queue, typ).waitTime.Observe(max(wait, 0).Seconds())
}

// Finished implements worker.Observer.
func (m *Metrics) Finished(queue, typ string, d time.Duration, _ string) {
	m.job(queue, typ).runDuration.Observe(d.Seconds())
}

// Applied is the replica's OnApply hook: it counts job transitions from each
// applied command. It runs under the replica's lock, after Apply.
func (m *Metrics) Applied(mc *fsm.Machine, c *fsm.Command, r *fsm.Result) {
	if r.Unblocked > 0 || r.DepCanceled > 0 || c.Kind == fsm.KindPeriodicFire {
		m.appliedControls(mc, c, r)
	}
	m.appliedQueueControls(c, r)
	switch c.Kind {
	case fsm.KindEnqueue:
		for i, e := range r.Enqueued {
			if e.Duplicate {
				continue
			}
			q := c.Jobs[i].Queue
			if q == "" {
				q = fsm.DefaultQueue
			}
			m.job(q, c.Jobs[i].Type).enqueued.Inc()
		}
	case fsm.KindAck, fsm.KindLease: // a Lease may carry the acks of a worker pool
		for i, err := range r.AckErrs {
			if err != nil {
				continue
			}
			j, ok := mc.Get(c.Acks[i].ID)
			if !ok {
				continue
			}
			js := m.job(j.Queue, j.Type)
			switch j.State {
			case fsm.StateCompleted:
				js.completed.Inc()
			case fsm.StateFailed:
				js.attemptsFailed.Inc()
				js.dead.Inc()
			default:
				js.attemptsFailed.Inc()
				js.retried.Inc()
			}
		}
	case fsm.KindCancel:
		if r.Err == nil && len(r.Jobs) == 1 {
			m.job(r.Jobs[0].Queue, r.Jobs[0].Type).canceled.Inc()
		}
	case fsm.KindTick, fsm.KindRecover:
		m.LeasesExpired.Add(float64(r.Expired))
	case fsm.KindPurge:
		m.Purged.Add(float64(r.Purged))
	}
}

// Instrument wraps an HTTP handler to count requests and time them.
func (m *Metrics) Instrument(route string, h http.Handler) http.Handler {
	dur := m.HTTPDuration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		dur.Observe(time.Since(start).Seconds())
		m.HTTPRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// StateCollector exports gauges computed at scrape time from the replica:
// jobs by queue and state, WAL and snapshot figures, last recovery.
type StateCollector struct {
	Replica func() replica.Replica // nil or returning nil: only static figures
	start   time.Time

	jobs, walBytes, walSegments, walLSN, appliedLSN, snapLast, snapSize, snapLSN, recDur, recRecords, recJobs, up, diskFull, walFailed *prometheus.Desc
	raftState, raftTerm, raftCommit, raftApplied, raftContact, raftChanges, raftVoters                                                 *prometheus.Desc
}

// NewStateCollector returns the scrape-time collector; register it.
func NewStateCollector(rep func() replica.Replica) *StateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &StateCollector{
		Replica:     rep,
		jobs:        d("beaver_jobs", "Jobs held, by queue and state (pending, scheduled, in_flight, blocked, completed, failed, canceled).", "queue", "state"),
		walBytes:    d("beaver_wal_bytes", "Bytes of WAL segments on disk."),
		walSegments: d("beaver_wal_segments", "WAL segment files on disk."),
		walLSN:      d("beaver_wal_last_lsn", "Last LSN written to the WAL."),
		appliedLSN:  d("beaver_applied_lsn", "Last log position applied to the state machine."),
		snapLast:    d("beaver_snapshot_last_success_timestamp_seconds", "Unix time of the last successful snapshot (0 if none since start)."),
		snapSize:    d("beaver_snapshot_last_size_bytes", "Size of the last snapshot file."),
		snapLSN:     d("beaver_snapshot_last_lsn", "Log position the last snapshot covers."),
		recDur:      d("beaver_recovery_duration_seconds", "Duration of the last recovery (start to ready)."),
		recRecords:  d("beaver_recovery_records_replayed", "WAL records replayed by the last recovery."),
		recJobs:     d("beaver_recovery_snapshot_jobs", "Jobs loaded from the snapshot by the last recovery."),
		up:          d("beaver_ready", "1 once recovery has finished and the server serves."),
		diskFull:    d("beaver_disk_full", "1 while the disk is full: enqueues are refused, completions keep working."),
		walFailed:   d("beaver_wal_failed", "1 once a WAL write or fsync failed: writes are refused until restart."),
		raftState:   d("beaver_raft_state", "Cluster mode: 1 for the node's raft state (follower, candidate, leader, shutdown), 0 for the others.", "state"),
		raftTerm:    d("beaver_raft_term", "Cluster mode: the node's current raft term."),
		raftCommit:  d("beaver_raft_commit_index", "Cluster mode: the last raft index this node knows committed."),
		raftApplied: d("beaver_raft_applied_index", "Cluster mode: the last raft index applied to this node's state machine."),
		raftContact: d("beaver_raft_last_contact_seconds", "Cluster mode: seconds since a follower last heard from the leader (0 on the leader)."),
		raftChanges: d("beaver_raft_leader_changes_total", "Cluster mode: changes of leader this node observed since start."),
		raftVoters:  d("beaver_raft_voters", "Cluster mode: voters in the cluster configuration."),
	}
}

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.walBytes, c.walSegments, c.walLSN, c.appliedLSN, c.snapLast, c.snapSize, c.snapLSN, c.recDur, c.recRecords, c.recJobs, c.up, c.diskFull, c.walFailed,
		c.raftState, c.raftTerm, c.raftCommit, c.raftApplied, c.raftContact, c.raftChanges, c.raftVoters} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	var rep replica.Replica
	if c.Replica != nil {
		rep = c.Replica()
	}
	if rep == nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	var queues []fsm.QueueCounts
	rep.Read(func(m *fsm.Machine) { _, queues = m.Counts() })
	for _, q := range queues {
		for _, s := range fsm.States() {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(q.Count(s)), q.Queue, s.String())
		}
	}
	st := rep.Status()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.walBytes, float64(st.WAL.Bytes))
	g(c.walSegments, float64(st.WAL.Segments))
	g(c.walLSN, float64(st.WAL.LastLSN))
	g(c.appliedLSN, float64(st.AppliedLSN))
	last := 0.0
	if !st.Snapshot.LastTime.IsZero() {
		last = float64(st.Snapshot.LastTime.UnixNano()) / 1e9
	}
	g(c.snapLast, last)
	g(c.snapSize, float64(st.Snapshot.LastSize))
	g(c.snapLSN, float64(st.Snapshot.LastLSN))
	g(c.recDur, st.Recovery.Duration.Seconds())
	g(c.recRecords, float64(st.Recovery.RecordsReplayed))
	g(c.recJobs, float64(st.Recovery.SnapshotJobs))
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g(c.diskFull, b(st.DiskFull))
	g(c.walFailed, b(st.Failed != nil))
	if cs := st.Cluster; cs != nil {
		for _, s := range []string{"follower", "candidate", "leader", "shutdown"} {
			ch <- prometheus.MustNewConstMetric(c.raftState, prometheus.GaugeValue, b(st.Role == s), s)
		}
		g(c.raftTerm, float64(cs.Term))
		g(c.raftCommit, float64(cs.CommitIndex))
		g(c.raftApplied, float64(cs.AppliedIndex))
		g(c.raftContact, cs.LastContact.Seconds())
		ch <- prometheus.MustNewConstMetric(c.raftChanges, prometheus.CounterValue, float64(cs.LeaderChanges))
		voters := 0
		for _, s := range cs.Servers {
			if s.Voter {
				voters++
			}
		}
		g(c.raftVoters, float64(voters))
	}
}
