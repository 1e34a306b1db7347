package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEmptyLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	l := mustOpen(t, dir, Options{})
	if l.FirstLSN() != 0 || l.LastLSN() != 0 {
		t.Fatalf("empty log: first %d last %d", l.FirstLSN(), l.LastLSN())
	}
	if got := replayAll(t, l, 0); len(got) != 0 {
		t.Fatalf("replay of empty log: %d records", len(got))
	}
	mustClose(t, l)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	segs := segmentFiles(t, dir)
	if len(segs) != 1 || filepath.Base(segs[0]) != "00000000000000000001.wal" {
		t.Fatalf("segments %v", segs)
	}
	st, err = os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != segmentHeaderSize {
		t.Errorf("segment mode %v size %d", st.Mode().Perm(), st.Size())
	}
	if b := readBytes(t, segs[0]); string(b[:8]) != "BVRWAL01" || b[8] != 1 {
		t.Errorf("header % x", b)
	}
}

func TestRoundTripAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 2048}
	l := mustOpen(t, dir, opts)
	appendN(t, l, 150)
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("only %d segments after 150 records with 2 KiB segments", n)
	}
	checkRecords(t, replayAll(t, l, 1), 1, 150)
	mustClose(t, l)

	l = mustOpen(t, dir, opts)
	if r := l.Recovery(); r.Records != 150 || r.FirstLSN != 1 || r.LastLSN != 150 || r.TornFile != "" {
		t.Fatalf("recovery %+v", r)
	}
	for _, from := range []uint64{0, 1, 2, 17, 63, 100, 149, 150, 151, 1000} {
		first := max(from, 1)
		checkRecords(t, replayAll(t, l, from), first, 150)
	}
	appendN(t, l, 50)
	mustClose(t, l)

	// Every segment is named after its first record and starts with it.
	l = mustOpen(t, dir, opts)
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 1), 1, 200)
	want := uint64(1)
	for _, p := range segmentFiles(t, dir) {
		data := readBytes(t, p)
		base, _ := parseSegmentName(filepath.Base(p))
		if base != want {
			t.Fatalf("segment %s, want first LSN %d", p, want)
		}
		want += uint64(len(recordStarts(t, data)))
	}
	if want != 201 {
		t.Fatalf("segments hold LSNs up to %d", want-1)
	}
}

func TestReplayStopsOnError(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	defer mustClose(t, l)
	appendN(t, l, 10)
	stop := errors.New("stop")
	var seen []uint64
	err := l.Replay(3, func(lsn uint64, _ uint8, _ []byte) error {
		seen = append(seen, lsn)
		if lsn == 5 {
			return stop
		}
		return nil
	})
	if err != stop || fmt.Sprint(seen) != "[3 4 5]" {
		t.Fatalf("err %v seen %v", err, seen)
	}
}

func TestLargeAndEmptyRecords(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 1 << 20})
	big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/16+1) // larger than a batch
	datas := [][]byte{{}, big, []byte("x"), {}, big[:maxBatchBytes]}
	for i, d := range datas {
		lsn, err := l.Append(7, d)
		if err != nil || lsn != uint64(i+1) {
			t.Fatalf("Append %d: lsn %d err %v", i, lsn, err)
		}
	}
	mustClose(t, l)
	l = mustOpen(t, dir, Options{SegmentSize: 1 << 20})
	defer mustClose(t, l)
	i := 0
	err := l.Replay(1, func(lsn uint64, typ uint8, data []byte) error {
		if typ != 7 || !bytes.Equal(data, datas[i]) {
			t.Errorf("record %d: type %d len %d", lsn, typ, len(data))
		}
		i++
		return nil
	})
	if err != nil || i != len(datas) {
		t.Fatalf("replay: %v, %d records", err, i)
	}
}

