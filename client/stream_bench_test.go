package client_test

import (
	"context"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// BenchmarkEnqueueParallel: 64 goroutines per core call Enqueue on one
// Client of a durable in-process server (sync always), on the enqueue
// stream and with a request per call.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []client.Option
	}{{"stream", nil}, {"single", []client.Option{client.WithoutStream()}}} {
		b.Run(mode.name, func(b *testing.B) {
			c := serve(b, newAPI(b), mode.opts...)
			payload := []byte(`{"to":"ada@example.com","body":"0123456789012345678901234567890123456789012345678901234567890123"}`)
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Enqueue(context.Background(), api.EnqueueRequest{Type: "noop", Payload: payload}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
