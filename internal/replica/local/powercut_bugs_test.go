package local

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
)

// Bugs found by the power-cut campaign, each shown by a deterministic test.
// Those still open are skipped; -powercut.knownbugs runs them.

func skipKnownBug(t *testing.T, what string) {
	t.Helper()
	if !*powercutKnown {
		t.Skip("known bug: " + what + " (run with -powercut.knownbugs)")
	}
}

// TestPowerCutSnapshotAfterFailedBatch (regression test; the bug is fixed
// in wal.Log.serveSyncs): a snapshot that starts while a WAL batch is being
// written waits in wal.Log.Sync for that batch's records. When the write
// failed, the Sync was never answered (serveSyncs only answered requests
// whose records were written, and fail() answered none), so the snapshot
// hung holding snapMu (Status hung too), and when it was the background
// snapshot, Replica.Close hung in bg.Wait before closing the WAL, the only
// thing that would have answered it.
//
// The test holds the failing write inside the file system until the
// snapshot is waiting in Sync, then lets it fail; synctest.Wait then tells
// a snapshot blocked for good from a slow one.
func TestPowerCutSnapshotAfterFailedBatch(t *testing.T) {
	fs := vfstest.New(1)
	dir := t.TempDir()
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fs.SyncAll()
	o := Options{Dir: dir, FS: fs, Clock: fixedClock, NoSnapshotOnClose: true}
	// Outside the bubble: a record for the snapshot to cover. (Nothing in
	// the bubble may go through Propose: its pooled proposals would carry
	// the bubble's channels out to other tests.)
	r, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, r, clockNow, `{"first":1}`)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		r, err := Open(o) // replays the record: the snapshot has something to cover
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		fs.Inject(vfstest.Fault{
			Op:     vfstest.OpWrite,
			Match:  func(p string) bool { return strings.HasSuffix(p, ".wal") },
			Err:    syscall.EIO,
			OnFire: func(vfstest.Op, string) { <-release }, // the writer goroutine waits here
		})
		c := fsm.Command{Kind: fsm.KindEnqueue, Now: clockNow, Jobs: []fsm.JobSpec{{Type: "t", Payload: `{"second":2}`}}}
		r.wal.AppendAsync(recordCommand, fsm.AppendCommand(nil, &c), nil)
		synctest.Wait() // the writer is inside the failing write

		snapped := make(chan error, 1)
		go func() { snapped <- r.Snapshot() }()
		synctest.Wait() // the snapshot waits in wal.Sync for the record being written

		close(release)  // the write fails: the log fails
		synctest.Wait() // everything that can run has run
		if r.wal.Err() == nil {
			t.Fatal("the log did not fail")
		}
		select {
		case err := <-snapped:
			if err == nil {
				t.Fatal("the snapshot succeeded although the log failed")
			}
		default:
			t.Error("Snapshot is blocked for good after the WAL failed: wal.Log.Sync waits for a record that will never be written")
			r.wal.Close() // answers the Sync, so the bubble can end
			<-snapped
		}
		r.Close()
	})
}