func TestTooLarge(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	defer mustClose(t, l)
	appendN(t, l, 2)
	if _, err := l.Append(1, make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	appendN(t, l, 2) // the log goes on, LSNs unbroken
	checkRecords(t, replayAll(t, l, 1), 1, 4)
}

// TestConcurrentAppenders: LSNs are unique and contiguous, callbacks come in
// LSN order, every record replays back as written.
func TestConcurrentAppenders(t *testing.T) {
	const goroutines, perG = 64, 500
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 256 << 10})

	var lastCB uint64 // touched only by callbacks, which run on one goroutine
	var cbErr error
	lsns := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			lsns[g] = make([]uint64, perG)
			if g%2 == 0 { // synchronous appends
				for i := range perG {
					lsn, err := l.Append(uint8(g), fmt.Appendf(nil, "g%d-i%d", g, i))
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					lsns[g][i] = lsn
				}
				return
			}
			// async bursts of 50, each checked for order in its callback
			var burst sync.WaitGroup
			for i := range perG {
				burst.Add(1)
				l.AppendAsync(uint8(g), fmt.Appendf(nil, "g%d-i%d", g, i), func(lsn uint64, err error) {
					if err != nil && cbErr == nil {
						cbErr = err
					}
					if lsn <= lastCB && cbErr == nil {
						cbErr = fmt.Errorf("callback for LSN %d after LSN %d", lsn, lastCB)
					}
					lastCB = lsn
					lsns[g][i] = lsn
					burst.Done()
				})
				if i%50 == 49 {
					burst.Wait()
				}
			}
			burst.Wait()
		})
	}
	wg.Wait()
	mustClose(t, l)
	if cbErr != nil {
		t.Fatal(cbErr)
	}

	want := make(map[uint64]string, goroutines*perG)
	for g := range goroutines {
		for i, lsn := range lsns[g] {
			if _, dup := want[lsn]; dup || lsn == 0 {
				t.Fatalf("LSN %d assigned twice or zero", lsn)
			}
			want[lsn] = fmt.Sprintf("g%d-i%d", g, i)
		}
	}
	l = mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	if l.LastLSN() != goroutines*perG {
		t.Fatalf("LastLSN %d", l.LastLSN())
	}
	next := uint64(1)
	err := l.Replay(1, func(lsn uint64, _ uint8, data []byte) error {
		if lsn != next || string(data) != want[lsn] {
			return fmt.Errorf("LSN %d (want %d): %q, want %q", lsn, next, data, want[lsn])
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != goroutines*perG+1 {
		t.Fatalf("replayed %d records", next-1)
	}
}

func TestCloseFlushesQueue(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(dir, mode.String())
			l := mustOpen(t, dir, Options{Sync: mode, SyncInterval: time.Hour})
			var ok atomic.Int64
			for i := range 1000 {
				l.AppendAsync(1, payload(uint64(i), 10), func(lsn uint64, err error) {
					if err == nil && lsn == uint64(i+1) {
						ok.Add(1)
					}
				})
			}
			mustClose(t, l)
			if ok.Load() != 1000 {
				t.Fatalf("%d callbacks succeeded", ok.Load())
			}
			l = mustOpen(t, dir, Options{})
			defer mustClose(t, l)
			if l.LastLSN() != 1000 {
				t.Fatalf("LastLSN %d after reopen", l.LastLSN())
			}
		})
	}
}

func TestAfterClose(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	appendN(t, l, 3)
	mustClose(t, l)
	mustClose(t, l) // idempotent
	if _, err := l.Append(1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	called := false
	l.AppendAsync(1, nil, func(lsn uint64, err error) { called = errors.Is(err, ErrClosed) && lsn == 0 })
	if !called {
		t.Fatal("AppendAsync after Close did not report ErrClosed")
	}
	if err := l.Replay(1, func(uint64, uint8, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replay after Close: %v", err)
	}
	if err := l.TruncateBefore(2); !errors.Is(err, ErrClosed) {
		t.Fatalf("TruncateBefore after Close: %v", err)
	}
	if l.LastLSN() != 3 {
		t.Fatalf("LastLSN after Close: %d", l.LastLSN())
	}
}

func TestConcurrentClose(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				_, err := l.Append(1, []byte("x"))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				acked.Add(1)
			}
		})
	}
	for acked.Load() < 100 {
		if _, err := l.Append(1, []byte("y")); err != nil {
			t.Fatal(err)
		}
		acked.Add(1)
	}
	for range 3 {
		wg.Go(func() { l.Close() })
	}
	wg.Wait()
	if st := l.Stats(); st.Appends < uint64(acked.Load()) || st.LastLSN != st.Appends {
		t.Fatalf("stats %+v, acked %d", st, acked.Load())
	}
}

