package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
)

// spaceFS is a vfstest.FS that reports its free space (capacity - used) as
// vfs.StatFS. Test-only.
type spaceFS struct {
	*vfstest.FS
	mu       sync.Mutex
	capacity int64 // vfstest.Unlimited or bytes
}

var _ vfs.StatFS = (*spaceFS)(nil)

func newSpaceFS(seed uint64) *spaceFS {
	return &spaceFS{FS: vfstest.New(seed), capacity: vfstest.Unlimited}
}

// setCapacity bounds the total size of all files.
func (s *spaceFS) setCapacity(n int64) {
	s.mu.Lock()
	s.capacity = n
	s.mu.Unlock()
	s.FS.SetCapacity(n)
}

// fillTo leaves room bytes of free space.
func (s *spaceFS) fillTo(room int64) { s.setCapacity(s.Used() + room) }

func (s *spaceFS) FreeSpace(string) (uint64, error) {
	s.mu.Lock()
	c := s.capacity
	s.mu.Unlock()
	if c == vfstest.Unlimited {
		return 1 << 40, nil
	}
	return uint64(max(c-s.Used(), 0)), nil
}

// checkFreeSpaceNow makes the writer run its free-space check now (as its
// ticker would) and waits for it.
func checkFreeSpaceNow(l *Log) {
	ch := make(chan struct{})
	l.checkReq <- ch
	<-ch
}

const (
	dfDir     = "/data/wal"
	dfReserve = 16 << 10
	dfSegment = 256 << 10
)

func dfOptions(fsys vfs.FS) Options {
	return Options{FS: fsys, ReserveBytes: dfReserve, SegmentSize: dfSegment, FreeSpaceInterval: time.Hour}
}

func isDiskFull(err error) bool {
	return errors.Is(err, ErrDiskFull) && errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrFailed)
}