// TestPowerCutTruncationStuckAfterFailedDirSync: wal.Log.TruncateBefore
// deletes a segment with removeFile (Remove, then SyncDir of the
// directory). When the Remove succeeds and the SyncDir fails, it returns
// the error before dropping the segment from l.segs, so the next
// TruncateBefore tries to remove the same file again, gets ENOENT, and
// stops there: no segment is ever deleted again until a restart, and the
// WAL grows without bound (DESIGN §1.4 and §1.5: restart time and disk
// use are bounded by the WAL written since the last snapshot).
func TestPowerCutTruncationStuckAfterFailedDirSync(t *testing.T) {
	skipKnownBug(t, "a failed directory fsync in wal.Log.TruncateBefore leaves a deleted segment in the segment list")
	fs := vfstest.New(1)
	dir := t.TempDir()
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fs.SyncAll()
	r, err := Open(Options{Dir: dir, FS: fs, Clock: fixedClock, SegmentSize: 1 << 10, SnapshotKeep: 1, NoSnapshotOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	segments := func() int {
		names, err := fs.ReadDir(dir + "/wal")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, name := range names {
			if strings.HasSuffix(name, ".wal") {
				n++
			}
		}
		return n
	}
	fill := func(from int) {
		for i := from; i < from+40; i++ {
			enqueue(t, r, clockNow, fmt.Sprintf(`{"i":%d}`, i))
		}
	}
	fill(0)
	fs.Inject(vfstest.Fault{Op: vfstest.OpSyncDir, Match: func(p string) bool { return strings.HasSuffix(p, "/wal") }})
	if err := r.Snapshot(); err == nil {
		t.Fatal("the injected directory fsync failure was not reported")
	}
	for round := 1; round <= 3; round++ {
		fill(round * 100)
		before := segments()
		if err := r.Snapshot(); err != nil {
			t.Errorf("round %d: snapshot with a healthy disk: %v", round, err)
		}
		if after := segments(); after >= before {
			t.Errorf("round %d: %d segment files before the snapshot, %d after: the WAL is no longer truncated", round, before, after)
		}
	}
}

// TestPowerCutLostWritebackThenRestart: when an fdatasync of the active
// segment fails, Linux (since 4.13) may mark the dirty pages clean without
// having written them: the page cache still holds the batch, the disk does
// not (vfstest.Fault.Lose). The log fails, as it should. But if the process
// is then restarted without a power cycle, recovery reads the segment
// through the page cache, keeps the batch that never reached the disk, and
// appends after it. Those later appends are fdatasynced and acknowledged,
// yet after the next power cut the unwritten batch is a hole in the middle
// of the segment: recovery refuses to start (an intact record after a
// damaged one), and Repair would cut the acknowledged records after the
// hole. Cutting the segment back to its last synced size (truncate +
// fdatasync, as the disk-full path's cutBack does) before failing the log
// makes cache and disk agree again; a prototype of that makes this test
// pass.
func TestPowerCutLostWritebackThenRestart(t *testing.T) {
	skipKnownBug(t, "after a failed fdatasync the page cache and the disk disagree, and a restart without a power cycle builds on records that are not on disk")
	for seed := uint64(0); seed < 40; seed++ {
		fs := vfstest.New(seed)
		dir := t.TempDir()
		if err := fs.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		fs.SyncAll()
		o := Options{Dir: dir, FS: fs, Clock: fixedClock, NoSnapshotOnClose: true}
		r, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			enqueue(t, r, clockNow, fmt.Sprintf(`{"before":%d}`, i))
		}
		fs.Inject(vfstest.Fault{Op: vfstest.OpSync, Lose: true, Match: func(p string) bool { return strings.HasSuffix(p, ".wal") }})
		c := fsm.Command{Kind: fsm.KindEnqueue, Now: clockNow, Jobs: []fsm.JobSpec{{Type: "t", Payload: `{"failed":1}`}}}
		if _, err := r.Propose(context.Background(), &c); err == nil {
			t.Fatal("the proposal whose fdatasync failed was acknowledged")
		}
		r.Close()
		fs.Kill() // the process restarts, the machine does not
		fs.Restart()
		r, err = Open(o)
		if err != nil {
			t.Fatalf("seed %d: restart: %v", seed, err)
		}
		for i := range 5 {
			enqueue(t, r, clockNow, fmt.Sprintf(`{"after":%d}`, i))
		}
		r.Close()
		fs.PowerCut()
		fs.Restart()
		r, err = Open(o)
		if err != nil {
			t.Fatalf("seed %d: after a power cut, with 10 acknowledged enqueues on disk: %v", seed, err)
		}
		r.Read(func(m *fsm.Machine) {
			if n := m.Len(); n < 10 {
				t.Errorf("seed %d: %d jobs, 10 enqueues were acknowledged", seed, n)
			}
		})
		r.Close()
	}
}