// observer records the writer's metrics calls.
type observer struct {
	mu      sync.Mutex
	writes  int
	records int
	syncs   int
	synced  chan struct{} // receives after each sync, if not full
}

func (o *observer) ObserveWrite(records, bytes int) {
	o.mu.Lock()
	o.writes++
	o.records += records
	o.mu.Unlock()
}

func (o *observer) ObserveSync(time.Duration) {
	o.mu.Lock()
	o.syncs++
	o.mu.Unlock()
	if o.synced != nil {
		select {
		case o.synced <- struct{}{}:
		default:
		}
	}
}

func (o *observer) counts() (writes, records, syncs int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writes, o.records, o.syncs
}

func TestStatsAndObserver(t *testing.T) {
	obs := &observer{}
	l := mustOpen(t, t.TempDir(), Options{Observer: obs, SegmentSize: 4096})
	appendN(t, l, 100)
	st := l.Stats()
	writes, records, syncs := obs.counts()
	if st.Appends != 100 || st.LastLSN != 100 || st.FirstLSN != 1 || st.Segments < 2 || st.Err != nil {
		t.Fatalf("stats %+v", st)
	}
	if uint64(writes) != st.Batches || records != 100 || uint64(syncs) != st.Syncs || st.Syncs != st.Batches {
		t.Fatalf("observer writes %d records %d syncs %d; stats %+v", writes, records, syncs, st)
	}
	var onDisk int64
	for _, p := range segmentFiles(t, l.dir) {
		fi, _ := os.Stat(p)
		onDisk += fi.Size()
	}
	if st.Bytes != onDisk {
		t.Fatalf("Stats.Bytes %d, on disk %d", st.Bytes, onDisk)
	}
	mustClose(t, l)
}

func TestSyncInterval(t *testing.T) {
	obs := &observer{synced: make(chan struct{}, 1)}
	l := mustOpen(t, t.TempDir(), Options{Observer: obs, Sync: SyncInterval, SyncInterval: time.Millisecond})
	defer mustClose(t, l)
	appendN(t, l, 10) // acknowledged after write, synced by the timer
	select {
	case <-obs.synced:
	case <-time.After(30 * time.Second):
		t.Fatal("no fdatasync within 30s with a 1ms interval")
	}
	if st := l.Stats(); st.Syncs == 0 || st.Syncs > st.Batches {
		t.Fatalf("stats %+v", st)
	}
}

func TestSyncNever(t *testing.T) {
	fs := newFaultFS()
	obs := &observer{}
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{FS: fs, Observer: obs, Sync: SyncNever, SegmentSize: 1 << 20})
	appendN(t, l, 100)
	if _, _, syncs := obs.counts(); syncs != 0 {
		t.Fatalf("%d syncs before Close", syncs)
	}
	mustClose(t, l)
	if _, _, syncs := obs.counts(); syncs != 1 {
		t.Fatalf("%d syncs after Close, want 1", syncs)
	}

	// A rotation syncs the segment it leaves.
	obs = &observer{}
	l = mustOpen(t, dir, Options{FS: fs, Observer: obs, Sync: SyncNever, SegmentSize: 1})
	appendN(t, l, 2)
	if _, _, syncs := obs.counts(); syncs != 2 {
		t.Fatalf("%d syncs after 2 rotations, want 2", syncs)
	}
	mustClose(t, l)
	if _, _, syncs := obs.counts(); syncs != 2 {
		t.Fatalf("%d syncs after Close, want 2 (nothing left to sync)", syncs)
	}
}

