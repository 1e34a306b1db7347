package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

var payload100 = `{"data":"` + strings.Repeat("x", 100-12) + `"}`

// proposeParallel proposes n single-job enqueues from g goroutines and
// returns each proposal's latency.
func proposeParallel(tb testing.TB, r *Replica, g, n int) []time.Duration {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fsm.Command{Kind: fsm.KindEnqueue, Jobs: []fsm.JobSpec{{Type: "bench", Payload: payload100}}}
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				cmd := c
				start := time.Now()
				cmd.Now = start.UnixNano()
				res, err := r.Propose(context.Background(), &cmd)
				lat[i] = time.Since(start)
				if err != nil || res.Err != nil {
					tb.Error(err, res.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat
}

// BenchmarkPropose: durable single-job enqueues (sync always) from 64 and
// 256 concurrent proposers. Targets: >= 100k/s and >= 200k/s.
func BenchmarkPropose(b *testing.B) {
	for _, g := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("proposers=%d", g), func(b *testing.B) {
			r, err := Open(Options{Dir: b.TempDir(), NoSnapshotOnClose: true})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.ResetTimer()
			proposeParallel(b, r, g, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// fillDir makes a data directory with n pending jobs in a snapshot and then
// walRecords single-job enqueues in the WAL after it.
func fillDir(tb testing.TB, dir string, n, walRecords int) {
	r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40})
	if err != nil {
		tb.Fatal(err)
	}
	specs := make([]fsm.JobSpec, 1000)
	for i := range specs {
		specs[i] = fsm.JobSpec{Type: "bench", Payload: payload100}
	}
	for i := 0; i < n; i += len(specs) {
		if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(), Jobs: specs}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := r.Snapshot(); err != nil {
		tb.Fatal(err)
	}
	proposeParallel(tb, r, 256, walRecords)
	if err := r.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkRecovery1M: open a directory holding 1M pending jobs (100-byte
// payloads) in a snapshot plus 100k WAL records. Target: <= 0.5 s.
func BenchmarkRecovery1M(b *testing.B) {
	dir := b.TempDir()
	fillDir(b, dir, 1_000_000, 100_000)
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		start := time.Now()
		r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true})
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		rec := r.Recovery()
		r.Close()
		if rec.RecordsReplayed != 100_000 || rec.SnapshotJobs != 1_000_000 {
			b.Fatalf("recovery: %+v", rec)
		}
		b.ReportMetric(d.Seconds(), "recovery-s")
	}
	// resident memory of a fresh process that recovered the directory
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("rss child: %v\n%s", err, out)
	}
	var rssKB, hwmKB, heapMB float64
	fmt.Sscanf(strings.TrimSpace(string(out)), "rss_kb=%f hwm_kb=%f heap_mb=%f", &rssKB, &hwmKB, &heapMB)
	b.ReportMetric(rssKB/1024, "rss-MiB")
	b.ReportMetric(hwmKB/1024, "peak-rss-MiB")
	b.ReportMetric(heapMB, "heap-MB")
}

// BenchmarkRecovery1MChain: open a directory holding 1M pending jobs in a
// chain (a base, then three deltas each after 10k enqueues and 10k leases)
// plus 100k WAL records after it. Target: <= 0.5 s.
func BenchmarkRecovery1MChain(b *testing.B) {
	dir := b.TempDir()
	fillDir(b, dir, 1_000_000, 0)
	r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	for d := 0; d < 3; d++ {
		proposeParallel(b, r, 64, 10_000)
		for i := 0; i < 10; i++ {
			if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindLease, Now: time.Now().UnixNano(), Queues: []string{"default"}, Max: 1000, Worker: "w", LeaseFor: int64(time.Hour)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
	proposeParallel(b, r, 256, 100_000)
	r.Close()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		start := time.Now()
		// no snapshot triggers: the Recover command Open proposes for the
		// leased jobs would otherwise start a snapshot that, if it wins the
		// race with Close, leaves nothing to replay the next time
		r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40, SnapshotBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		rec := r.Recovery()
		r.Close()
		if rec.RecordsReplayed < 100_000 || rec.SnapshotJobs < 1_000_000 {
			b.Fatalf("recovery: %+v", rec)
		}
		b.ReportMetric(d.Seconds(), "recovery-s")
	}
}

const rssChildEnv = "BEAVER_RSS_CHILD_DIR"

// rssChild opens dir, and prints its resident set size once recovered.
func rssChild(dir string) {
	r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	// what Open's background goroutine does once recovery is done
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	var rss, hwm string
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss = f[1]
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm = f[1]
		}
	}
	fmt.Printf("rss_kb=%s hwm_kb=%s heap_mb=%.1f\n", rss, hwm, float64(ms.HeapAlloc)/1e6)
	runtime.KeepAlive(r)
	os.Exit(0)
}

// BenchmarkProposeDuringSnapshot: 64 proposers enqueue while snapshots of a
// 1M-job state are written back to back (with snapshot chains: deltas,
// and a throttled new base whenever a chain outgrows its ratio). Target:
// p99 <= 5 ms.
func BenchmarkProposeDuringSnapshot(b *testing.B) {
	dir := b.TempDir()
	fillDir(b, dir, 1_000_000, 0)
	o := Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40}
	// BENCH_DELTA_RATIO and BENCH_BASE_RATE (bytes/s) vary the chain options
	fmt.Sscan(os.Getenv("BENCH_DELTA_RATIO"), &o.SnapshotDeltaRatio)
	fmt.Sscan(os.Getenv("BENCH_BASE_RATE"), &o.SnapshotBaseRate)
	var bases atomic.Int64
	o.OnSnapshot = func(_ time.Duration, size int64, _ error) {
		if size > 50<<20 {
			bases.Add(1)
		}
	}
	r, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if os.Getenv("BENCH_NO_SNAPSHOT") != "" {
			return // baseline
		}
		for {
			// back to back, as soon as there is something new to write
			select {
			case <-stop:
				return
			case <-r.Changed():
			}
			if err := r.Snapshot(); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	b.ResetTimer()
	lat := proposeParallel(b, r, 64, max(b.N, 20000))
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	st := r.Status().Snapshot
	b.ReportMetric(float64(st.Taken), "snapshots")
	b.ReportMetric(float64(bases.Load()), "full-snapshots")
}

// BenchmarkRecovery1MBatches: open a directory laid out as a server that
// took 1M jobs in batches of 1000 leaves it: half of them in a snapshot,
// the other half in 500 WAL records of 1000 enqueues each.
func BenchmarkRecovery1MBatches(b *testing.B) {
	dir := b.TempDir()
	fillDir(b, dir, 500_000, 0)
	r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	specs := make([]fsm.JobSpec, 1000)
	for i := range specs {
		specs[i] = fsm.JobSpec{Type: "bench", Payload: payload100}
	}
	for range 500 {
		if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(), Jobs: specs}); err != nil {
			b.Fatal(err)
		}
	}
	r.Close()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		start := time.Now()
		r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true})
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		rec := r.Recovery()
		r.Close()
		if rec.RecordsReplayed != 500 || rec.SnapshotJobs != 500_000 {
			b.Fatalf("recovery: %+v", rec)
		}
		b.ReportMetric(d.Seconds(), "recovery-s")
	}
}