func fileSize(t *testing.T, fsys vfs.FS, path string) int64 {
	t.Helper()
	fi, err := fsys.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func exists(t *testing.T, fsys vfs.FS, path string) bool {
	t.Helper()
	_, err := fsys.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// appendRec appends record lsn (as appendN does) with class and checks it
// gets LSN lsn.
func appendRec(t *testing.T, l *Log, lsn uint64, class Class) {
	t.Helper()
	got, err := l.AppendClass(uint8(lsn), payload(lsn, sizeOf(lsn)), class)
	if err != nil || got != lsn {
		t.Fatalf("AppendClass(%v) = %d, %v; want LSN %d", class, got, err, lsn)
	}
}

// TestDiskFullWrite: a write that fails with ENOSPC fails its batch with
// ErrDiskFull, is cut back durably, deletes the reserve; then only
// reserve-class appends are written, until the free-space check sees room.
func TestDiskFullWrite(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			fsys := newSpaceFS(uint64(mode))
			opts := dfOptions(fsys)
			opts.Sync = mode
			l := mustOpen(t, dfDir, opts)
			reserve := filepath.Join(dfDir, reserveName)
			if got := fileSize(t, fsys, reserve); got != dfReserve {
				t.Fatalf("reserve file is %d bytes, want %d", got, dfReserve)
			}
			if st := l.Stats(); st.Reserve != dfReserve || st.DiskFull {
				t.Fatalf("stats after Open: %+v", st)
			}
			appendN(t, l, 10)
			seg := l.Stats()
			segPath := filepath.Join(dfDir, segmentName(1))
			before := fileSize(t, fsys, segPath)

			// Room for part of the next record only: a short write, then ENOSPC.
			fsys.fillTo(1000)
			if _, err := l.Append(11, payload(11, 4000)); !isDiskFull(err) {
				t.Fatalf("append on a full disk: %v, want ErrDiskFull and ENOSPC", err)
			}
			if !l.DiskFull() || l.Err() != nil {
				t.Fatalf("DiskFull %v, Err %v", l.DiskFull(), l.Err())
			}
			if got := fileSize(t, fsys, segPath); got != before {
				t.Fatalf("segment is %d bytes after the failed write, want it cut back to %d", got, before)
			}
			if exists(t, fsys, reserve) {
				t.Fatal("reserve file still there")
			}
			if st := l.Stats(); !st.DiskFull || st.Reserve != 0 || st.LastLSN != seg.LastLSN {
				t.Fatalf("stats when disk-full: %+v", st)
			}

			// Normal appends fail at once, without touching the disk.
			ops := fsys.Ops()
			for range 5 {
				if _, err := l.Append(1, []byte("enqueue")); !isDiskFull(err) {
					t.Fatalf("normal append when disk-full: %v", err)
				}
			}
			if got := fsys.Ops(); got != ops {
				t.Fatalf("normal appends when disk-full did %d disk operations", got-ops)
			}
			// Reserve-class appends are written, from LSN 11 on: the failed
			// record gave its LSN back.
			for lsn := uint64(11); lsn <= 20; lsn++ {
				appendRec(t, l, lsn, ClassReserve)
			}

			// Some space comes back, not enough: still disk-full.
			fsys.fillTo(2*dfReserve + dfSegment - 1)
			checkFreeSpaceNow(l)
			if !l.DiskFull() {
				t.Fatal("left disk-full with less than 2 × reserve + segment free")
			}
			if _, err := l.Append(1, nil); !isDiskFull(err) {
				t.Fatalf("normal append: %v", err)
			}
			fsys.setCapacity(vfstest.Unlimited)
			checkFreeSpaceNow(l)
			if l.DiskFull() {
				t.Fatal("still disk-full with space freed")
			}
			if got := fileSize(t, fsys, reserve); got != dfReserve {
				t.Fatalf("reserve file is %d bytes after leaving disk-full, want %d", got, dfReserve)
			}
			if st := l.Stats(); st.DiskFull || st.Reserve != dfReserve {
				t.Fatalf("stats after leaving disk-full: %+v", st)
			}
			for lsn := uint64(21); lsn <= 25; lsn++ {
				appendRec(t, l, lsn, ClassNormal)
			}

			// Power cut, reopen: exactly the acknowledged records, no torn tail.
			if err := l.Sync(); err != nil { // SyncNever: make them durable
				t.Fatal(err)
			}
			fsys.PowerCut()
			l.Close()
			fsys.Restart()
			l = mustOpen(t, dfDir, opts)
			defer mustClose(t, l)
			if rec := l.Recovery(); rec.TornFile != "" {
				t.Fatalf("torn tail reported: %+v", rec)
			}
			checkRecords(t, replayAll(t, l, 1), 1, 25)
		})
	}
}

// TestDiskFullCutIsDurable: the power goes right after a write failed with
// ENOSPC. The cut back was fdatasynced, so the next start finds exactly the
// acknowledged records and no torn tail, whatever part of the unsynced
// state the power cut keeps.
func TestDiskFullCutIsDurable(t *testing.T) {
	for seed := range uint64(16) {
		fsys := newSpaceFS(seed)
		l := mustOpen(t, dfDir, dfOptions(fsys))
		appendN(t, l, 10)
		fsys.fillTo(int64(600 + 512*seed))
		if _, err := l.Append(11, payload(11, 20000)); !isDiskFull(err) {
			t.Fatalf("seed %d: append: %v", seed, err)
		}
		fsys.PowerCut()
		l.Close()
		fsys.Restart()
		fsys.setCapacity(vfstest.Unlimited)
		l = mustOpen(t, dfDir, dfOptions(fsys))
		if rec := l.Recovery(); rec.TornFile != "" || rec.LastLSN != 10 {
			t.Fatalf("seed %d: recovery after a power cut in the disk-full state: %+v", seed, rec)
		}
		checkRecords(t, replayAll(t, l, 1), 1, 10)
		appendN(t, l, 1)
		mustClose(t, l)
	}
}