func TestFailedSync(t *testing.T) {
	fs := newFaultFS()
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{FS: fs})
	appendN(t, l, 5)
	fs.failSync.Store(true)

	var wg sync.WaitGroup
	var succeeded atomic.Int64
	errs := make([]error, 32)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = l.Append(1, []byte("doomed"))
			if errs[i] == nil {
				succeeded.Add(1)
			}
		})
	}
	wg.Wait()
	if succeeded.Load() != 0 {
		t.Fatalf("%d appends succeeded despite a failed fdatasync", succeeded.Load())
	}
	sawCause := false
	for _, err := range errs {
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("got %v, want ErrFailed", err)
		}
		sawCause = sawCause || errors.Is(err, errInjectedSync)
	}
	if !sawCause {
		t.Fatal("no appender saw the fdatasync error")
	}
	// Later appends fail at once, even once the disk "recovers": never retry.
	fs.failSync.Store(false)
	syncsBefore := fs.syncs.Load()
	if _, err := l.Append(1, []byte("late")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after failure: %v", err)
	}
	if fs.syncs.Load() != syncsBefore {
		t.Fatal("fdatasync retried after a failure")
	}
	if st := l.Stats(); !errors.Is(st.Err, ErrFailed) || st.Appends != 5 {
		t.Fatalf("stats %+v", st)
	}
	mustClose(t, l)

	// Reopening recovers: the 5 acknowledged records are there.
	l = mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 1)[:5], 1, 5)
}

func TestFailedWrite(t *testing.T) {
	fs := newFaultFS()
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{FS: fs})
	appendN(t, l, 5)
	fs.failWrite.Store(true)
	var wg sync.WaitGroup
	var succeeded atomic.Int64
	for range 16 {
		wg.Go(func() {
			_, err := l.Append(1, make([]byte, 100))
			if err == nil {
				succeeded.Add(1)
			} else if !errors.Is(err, ErrFailed) {
				t.Errorf("got %v, want ErrFailed", err)
			}
		})
	}
	wg.Wait()
	if succeeded.Load() != 0 {
		t.Fatalf("%d appends succeeded despite a failed write", succeeded.Load())
	}
	fs.failWrite.Store(false)
	if _, err := l.Append(1, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after failure: %v", err)
	}
	mustClose(t, l)

	// The half-written batch is a torn tail (or ends on a record boundary):
	// Open succeeds and keeps everything acknowledged.
	l = mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	if l.LastLSN() < 5 {
		t.Fatalf("LastLSN %d after reopen", l.LastLSN())
	}
	checkRecords(t, replayAll(t, l, 1)[:5], 1, 5)
	lsn, err := l.Append(1, nil)
	if err != nil || lsn != l.Recovery().LastLSN+1 {
		t.Fatalf("append after reopen: %d %v", lsn, err)
	}
}

