package worker

import (
	"context"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

// BenchmarkPoolNoop: 256 workers run b.N pending noop jobs of a durable
// replica (sync always), with Cancels hooked as the server does; from the
// pool's start to the last completion.
func BenchmarkPoolNoop(b *testing.B) {
	cancels := NewCancels()
	r, err := local.Open(local.Options{Dir: b.TempDir(), NoSnapshotOnClose: true, OnApply: cancels.Applied})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	specs := make([]fsm.JobSpec, 1000)
	for i := range specs {
		specs[i] = fsm.JobSpec{Type: "noop", Payload: `{"n":1}`}
	}
	for n := 0; n < b.N; n += len(specs) {
		k := min(len(specs), b.N-n)
		if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(), Jobs: specs[:k]}); err != nil {
			b.Fatal(err)
		}
	}
	noop := handlers.HandlerFunc(func(context.Context, *handlers.Job) ([]byte, error) { return nil, nil })
	p := New(Options{Replica: r, Handlers: map[string]handlers.Handler{"noop": noop}, Workers: 256, Cancels: cancels})
	ctx, stop := context.WithCancel(context.Background())
	b.ResetTimer()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for {
		ch := r.Changed()
		var completed int
		r.Read(func(m *fsm.Machine) { total, _ := m.Counts(); completed = total.Count(fsm.StateCompleted) })
		if completed >= b.N {
			break
		}
		<-ch
	}
	b.StopTimer()
	stop()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