// TestDiskFullRenumbersQueue: records queued behind the batch that hit
// ENOSPC are renumbered (the failed batch's LSNs are reused, so the log has
// no gap), queued normal records fail, and a pending Sync returns.
func TestDiskFullRenumbersQueue(t *testing.T) {
	fsys := newSpaceFS(1)
	l := mustOpen(t, dfDir, dfOptions(fsys))
	appendN(t, l, 3)

	// The writer blocks inside the write of record 4, which then fails.
	fired, release := make(chan struct{}), make(chan struct{})
	fsys.Inject(vfstest.Fault{
		Op:      vfstest.OpWrite,
		Match:   func(p string) bool { return p == filepath.Join(dfDir, segmentName(1)) },
		Err:     syscall.ENOSPC,
		Partial: true,
		OnFire:  func(vfstest.Op, string) { close(fired); <-release },
	})
	type result struct {
		lsn uint64
		err error
	}
	results := make([]result, 9)
	var wg sync.WaitGroup
	cb := func(i int) func(uint64, error) {
		wg.Add(1)
		return func(lsn uint64, err error) { results[i] = result{lsn, err}; wg.Done() }
	}
	l.AppendAsyncClass(4, payload(4, 100), ClassReserve, cb(0))
	<-fired
	// Queued while the write is stuck: even indexes normal, odd reserve.
	for i := 1; i < len(results); i++ {
		class := ClassNormal
		if i%2 == 1 {
			class = ClassReserve
		}
		l.AppendAsyncClass(uint8(i), []byte(fmt.Sprint("queued ", i)), class, cb(i))
	}
	syncDone := make(chan error, 1)
	go func() { syncDone <- l.Sync() }()
	waitFor(t, "Sync to queue", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.syncReqs) == 1
	})
	close(release)
	wg.Wait()
	if err := <-syncDone; err != nil {
		t.Fatalf("Sync: %v", err)
	}

	if r := results[0]; !isDiskFull(r.err) || r.lsn != 0 {
		t.Fatalf("record of the failed batch: %+v", r)
	}
	want := uint64(4) // the failed batch's LSN, reused
	var kept []int
	for i := 1; i < len(results); i++ {
		r := results[i]
		if i%2 == 0 {
			if !isDiskFull(r.err) || r.lsn != 0 {
				t.Fatalf("queued normal record %d: %+v, want ErrDiskFull", i, r)
			}
			continue
		}
		if r.err != nil || r.lsn != want {
			t.Fatalf("queued reserve record %d: %+v, want LSN %d", i, r, want)
		}
		kept = append(kept, i)
		want++
	}
	if l.LastLSN() != want-1 {
		t.Fatalf("LastLSN %d, want %d", l.LastLSN(), want-1)
	}
	lsn, err := l.AppendClass(9, []byte("after"), ClassReserve)
	if err != nil || lsn != want {
		t.Fatalf("next reserve append: %d %v, want LSN %d", lsn, err, want)
	}
	mustClose(t, l)

	l = mustOpen(t, dfDir, dfOptions(fsys))
	defer mustClose(t, l)
	if rec := l.Recovery(); rec.TornFile != "" {
		t.Fatalf("torn tail reported: %+v", rec)
	}
	recs := replayAll(t, l, 1)
	checkRecords(t, recs[:3], 1, 3)
	for j, i := range kept {
		r := recs[3+j]
		if r.lsn != uint64(4+j) || string(r.data) != fmt.Sprint("queued ", i) {
			t.Fatalf("record %d: LSN %d %q", 3+j, r.lsn, r.data)
		}
	}
	if last := recs[len(recs)-1]; len(recs) != 3+len(kept)+1 || string(last.data) != "after" {
		t.Fatalf("%d records, last %q", len(recs), last.data)
	}
}

