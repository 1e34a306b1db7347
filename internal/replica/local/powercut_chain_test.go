package local

import (
	"fmt"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
)

// TestPowerCutEveryStepOfSnapshots cuts the power at every mutating
// operation, one after the other, of a snapshot that writes a delta; of one
// that writes a delta and then a new base (compaction) and prunes the chain
// before the previous one; and of the WAL truncation that follows each. Every
// recovery must open, skip no snapshot file (a cut leaves a temp file or a
// complete file, never a damaged one) and hold exactly the acknowledged
// state. The random campaign (TestPowerCut) aims at the same steps among
// everything else; this test walks through all of them.
func TestPowerCutEveryStepOfSnapshots(t *testing.T) {
	for _, sc := range []struct {
		name  string
		ratio float64
		keep  int
		snaps int  // snapshots before the one cut
		base  bool // the one cut writes a new base
		after int  // chains after it (pruning)
	}{
		{"delta", 3, 2, 2, false, 1},
		{"compaction-keep2", 0.25, 2, 4, true, 2},
		{"compaction-keep1", 0.25, 1, 4, true, 1},
	} {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			steps := 0
			for k := 1; ; k++ {
				fs := vfstest.New(uint64(k))
				if err := fs.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				fs.SyncAll()
				o := Options{Dir: dir, FS: fs, Clock: fixedClock, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40,
					SegmentSize: 32 << 10, SnapshotKeep: sc.keep, SnapshotDeltaRatio: sc.ratio, SnapshotBaseRate: -1}
				r := open(t, o)
				specs := make([]fsm.JobSpec, 1000)
				for i := range specs {
					specs[i] = fsm.JobSpec{Type: "t", Payload: fmt.Sprintf(`{"i":%d}`, i)}
				}
				for i := 0; i < 10; i++ { // 10,000 jobs: 3 pages
					propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: int64(i), Jobs: specs})
				}
				for s := 0; s <= sc.snaps; s++ {
					if s > 0 {
						if err := r.Snapshot(); err != nil {
							t.Fatal(err)
						}
					}
					// a tail page changed whole: the delta is about 30% of the base
					propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: int64(100 + s), Jobs: specs})
					propose(t, r, &fsm.Command{Kind: fsm.KindCancel, Now: int64(100 + s), ID: uint64(9990 - s)})
				}
				want := digest(r)
				ops := fs.Ops()
				fs.PowerCutAfter(k)
				err := r.Snapshot()
				fs.PowerCutAfter(0)
				if !fs.Down() {
					if err != nil {
						t.Fatalf("snapshot without a cut: %v", err)
					}
					steps = int(fs.Ops() - ops)
					cat, err := r.snaps.Catalog()
					if err != nil {
						t.Fatal(err)
					}
					newest := cat.Chains[0]
					if got := newest.Tip().LSN == newest.Base.LSN; got != sc.base || len(cat.Chains) != sc.after || len(cat.Unusable) != 0 {
						t.Fatalf("after the snapshot: new base %v, want %v; %d chains, want %d; catalog %+v", got, sc.base, len(cat.Chains), sc.after, cat)
					}
					r.Close()
					break
				}
				r.Close() // writes nothing: the FS is down
				fs.Restart()
				r2, err := Open(o)
				if err != nil {
					t.Fatalf("cut at step %d: open: %v", k, err)
				}
				rec := r2.Recovery()
				if got := digest(r2); got != want {
					t.Fatalf("cut at step %d: recovered a different state (recovery %+v)", k, rec)
				}
				if len(rec.SkippedSnapshot) != 0 {
					t.Fatalf("cut at step %d: recovery skipped %v", k, rec.SkippedSnapshot)
				}
				if err := r2.Close(); err != nil {
					t.Fatalf("cut at step %d: close: %v", k, err)
				}
			}
			if steps < 6 {
				t.Fatalf("the snapshot took only %d mutating operations: the scenario does not do what it says", steps)
			}
			t.Logf("%s: cut at each of the %d mutating operations of the snapshot and its WAL truncation", sc.name, steps)
		})
	}
}
