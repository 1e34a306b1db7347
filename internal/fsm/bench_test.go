package fsm

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

var payload100 = `{"data":"` + strings.Repeat("x", 100-12) + `"}`

// BenchmarkApplyEnqueue: single-job Enqueue commands, no I/O (target: >= 1M/s).
func BenchmarkApplyEnqueue(b *testing.B) {
	m := New()
	c := Command{Kind: KindEnqueue, Jobs: []JobSpec{{Type: "bench", Payload: payload100}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Now = int64(i)
		m.Apply(&c)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkLeaseComplete1M: lease and complete 1M pending jobs in batches of
// 100 (target: <= 2 s for the million).
func BenchmarkLeaseComplete1M(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		b.StopTimer()
		m := fill(n)
		b.StartTimer()
		start := time.Now()
		now := int64(2e9)
		acks := make([]Ack, 0, 100)
		lease := Command{Kind: KindLease, Queues: []string{"default"}, Max: 100, Worker: "w"}
		for done := 0; done < n; {
			now++
			lease.Now = now
			r := m.Apply(&lease)
			acks = acks[:0]
			for _, j := range r.Jobs {
				acks = append(acks, Ack{ID: j.ID, LeaseID: j.LeaseID})
			}
			m.Apply(&Command{Kind: KindAck, Now: now, Acks: acks})
			done += len(r.Jobs)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/1M")
	}
}

func fill(n int) *Machine {
	m := New()
	const batch = 1000
	specs := make([]JobSpec, batch)
	for i := range specs {
		specs[i] = JobSpec{Type: "bench", Payload: payload100}
	}
	for i := 0; i < n; i += batch {
		m.Apply(&Command{Kind: KindEnqueue, Now: int64(1e9 + i), Jobs: specs})
	}
	return m
}

// BenchmarkSnapshot1M: write and restore a snapshot of 1M pending jobs with
// 100-byte payloads; reports the heap the restored machine holds.
func BenchmarkSnapshot1M(b *testing.B) {
	m := fill(1_000_000)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		start := time.Now()
		if _, err := m.Capture().WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		write := time.Since(start)
		raw := buf.Bytes()
		m2 := (*Machine)(nil)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start = time.Now()
		m2 = New()
		if err := m2.Restore(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
		restore := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(write.Seconds(), "write-s")
		b.ReportMetric(restore.Seconds(), "restore-s")
		b.ReportMetric(float64(len(raw))/1e6, "snapshot-MB")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "heap-MB")
		runtime.KeepAlive(m2)
	}
}

func TestFillSanity(t *testing.T) {
	m := fill(5000)
	if m.Len() != 5000 {
		t.Fatal(fmt.Sprint(m.Len()))
	}
}

// BenchmarkDelta1M: with 1M pending 100-byte jobs, the bytes of a delta
// after 10k changes against those of a full snapshot (target <= 5%). The
// changes are 10k new enqueues plus leases of the 10k oldest jobs (queue
// order: a few contiguous pages), or leases of 10k jobs picked at random
// (the worst case: nearly every page is touched).
func BenchmarkDelta1M(b *testing.B) {
	for _, tc := range []string{"fifo-10k", "random-10k"} {
		b.Run(tc, func(b *testing.B) {
			m := fill(1_000_000)
			full := countingWriter(0)
			if _, err := m.Capture().WriteTo(&full); err != nil {
				b.Fatal(err)
			}
			base := m.Capture().Mark()
			now := int64(2e9)
			switch tc {
			case "fifo-10k":
				specs := make([]JobSpec, 1000)
				for i := range specs {
					specs[i] = JobSpec{Type: "bench", Payload: payload100}
				}
				for i := 0; i < 10; i++ {
					m.Apply(&Command{Kind: KindEnqueue, Now: now, Jobs: specs})
					m.Apply(&Command{Kind: KindLease, Now: now, Queues: []string{"default"}, Max: 1000, Worker: "w", LeaseFor: 30e9})
				}
			case "random-10k":
				rng := uint64(1)
				for i := 0; i < 10_000; i++ {
					rng = rng*6364136223846793005 + 1442695040888963407
					m.Apply(&Command{Kind: KindCancel, Now: now, ID: 1 + (rng>>33)%1_000_000})
				}
			}
			snap := m.Capture()
			var delta countingWriter
			for b.Loop() {
				delta = 0
				if _, err := snap.WriteDeltaTo(&delta, base); err != nil {
					b.Fatal(err)
				}
			}
			dirty, pages := snap.DirtyPages(base)
			b.ReportMetric(float64(delta)/1e6, "delta-MB")
			b.ReportMetric(float64(full)/1e6, "full-MB")
			b.ReportMetric(100*float64(delta)/float64(full), "delta-%")
			b.ReportMetric(float64(dirty), "dirty-pages")
			b.ReportMetric(float64(pages), "pages")
		})
	}
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}