// waitFor polls cond until it holds, for at most 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// TestDiskFullRotation: ENOSPC while creating the next segment leaves no
// half-made segment, enters the disk-full state, and the log goes on in the
// old segment; once space is back it rotates.
func TestDiskFullRotation(t *testing.T) {
	next := filepath.Join(dfDir, segmentName(2))
	for _, tc := range []struct {
		name  string
		op    vfstest.Op
		match string
	}{
		{"create", vfstest.OpCreate, next},
		{"header", vfstest.OpWrite, next},
		{"fdatasync", vfstest.OpSync, next},
		{"syncdir", vfstest.OpSyncDir, dfDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := newSpaceFS(7)
			opts := dfOptions(fsys)
			opts.SegmentSize = 100
			l := mustOpen(t, dfDir, opts)
			fsys.Inject(vfstest.Fault{Op: tc.op, Match: func(p string) bool { return p == tc.match }, Err: syscall.ENOSPC, Partial: true})
			// The record is durable: the rotation comes after its batch.
			if _, err := l.Append(1, payload(1, 200)); err != nil {
				t.Fatal(err)
			}
			if fsys.FaultsFired() != 1 {
				t.Fatal("the fault did not fire")
			}
			if !l.DiskFull() || l.Err() != nil {
				t.Fatalf("DiskFull %v, Err %v", l.DiskFull(), l.Err())
			}
			if exists(t, fsys, next) {
				t.Fatal("half-made segment left behind")
			}
			if exists(t, fsys, filepath.Join(dfDir, reserveName)) {
				t.Fatal("reserve not deleted")
			}
			if _, err := l.Append(2, nil); !isDiskFull(err) {
				t.Fatalf("normal append: %v", err)
			}
			appendRec(t, l, 2, ClassReserve) // into the old segment
			if st := l.Stats(); st.Segments != 1 {
				t.Fatalf("%d segments while disk-full", st.Segments)
			}
			checkFreeSpaceNow(l)
			if l.DiskFull() {
				t.Fatal("still disk-full")
			}
			appendRec(t, l, 3, ClassNormal) // rotates after it
			appendRec(t, l, 4, ClassNormal)
			if st := l.Stats(); st.Segments < 2 {
				t.Fatalf("no rotation after leaving disk-full: %+v", st)
			}
			fsys.PowerCut()
			l.Close()
			fsys.Restart()
			l = mustOpen(t, dfDir, opts)
			defer mustClose(t, l)
			if rec := l.Recovery(); rec.TornFile != "" {
				t.Fatalf("torn tail reported: %+v", rec)
			}
			recs := replayAll(t, l, 1)
			if len(recs) != 4 {
				t.Fatalf("%d records after reopen, want 4", len(recs))
			}
			checkRecords(t, recs[1:], 2, 4)
		})
	}
}

// TestDiskFullCutBackFails: if the cut after ENOSPC fails (truncate or its
// fdatasync), the segment's content is unknown: the log fails for good.
func TestDiskFullCutBackFails(t *testing.T) {
	seg := filepath.Join(dfDir, segmentName(1))
	for _, op := range []vfstest.Op{vfstest.OpTruncate, vfstest.OpSync} {
		t.Run(op.String(), func(t *testing.T) {
			fsys := newSpaceFS(3)
			l := mustOpen(t, dfDir, dfOptions(fsys))
			appendN(t, l, 5)
			fsys.fillTo(100)
			fsys.Inject(vfstest.Fault{Op: op, Match: func(p string) bool { return p == seg }})
			_, err := l.Append(6, payload(6, 1000))
			if !errors.Is(err, ErrFailed) || !errors.Is(err, vfstest.ErrInjected) || errors.Is(err, ErrDiskFull) {
				t.Fatalf("append: %v, want ErrFailed with the injected error", err)
			}
			fsys.setCapacity(vfstest.Unlimited)
			for _, class := range []Class{ClassNormal, ClassReserve} {
				if _, err := l.AppendClass(1, nil, class); !errors.Is(err, ErrFailed) {
					t.Fatalf("%v append after the failed cut: %v", class, err)
				}
			}
			if l.DiskFull() || !errors.Is(l.Err(), ErrFailed) {
				t.Fatalf("DiskFull %v, Err %v", l.DiskFull(), l.Err())
			}
			l.Close()
			l = mustOpen(t, dfDir, dfOptions(fsys))
			defer mustClose(t, l)
			checkRecords(t, replayAll(t, l, 1)[:5], 1, 5)
		})
	}
}

