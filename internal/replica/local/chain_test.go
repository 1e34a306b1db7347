package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/snapshot"
)

// chainFixture fills a replica with jobs over several pages, then takes
// snapshots with changes to a few jobs between them, so that the snapshot
// directory holds a base and deltas. It returns the digest at the end.
func chainFixture(t *testing.T, o Options, snapshots int) [32]byte {
	t.Helper()
	o.NoSnapshotOnClose = true
	o.SnapshotEvery = 1 << 40
	r := open(t, o)
	specs := make([]fsm.JobSpec, 1000)
	for i := range specs {
		specs[i] = fsm.JobSpec{Type: "t", Payload: fmt.Sprintf(`{"i":%d}`, i)}
	}
	for i := 0; i < 40; i++ { // 40,000 jobs: 10 pages
		propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: int64(i), Jobs: specs})
	}
	for s := 0; s < snapshots; s++ {
		if err := r.Snapshot(); err != nil {
			t.Fatal(err)
		}
		// 1,000 new jobs (and one canceled): the tail pages, about one
		// page of ten, go into the next delta whole
		propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: int64(100 + s), Jobs: specs})
		propose(t, r, &fsm.Command{Kind: fsm.KindCancel, Now: int64(100 + s), ID: uint64(39990 - s)})
	}
	d := digest(r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

func snapFiles(t *testing.T, dir string) (full, delta []string) {
	t.Helper()
	full, _ = filepath.Glob(filepath.Join(dir, "snapshots", "*.snap"))
	delta, _ = filepath.Glob(filepath.Join(dir, "snapshots", "*.delta"))
	return full, delta
}

// TestDeltaChainRecovers: snapshots after the first are deltas a fraction
// of the base's size; reopening restores base + deltas + WAL tail to the
// same state, and the next snapshot continues the restored chain.
func TestDeltaChainRecovers(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	want := chainFixture(t, o, 4)
	full, delta := snapFiles(t, dir)
	if len(full) != 1 || len(delta) != 3 {
		t.Fatalf("want 1 base and 3 deltas, have %v %v", full, delta)
	}
	fst, _ := os.Stat(full[0])
	for _, d := range delta {
		st, _ := os.Stat(d)
		if st.Size()*5 > fst.Size() {
			t.Fatalf("delta %s is %d bytes, the base %d", d, st.Size(), fst.Size())
		}
	}
	o.NoSnapshotOnClose = true
	r := open(t, o)
	rec := r.Recovery()
	if got := digest(r); got != want {
		t.Fatalf("state differs after restoring the chain (recovery %+v)", rec)
	}
	if base := filepath.Base(delta[2]); rec.SnapshotLSN == 0 || !strings.Contains(base, fmt.Sprintf("%020d", rec.SnapshotLSN)) || rec.RecordsReplayed != 2 || len(rec.SkippedSnapshot) != 0 {
		t.Fatalf("recovery %+v: want the tip %s and 2 records replayed", rec, base)
	}
	// the next snapshot is a delta on the restored tip
	enqueue(t, r, 500, `{"x":1}`)
	if err := r.Snapshot(); err != nil {
		t.Fatal(err)
	}
	want = digest(r)
	r.Close()
	if _, delta := snapFiles(t, dir); len(delta) != 4 {
		t.Fatalf("want 4 deltas, have %v", delta)
	}
	r = open(t, o)
	defer r.Close()
	if digest(r) != want || r.Recovery().RecordsReplayed != 0 {
		t.Fatalf("after a delta on the restored chain: recovery %+v", r.Recovery())
	}
}

// TestChainCompaction: once the deltas outgrow the ratio, a new base is
// written and the chain before the previous one is deleted; the WAL is kept
// from the oldest kept chain's tip.
func TestChainCompaction(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SnapshotDeltaRatio = 0.3
	o.SegmentSize = 64 << 10
	want := chainFixture(t, o, 24)
	full, delta := snapFiles(t, dir)
	if len(full) != 2 || strings.Contains(full[0], fmt.Sprintf("%020d", 40)) {
		t.Fatalf("want the two newest bases after several compactions (the first one, at LSN 40, pruned), have %v %v", full, delta)
	}
	o.NoSnapshotOnClose = true
	r := open(t, o)
	defer r.Close()
	if digest(r) != want {
		t.Fatal("state differs after compactions")
	}
	cat, err := r.snaps.Catalog()
	if err != nil || len(cat.Chains) != 2 || len(cat.Unusable) != 0 {
		t.Fatalf("catalog %+v, %v", cat, err)
	}
	if first := r.wal.FirstLSN(); first > cat.Chains[1].Tip().LSN+1 {
		t.Fatalf("the WAL starts at %d, after the older chain's tip %d", first, cat.Chains[1].Tip().LSN)
	}
}

func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptDeltaFallsBack: a damaged delta ends the chain at the file
// before it; the WAL replays the rest and nothing is lost.
func TestCorruptDeltaFallsBack(t *testing.T) {
	for _, which := range []int{0, 1, 2} {
		t.Run(fmt.Sprint(which), func(t *testing.T) {
			dir := t.TempDir()
			o := testOpts(dir)
			o.SegmentSize = 16 << 10 // the WAL is truncated up to the chain's base
			want := chainFixture(t, o, 4)
			_, delta := snapFiles(t, dir)
			flipMiddle(t, delta[which])
			o.NoSnapshotOnClose = true
			r := open(t, o)
			defer r.Close()
			rec := r.Recovery()
			if digest(r) != want {
				t.Fatalf("state differs (recovery %+v)", rec)
			}
			if !slices.Equal(rec.SkippedSnapshot, delta[which:]) {
				t.Fatalf("skipped %v, want %v", rec.SkippedSnapshot, delta[which:])
			}
		})
	}
}

// TestCorruptOnlySnapshotRebuildsFromWAL: the only snapshot is damaged, but
// the WAL still holds every record since LSN 1: the state is rebuilt from
// it, and the damage is reported.
func TestCorruptOnlySnapshotRebuildsFromWAL(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	want := chainFixture(t, o, 1)
	full, _ := snapFiles(t, dir)
	flipMiddle(t, full[0])
	o.NoSnapshotOnClose = true
	r := open(t, o)
	defer r.Close()
	rec := r.Recovery()
	if digest(r) != want || rec.SnapshotLSN != 0 || !slices.Equal(rec.SkippedSnapshot, full) {
		t.Fatalf("recovery %+v: want a rebuild from the WAL skipping %v", rec, full)
	}
}

// TestCorruptSnapshotRefusedWithoutWAL: the only chain is damaged and the
// WAL before it was truncated: the server refuses, naming the file, the
// offset and the missing records.
func TestCorruptSnapshotRefusedWithoutWAL(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SnapshotKeep = 1
	o.SegmentSize = 16 << 10
	chainFixture(t, o, 2)
	full, _ := snapFiles(t, dir)
	flipMiddle(t, full[0])
	o.NoSnapshotOnClose = true
	_, err := Open(o)
	var ce *snapshot.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, snapshot.ErrCorrupt) || ce.File != full[0] {
		t.Fatalf("want a refusal naming %s: %v", full[0], err)
	}
	for _, s := range []string{"offset", "records 1..", "missing", filepath.Base(full[0])} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("the refusal does not say %q: %v", s, err)
		}
	}
}

