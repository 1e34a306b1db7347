package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/wal"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if dir := os.Getenv(rssChildEnv); dir != "" {
		rssChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

const clockNow int64 = 1_000_000_000_000

func testOpts(dir string) Options {
	return Options{Dir: dir, Clock: fixedClock}
}

func open(t *testing.T, o Options) *Replica {
	t.Helper()
	r, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func propose(t *testing.T, r *Replica, c *fsm.Command) fsm.Result {
	t.Helper()
	res, err := r.Propose(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func enqueue(t *testing.T, r *Replica, now int64, payload string) uint64 {
	t.Helper()
	res := propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "t", Payload: payload}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res.Enqueued[0].ID
}

func digest(r *Replica) (d [32]byte) {
	r.Read(func(m *fsm.Machine) { d = m.Digest() })
	return d
}

func TestReopenKeepsEverything(t *testing.T) {
	for _, snapOnClose := range []bool{false, true} {
		t.Run(fmt.Sprint("snapshotOnClose=", snapOnClose), func(t *testing.T) {
			dir := t.TempDir()
			o := testOpts(dir)
			o.NoSnapshotOnClose = !snapOnClose
			o.SnapshotEvery = 7 // several snapshots and truncations on the way
			o.SegmentSize = 4 << 10
			r := open(t, o)
			for i := 0; i < 200; i++ {
				enqueue(t, r, int64(i), fmt.Sprintf(`{"i":%d}`, i))
			}
			l := propose(t, r, &fsm.Command{Kind: fsm.KindLease, Now: 300, Queues: []string{"default"}, Max: 10})
			propose(t, r, &fsm.Command{Kind: fsm.KindAck, Now: 301, Acks: []fsm.Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID, Result: `"done"`}}})
			before := digest(r)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			r2 := open(t, o)
			defer r2.Close()
			var j fsm.Job
			var total fsm.QueueCounts
			r2.Read(func(m *fsm.Machine) {
				j, _ = m.Get(l.Jobs[0].ID)
				total, _ = m.Counts()
			})
			if j.State != fsm.StateCompleted || j.Result != `"done"` {
				t.Fatalf("completed job after reopen: %+v", j)
			}
			// the 9 other leased jobs were in flight: back to pending, attempt counted
			if total.Count(fsm.StatePending) != 199 || total.Count(fsm.StateInFlight) != 0 {
				t.Fatalf("counts after reopen: %+v", total)
			}
			rec := r2.Recovery()
			if rec.RequeuedJobs != 9 {
				t.Fatalf("requeued %d, want 9", rec.RequeuedJobs)
			}
			if snapOnClose && rec.RecordsReplayed != 0 {
				t.Fatalf("a snapshot on close should leave nothing to replay, replayed %d", rec.RecordsReplayed)
			}
			if !snapOnClose && rec.SnapshotLSN == 0 {
				t.Fatal("expected snapshots to have been taken while running")
			}
			_ = before
			ws := r2.Status().WAL
			if ws.FirstLSN > rec.SnapshotLSN+1 {
				t.Fatalf("WAL starts at %d, after the snapshot at %d", ws.FirstLSN, rec.SnapshotLSN)
			}
		})
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	r := open(t, testOpts(dir))
	defer r.Close()
	_, err := Open(testOpts(dir))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestConcurrentProposals(t *testing.T) {
	o := testOpts(t.TempDir())
	o.SnapshotEvery = 500
	r := open(t, o)
	var wg sync.WaitGroup
	ids := make(chan uint64, 64*50)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				res, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: int64(i), Jobs: []fsm.JobSpec{{Type: "t"}}})
				if err != nil || res.Err != nil {
					t.Error(err, res.Err)
					return
				}
				ids <- res.Enqueued[0].ID
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %d twice", id)
		}
		seen[id] = true
	}
	want := digest(r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	o.NoSnapshotOnClose = true
	r2 := open(t, o)
	defer r2.Close()
	if got := digest(r2); got != want || len(seen) != 3200 {
		t.Fatalf("state after reopen differs (%d ids)", len(seen))
	}
}

func TestCorruptNewestSnapshotFallsBack(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.NoSnapshotOnClose = true
	o.SnapshotDeltaRatio = -1 // full snapshots only: chains of one
	r := open(t, o)
	for i := 0; i < 50; i++ {
		enqueue(t, r, int64(i), `{}`)
		if i == 20 || i == 40 {
			if err := r.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := digest(r)
	r.Close()
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.snap"))
	if len(snaps) != 2 {
		t.Fatalf("want 2 snapshots, have %v", snaps)
	}
	newest := snaps[len(snaps)-1]
	b, _ := os.ReadFile(newest)
	b[len(b)/2] ^= 0x40
	os.WriteFile(newest, b, 0o600)

	r2 := open(t, o)
	defer r2.Close()
	rec := r2.Recovery()
	if len(rec.SkippedSnapshot) != 1 || rec.SnapshotLSN != 21 {
		t.Fatalf("recovery %+v: want fallback to the snapshot at LSN 21", rec)
	}
	if digest(r2) != want {
		t.Fatal("state after fallback differs")
	}
}

func TestWALGapRefused(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.NoSnapshotOnClose = true
	o.SegmentSize = 1 << 10
	r := open(t, o)
	for i := 0; i < 100; i++ {
		enqueue(t, r, int64(i), `{"pad":"................................"}`)
	}
	r.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	os.Remove(segs[1])
	_, err := Open(o)
	if !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("open with a missing middle segment: %v", err)
	}
}

func TestChangedWakesOnEnqueue(t *testing.T) {
	r := open(t, testOpts(t.TempDir()))
	defer r.Close()
	ch := r.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	enqueue(t, r, 1, `{}`)
	<-ch // closed by the enqueue; the test would hang otherwise
}

func TestProposeAfterClose(t *testing.T) {
	r := open(t, testOpts(t.TempDir()))
	r.Close()
	if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindTick}); err == nil {
		t.Fatal("propose after close succeeded")
	}
}

func TestSnapshotByBytes(t *testing.T) {
	o := testOpts(t.TempDir())
	o.SnapshotBytes = 4 << 10
	o.NoSnapshotOnClose = true
	took := make(chan struct{}, 16)
	o.OnSnapshot = func(time.Duration, int64, error) { took <- struct{}{} }
	r := open(t, o)
	defer r.Close()
	big := `{"pad":"` + strings.Repeat("x", 1000) + `"}`
	for i := 0; i < 10; i++ { // 10 records, ~10 KiB: over the byte trigger, far under the record one
		enqueue(t, r, int64(i), big)
	}
	select {
	case <-took:
	case <-time.After(20 * time.Second):
		t.Fatal("no snapshot after the byte trigger was crossed")
	}
}

func TestRecoveryMemoryLimitWithinRAM(t *testing.T) {
	for _, c := range []struct{ limit, ram, want int64 }{
		{1 << 30, 0, 1 << 30},        // RAM unknown: as asked
		{1 << 30, 8 << 30, 1 << 30},  // well within
		{40 << 30, 8 << 30, 4 << 30}, // a data directory larger than RAM
		{5 << 30, 8 << 30, 4 << 30},  // just over half
	} {
		if got := capRecoveryLimit(c.limit, c.ram); got != c.want {
			t.Errorf("capRecoveryLimit(%d, %d) = %d, want %d", c.limit, c.ram, got, c.want)
		}
	}
	if physicalMemory() <= 0 && runtime.GOOS == "linux" {
		t.Errorf("physicalMemory %d on linux", physicalMemory())
	}
}