// TestFailedSyncStaysFailed: a failed fdatasync is never retried and never
// counts as disk-full, even when it reports ENOSPC; reserve-class appends
// fail too.
func TestFailedSyncStaysFailed(t *testing.T) {
	fsys := newSpaceFS(5)
	l := mustOpen(t, dfDir, dfOptions(fsys))
	defer l.Close()
	appendN(t, l, 3)
	seg := filepath.Join(dfDir, segmentName(1))
	syncs := 0
	fsys.Inject(vfstest.Fault{Op: vfstest.OpSync, Match: func(p string) bool { return p == seg }, Err: syscall.ENOSPC, Lose: true,
		OnFire: func(vfstest.Op, string) { syncs++ }})
	if _, err := l.Append(4, []byte("x")); !errors.Is(err, ErrFailed) || errors.Is(err, ErrDiskFull) {
		t.Fatalf("append with a failing fdatasync: %v", err)
	}
	fsys.ClearFaults()
	ops := fsys.Ops()
	for _, class := range []Class{ClassNormal, ClassReserve} {
		if _, err := l.AppendClass(5, []byte("y"), class); !errors.Is(err, ErrFailed) {
			t.Fatalf("%v append after a failed fdatasync: %v", class, err)
		}
	}
	if err := l.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Sync: %v", err)
	}
	if fsys.Ops() != ops || syncs != 1 {
		t.Fatalf("the log touched the disk after a failed fdatasync (%d ops, %d syncs)", fsys.Ops()-ops, syncs)
	}
	if l.DiskFull() {
		t.Fatal("a failed fdatasync counted as disk-full")
	}
}

// TestReserveFileAtOpen: Open creates the reserve, keeps it across reopens,
// removes it when the reserve is switched off, and starts disk-full when
// there is no room for it.
func TestReserveFileAtOpen(t *testing.T) {
	fsys := newSpaceFS(9)
	reserve := filepath.Join(dfDir, reserveName)
	l := mustOpen(t, dfDir, dfOptions(fsys))
	appendN(t, l, 3)
	mustClose(t, l)
	fsys.PowerCut() // the reserve and its directory entry are durable
	fsys.Restart()
	if got := fileSize(t, fsys, reserve); got != dfReserve {
		t.Fatalf("reserve after power cut: %d bytes", got)
	}

	// Reopen with the reserve file there and a full disk: it is kept.
	fsys.fillTo(0)
	l = mustOpen(t, dfDir, dfOptions(fsys))
	if l.DiskFull() || l.Stats().Reserve != dfReserve {
		t.Fatalf("reopen with a reserve: DiskFull %v, stats %+v", l.DiskFull(), l.Stats())
	}
	mustClose(t, l)

	// A bigger reserve does not fit: it starts disk-full, with no reserve file.
	opts := dfOptions(fsys)
	opts.ReserveBytes = 2 * dfReserve
	fsys.fillTo(dfReserve / 2)
	l = mustOpen(t, dfDir, opts)
	if !l.DiskFull() || exists(t, fsys, reserve) {
		t.Fatalf("Open without room for the reserve: DiskFull %v", l.DiskFull())
	}
	if _, err := l.Append(4, nil); !isDiskFull(err) {
		t.Fatalf("normal append: %v", err)
	}
	appendRec(t, l, 4, ClassReserve)
	fsys.setCapacity(vfstest.Unlimited)
	checkFreeSpaceNow(l)
	if l.DiskFull() || fileSize(t, fsys, reserve) != 2*dfReserve {
		t.Fatalf("after space returned: DiskFull %v", l.DiskFull())
	}
	appendRec(t, l, 5, ClassNormal)
	mustClose(t, l)

	// No reserve configured: Open removes the file.
	l = mustOpen(t, dfDir, Options{FS: fsys})
	defer mustClose(t, l)
	if exists(t, fsys, reserve) || l.Stats().Reserve != 0 {
		t.Fatal("reserve file kept with ReserveBytes 0")
	}
	checkRecords(t, replayAll(t, l, 1), 1, 5)
}