func TestFailedRotation(t *testing.T) {
	fs := newFaultFS()
	l := mustOpen(t, t.TempDir(), Options{FS: fs, SegmentSize: 100})
	fs.failCreate.Store(true)
	// The record itself is durable (the rotation comes after its batch).
	if _, err := l.Append(1, make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(1, nil); !errors.Is(err, ErrFailed) || !errors.Is(err, errInjectedCreate) {
		t.Fatalf("append after failed rotation: %v", err)
	}
	mustClose(t, l)
}

func TestTruncateBefore(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 1024}
	l := mustOpen(t, dir, opts)
	appendN(t, l, 120)
	bases := func() []uint64 {
		var out []uint64
		for _, p := range segmentFiles(t, dir) {
			b, _ := parseSegmentName(filepath.Base(p))
			out = append(out, b)
		}
		return out
	}
	before := bases()
	if len(before) < 8 {
		t.Fatalf("only %d segments", len(before))
	}
	for _, bound := range []uint64{0, 1, before[1] - 1, before[1], before[1] + 1, before[4] + 2, 60} {
		if err := l.TruncateBefore(bound); err != nil {
			t.Fatal(err)
		}
		after := bases()
		// Every segment still holding a record >= bound is kept.
		if after[0] > max(bound, 1) {
			t.Fatalf("TruncateBefore(%d) kept %v: LSN %d is gone", bound, after, bound)
		}
		// A deleted segment holds only records < bound: the next one starts at or before bound.
		if len(after) > 1 && after[1] <= bound {
			t.Fatalf("TruncateBefore(%d) kept %v: first segment is below the bound", bound, after)
		}
		if l.FirstLSN() != after[0] {
			t.Fatalf("FirstLSN %d, segments %v", l.FirstLSN(), after)
		}
		checkRecords(t, replayAll(t, l, 0), after[0], 120)
	}
	// A bound past the end keeps the active segment.
	if err := l.TruncateBefore(1 << 40); err != nil {
		t.Fatal(err)
	}
	after := bases()
	if len(after) != 1 || l.Stats().Segments != 1 || l.LastLSN() != 120 {
		t.Fatalf("after truncating everything: %v, last %d", after, l.LastLSN())
	}
	appendN(t, l, 3)
	mustClose(t, l)
	l = mustOpen(t, dir, opts)
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 0), after[0], 123)
}

// TestTruncateToEmptySegment: a log whose only segment is empty still knows
// its next LSN after reopening.
func TestTruncateToEmptySegment(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 1}) // rotate after every batch
	appendN(t, l, 5)
	if n := len(segmentFiles(t, dir)); n != 6 {
		t.Fatalf("%d segments, want 6", n)
	}
	if err := l.TruncateBefore(6); err != nil {
		t.Fatal(err)
	}
	if l.FirstLSN() != 0 || l.LastLSN() != 5 {
		t.Fatalf("first %d last %d", l.FirstLSN(), l.LastLSN())
	}
	mustClose(t, l)
	l = mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	if l.FirstLSN() != 0 || l.LastLSN() != 5 || len(replayAll(t, l, 0)) != 0 {
		t.Fatalf("reopened: first %d last %d", l.FirstLSN(), l.LastLSN())
	}
	appendN(t, l, 1)
	checkRecords(t, replayAll(t, l, 0), 6, 6)
}

// TestReplayDuringAppends: Replay sees a consistent prefix while the writer
// rotates segments and TruncateBefore waits for it.
func TestReplayDuringAppends(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentSize: 4096})
	defer mustClose(t, l)
	appendN(t, l, 50)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(1, make([]byte, 64)); err != nil {
				t.Error(err)
				return
			}
			if i%20 == 0 {
				if err := l.TruncateBefore(l.LastLSN() - 10); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	for range 20 {
		first, n := uint64(0), uint64(0)
		err := l.Replay(0, func(lsn uint64, _ uint8, _ []byte) error {
			if first == 0 {
				first = lsn
			}
			if lsn != first+n {
				return fmt.Errorf("LSN %d after %d records from %d", lsn, n, first)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{SegmentSize: -1},
		{Sync: SyncMode(7)},
		{SyncInterval: -time.Second},
		{MaxQueued: -1},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
	for _, s := range []string{"always", "interval", "never"} {
		m, err := ParseSyncMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseSyncMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseSyncMode("sometimes"); err == nil {
		t.Error("ParseSyncMode accepted a bad mode")
	}
}

// TestBackpressure: with a tiny MaxQueued, appenders block instead of
// queueing without bound, and everything still gets written.
func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{MaxQueued: 1024})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := l.Append(1, make([]byte, 300)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if l.LastLSN() != 800 {
		t.Fatalf("LastLSN %d", l.LastLSN())
	}
	mustClose(t, l)
}
