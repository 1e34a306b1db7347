package raftlog

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	raftbench "github.com/hashicorp/raft/bench"
)

// BenchmarkStoreLogs stores batches of entries of 100 bytes in both stores
// (each StoreLogs returns once durable: one fdatasync here, two in bolt),
// in the temporary directory's file system:
//
//	go test -run '^$' -bench BenchmarkStoreLogs -benchtime 2000x -count 3 ./internal/replica/raftrep/raftlog/
func BenchmarkStoreLogs(b *testing.B) {
	for _, k := range kinds {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", k.name, batch), func(b *testing.B) {
				s := k.open(b, b.TempDir())
				defer s.Close()
				logs := make([]*raft.Log, batch)
				data := make([]byte, 100)
				next := uint64(1)
				b.SetBytes(int64(batch * len(data)))
				b.ResetTimer()
				for range b.N {
					for i := range logs {
						logs[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// raft's own benchmark functions (github.com/hashicorp/raft/bench) that
// suit a monotonic store, for both stores.
func BenchmarkRaftBench(b *testing.B) {
	for _, k := range kinds {
		b.Run(k.name+"/StoreLogs", func(b *testing.B) {
			s := k.open(b, b.TempDir())
			defer s.Close()
			raftbench.StoreLogs(b, s)
		})
		b.Run(k.name+"/GetLog", func(b *testing.B) {
			s := k.open(b, b.TempDir())
			defer s.Close()
			raftbench.GetLog(b, s)
		})
		b.Run(k.name+"/SetUint64", func(b *testing.B) {
			s := k.open(b, b.TempDir())
			defer s.Close()
			raftbench.SetUint64(b, s)
		})
	}
}