// TestDiskFullTicker: the writer's own ticker notices the freed space.
func TestDiskFullTicker(t *testing.T) {
	fsys := newSpaceFS(11)
	opts := dfOptions(fsys)
	opts.FreeSpaceInterval = time.Millisecond
	l := mustOpen(t, dfDir, opts)
	defer mustClose(t, l)
	fsys.fillTo(10)
	if _, err := l.Append(1, make([]byte, 100)); !isDiskFull(err) {
		t.Fatalf("append: %v", err)
	}
	fsys.setCapacity(vfstest.Unlimited)
	waitForAppend(t, l)
}

// waitForAppend retries a normal append until it succeeds (at most 10 s).
func waitForAppend(t *testing.T, l *Log) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := l.Append(1, []byte("again"))
		if err == nil {
			return
		}
		if !isDiskFull(err) || time.Now().After(deadline) {
			t.Fatalf("append after space was freed: %v", err)
		}
		time.Sleep(time.Millisecond) // poll interval, not synchronisation
	}
}

// TestReserveOnOS: on the real file system the reserve is allocated, and
// free space can be read.
func TestReserveOnOS(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{ReserveBytes: 1 << 20})
	defer mustClose(t, l)
	if got := fileSize(t, vfs.OS, filepath.Join(dir, reserveName)); got != 1<<20 {
		t.Fatalf("reserve is %d bytes", got)
	}
	free, err := vfs.OS.(vfs.StatFS).FreeSpace(dir)
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		t.Fatal(err)
	}
	if err == nil && free == 0 {
		t.Fatal("no free space reported")
	}
	if !bytes.Equal(readBytes(t, filepath.Join(dir, reserveName)), make([]byte, 1<<20)) {
		t.Fatal("reserve does not read as zeros")
	}
	// The reserve file is not a segment: Verify ignores it.
	appendN(t, l, 2)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(dir, nil); err != nil || rep.Damage != nil {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
}

// TestSyncAnsweredAfterFailure: a Sync waiting for records of a batch whose
// write fails is answered with the failure (it used to wait until Close).
func TestSyncAnsweredAfterFailure(t *testing.T) {
	fsys := newSpaceFS(13)
	l := mustOpen(t, dfDir, dfOptions(fsys))
	defer l.Close()
	appendN(t, l, 2)
	fired, release := make(chan struct{}), make(chan struct{})
	fsys.Inject(vfstest.Fault{
		Op:     vfstest.OpWrite,
		Match:  func(p string) bool { return p == filepath.Join(dfDir, segmentName(1)) },
		Err:    syscall.EIO,
		OnFire: func(vfstest.Op, string) { close(fired); <-release },
	})
	appended := make(chan error, 2)
	go func() { _, err := l.Append(3, []byte("doomed")); appended <- err }()
	<-fired
	go func() { _, err := l.Append(4, []byte("queued")); appended <- err }()
	syncDone := make(chan error, 1)
	go func() { syncDone <- l.Sync() }()
	waitFor(t, "Sync and the append to queue", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.syncReqs) == 1 && l.nextLSN == 5
	})
	close(release)
	if err := <-syncDone; !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want ErrFailed", err)
	}
	for range 2 {
		if err := <-appended; !errors.Is(err, ErrFailed) {
			t.Fatalf("append: %v", err)
		}
	}
}
