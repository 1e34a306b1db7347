package httpapi

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

func TestStats(t *testing.T) {
	forEachReplica(t, func(t *testing.T, open func(*testing.T) replica.Replica) {
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		var now atomic.Int64
		now.Store(t0.UnixNano())
		sampled := api.Stats{
			Interval: "1s", Window: "15m0s", SampledAt: t0,
			Series:  api.StatsSeries{Enqueued: []float64{1, 2.5}, Completed: []float64{0, 1}, Failed: []float64{0, 0}, Fsyncs: []float64{3, 4}},
			WAL:     api.WALRates{Over: "10s", FsyncsPerSecond: 3.5, RecordsPerFsync: 2, BytesPerSecond: 100},
			ReadyAt: t0.Add(-time.Hour), JobsRecovered: 7,
		}
		var calls atomic.Int32
		s := newServer(t, open, func(o *Options) {
			o.Clock = func() time.Time { return time.Unix(0, now.Load()) }
			o.Stats = func() api.Stats { calls.Add(1); return sampled }
		})
		s.enqueue(api.EnqueueRequest{Queue: "a", Type: "t"}) // runnable since t0
		now.Add(int64(10 * time.Second))
		s.enqueue(api.EnqueueRequest{Queue: "a", Type: "t", Priority: 9})
		s.enqueue(api.EnqueueRequest{Queue: "a", Type: "t", Delay: "1h"})
		s.enqueue(api.EnqueueRequest{Queue: "b", Type: "t", Delay: "1h"})
		s.enqueue(api.EnqueueRequest{Queue: "c", Type: "t"})
		s.call("POST", "/v1/jobs/5/cancel", nil, 200, nil)
		now.Add(int64(90*time.Second + 1500*time.Microsecond))

		var st api.Stats
		s.call("GET", "/v1/stats", nil, 200, &st)
		if n := calls.Load(); n != 1 {
			t.Errorf("Stats called %d times", n)
		}
		if !st.Time.Equal(time.Unix(0, now.Load())) || st.Interval != "1s" || st.Window != "15m0s" || !st.SampledAt.Equal(t0) ||
			!slices.Equal(st.Series.Enqueued, []float64{1, 2.5}) || !slices.Equal(st.Series.Fsyncs, []float64{3, 4}) ||
			st.WAL != sampled.WAL || !st.ReadyAt.Equal(sampled.ReadyAt) || st.JobsRecovered != 7 {
			t.Errorf("sampled figures: %+v", st)
		}
		want := []api.QueueStats{
			{Queue: "a", Depth: 3, Pending: 2, OldestPendingSince: t0, OldestPendingAge: "1m40.002s"},
			{Queue: "b", Depth: 1},
			{Queue: "c"}, // only a canceled job
		}
		if !slices.Equal(st.Queues, want) {
			t.Errorf("queues\n got %+v\nwant %+v", st.Queues, want)
		}
		s.callErr("GET", "/v1/stats?queue=a", nil, 400, api.CodeInvalidArgument)
		s.call("GET", "/v1/stats?stale=true", nil, 200, nil)
	})
}

// Without a sampler the series are empty lists, not null, and the queues
// are still there.
func TestStatsWithoutSampler(t *testing.T) {
	s := newServer(t, replicaKinds[0].open, nil)
	r := s.do("GET", "/v1/stats", nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for _, want := range []string{`"enqueued":[]`, `"completed":[]`, `"failed":[]`, `"fsyncs":[]`, `"queues":[]`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("%s missing from %s", want, r.body)
		}
	}
}