// TestThrottledBaseStopsOnClose: a new base written at a crawl is abandoned
// when the replica closes, and the chain stays usable.
func TestThrottledBaseStopsOnClose(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(dir)
	o.SnapshotDeltaRatio = 0.0001
	o.SnapshotBaseRate = 1 // a byte a second: it never finishes
	o.SnapshotEvery = 1 << 40
	o.NoSnapshotOnClose = true
	published := make(chan struct{}, 4)
	o.OnSnapshot = func(_ time.Duration, _ int64, err error) {
		if err == nil {
			published <- struct{}{}
		}
	}
	r := open(t, o)
	for i := 0; i < 20; i++ {
		enqueue(t, r, int64(i), `{}`)
	}
	if err := r.Snapshot(); err != nil { // the first base: not throttled
		t.Fatal(err)
	}
	<-published
	enqueue(t, r, 30, `{}`)
	want := digest(r)
	done := make(chan error, 1)
	go func() { done <- r.Snapshot() }() // a delta, then a crawling base
	<-published                          // the delta is in; the base crawls
	r.Close()                            // stops the crawl, waits for Snapshot
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, delta := snapFiles(t, dir); len(delta) != 1 {
		t.Fatalf("want the delta published, have %v", delta)
	}
	r = open(t, o)
	defer r.Close()
	if digest(r) != want {
		t.Fatal("state differs after an abandoned base")
	}
}
