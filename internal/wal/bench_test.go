package wal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend measures Append throughput with SyncAlways and 100-byte
// records: every Append waits for its batch's fdatasync.
func BenchmarkAppend(b *testing.B) {
	for _, conc := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("appenders=%d", conc), func(b *testing.B) {
			benchAppenders(b, conc)
		})
	}
	b.Run("parallel", func(b *testing.B) {
		l := mustOpen(b, b.TempDir(), Options{})
		data := make([]byte, 100)
		b.SetParallelism(64) // 64 × GOMAXPROCS goroutines
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Append(1, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b, l, time.Since(start))
	})
}

func benchAppenders(b *testing.B, conc int) {
	l := mustOpen(b, b.TempDir(), Options{})
	data := make([]byte, 100)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := l.Append(1, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	report(b, l, time.Since(start))
}

func report(b *testing.B, l *Log, d time.Duration) {
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
	b.ReportMetric(float64(st.Appends)/float64(max(st.Batches, 1)), "records/batch")
	b.ReportMetric(float64(d.Microseconds())/float64(max(st.Batches, 1)), "µs/batch")
	mustClose(b, l)
}

// BenchmarkAppendAsync pipelines appends from one goroutine.
func BenchmarkAppendAsync(b *testing.B) {
	l := mustOpen(b, b.TempDir(), Options{})
	data := make([]byte, 100)
	var wg sync.WaitGroup
	done := func(_ uint64, err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		wg.Add(1)
		l.AppendAsync(1, data, done)
	}
	wg.Wait()
	report(b, l, time.Since(start))
}

func BenchmarkReplay(b *testing.B) {
	l := mustOpen(b, b.TempDir(), Options{Sync: SyncNever})
	data := make([]byte, 100)
	const n = 100000
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		l.AppendAsync(1, data, func(uint64, error) { wg.Done() })
	}
	wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		if err := l.Replay(0, func(uint64, uint8, []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	mustClose(b, l)
}
