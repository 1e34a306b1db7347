package raftlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

func isSegment(p string) bool { return strings.HasSuffix(p, ".wal") }

// A failed fdatasync is returned, never retried and reported as success:
// every later write fails until the store is reopened, reads go on, and the
// reopened store holds everything acknowledged.
func TestFailedSyncStopsWrites(t *testing.T) {
	for _, lose := range []bool{false, true} {
		fsys := vfstest.New(7)
		dir := filepath.Join(t.TempDir(), "log")
		s := mustOpen(t, dir, Options{FS: fsys})
		must(t, s.StoreLogs(entries(1, 5, 1)))
		must(t, s.SetUint64([]byte("CurrentTerm"), 1))
		fsys.Inject(vfstest.Fault{Op: vfstest.OpSync, Match: isSegment, Lose: lose})
		err := s.StoreLogs(entries(6, 8, 1))
		if !errors.Is(err, ErrFailed) || !errors.Is(err, vfstest.ErrInjected) {
			t.Fatalf("StoreLogs with a failing fdatasync: %v, want ErrFailed wrapping the cause", err)
		}
		syncs := fsys.Ops()
		for _, err := range []error{
			s.StoreLogs(entries(6, 8, 1)),
			s.StoreLogs(entries(9, 9, 1)),
			s.SetUint64([]byte("CurrentTerm"), 2),
			s.DeleteRange(1, 2),
			s.DeleteRange(5, 5),
		} {
			if !errors.Is(err, ErrFailed) {
				t.Fatalf("write after the failure: %v, want ErrFailed", err)
			}
		}
		if fsys.Ops() != syncs {
			t.Fatalf("writes after the failure touched the disk (%d operations)", fsys.Ops()-syncs)
		}
		if !errors.Is(s.Err(), ErrFailed) {
			t.Fatalf("Err() = %v", s.Err())
		}
		checkLog(t, s, entries(1, 5, 1)) // reads go on
		s.Close()
		fsys.PowerCut()
		fsys.Restart()
		s = mustOpen(t, dir, Options{FS: fsys})
		last, _ := s.LastIndex()
		if last != 5 && last != 8 {
			t.Fatalf("after reopen: last index %d, want 5 (or 8, if the failed batch reached the disk)", last)
		}
		checkLog(t, s, entries(1, last, 1))
		checkStable(t, s, map[string]string{"CurrentTerm": u64(1)})
		must(t, s.StoreLogs(entries(last+1, last+1, 2)))
		s.Close()
	}
}

// A disk that fills up fails the store as any other error: no later write
// can succeed after an earlier one failed, so the log has no hole.
func TestDiskFullFailsTheStore(t *testing.T) {
	fsys := vfstest.New(3)
	dir := filepath.Join(t.TempDir(), "log")
	s := mustOpen(t, dir, Options{FS: fsys})
	defer s.Close()
	must(t, s.StoreLogs(entries(1, 5, 1)))
	fsys.SetCapacity(fsys.Used() + 64)
	if err := s.StoreLogs(entries(6, 40, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("StoreLogs on a full disk: %v", err)
	}
	fsys.SetCapacity(vfstest.Unlimited)
	if err := s.StoreLogs(entries(6, 6, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("StoreLogs once space is back: %v, want ErrFailed until reopened", err)
	}
}

// Damage before the end is refused with the file and offset; a torn tail
// is cut off.
func TestOpenRefusesCorruption(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 2048}
	s := mustOpen(t, dir, o)
	for i := uint64(1); i <= 60; i += 10 {
		must(t, s.StoreLogs(entries(i, i+9, 1)))
	}
	must(t, s.Close())
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	b, err := os.ReadFile(segs[1])
	must(t, err)
	good := append([]byte(nil), b...)
	b[200] ^= 0x04
	must(t, os.WriteFile(segs[1], b, 0o600))
	_, err = Open(dir, o)
	var ce *wal.CorruptionError
	if !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce) || ce.File != segs[1] || ce.Offset == 0 {
		t.Fatalf("Open of a damaged segment: %v", err)
	}
	if !strings.Contains(err.Error(), segs[1]) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("error %q does not name the file and offset", err)
	}
	must(t, os.WriteFile(segs[1], good, 0o600))

	// a torn tail: the last record cut in half (in the last segment; a
	// segment holding only its header, left by a rotation, goes first)
	last := segs[len(segs)-1]
	b, err = os.ReadFile(last)
	must(t, err)
	if len(b) <= 16 {
		must(t, os.Remove(last))
		last = segs[len(segs)-2]
		b, err = os.ReadFile(last)
		must(t, err)
	}
	must(t, os.WriteFile(last, b[:len(b)-10], 0o600))
	s = mustOpen(t, dir, o)
	defer s.Close()
	if r := s.Recovery(); r.WAL.TornFile != last {
		t.Fatalf("recovery %+v: no torn tail cut", r.WAL)
	}
	checkLog(t, s, entries(1, 59, 1))
	must(t, s.StoreLogs(entries(60, 61, 2)))
}

// Records with a good CRC that break the store's rules are damage too.
func TestOpenRefusesBadRecords(t *testing.T) {
	for _, c := range []struct {
		name string
		recs func() [][2]any // type, payload
	}{
		{"gap", func() [][2]any {
			return [][2]any{{recEntry, appendEntry(nil, entry(1, 1))}, {recEntry, appendEntry(nil, entry(3, 1))}}
		}},
		{"unknown type", func() [][2]any { return [][2]any{{uint8(9), []byte{1}}} }},
		{"unknown version", func() [][2]any {
			p := appendEntry(nil, entry(1, 1))
			p[0] = 2
			return [][2]any{{recEntry, p}}
		}},
		{"short checkpoint", func() [][2]any { return [][2]any{{recCheckpoint, []byte{1, 0, 0}}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := wal.Open(dir, wal.Options{})
			must(t, err)
			must(t, writeRecords(l, entries(1, 3, 1)))
			for _, r := range c.recs() {
				_, err := l.Append(r[0].(uint8), r[1].([]byte))
				must(t, err)
			}
			must(t, l.Close())
			_, err = Open(dir, Options{})
			var ce *wal.CorruptionError
			if !errors.As(err, &ce) || ce.LSN != 4 || ce.File == "" || !strings.Contains(ce.Reason, "raft log record") {
				t.Fatalf("Open: %v, want a corruption at LSN 4 naming the file", err)
			}
		})
	}
}

// writeRecords appends the entry records of logs straight to a WAL.
func writeRecords(l *wal.Log, logs []*raft.Log) error {
	for _, e := range logs {
		if _, err := l.Append(recEntry, appendEntry(nil, e)); err != nil {
			return err
		}
	}
	return nil
}

// countSyncs counts the WAL's fdatasyncs.
type countSyncs struct{ syncs, writes atomic.Int64 }

func (c *countSyncs) ObserveWrite(int, int)       { c.writes.Add(1) }
func (c *countSyncs) ObserveSync(d time.Duration) { c.syncs.Add(1) }

// Concurrent writers share fdatasyncs, and each returns only once its own
// record is durable.
func TestGroupCommit(t *testing.T) {
	obs := &countSyncs{}
	s := mustOpen(t, t.TempDir(), Options{Observer: obs})
	defer s.Close()
	const writers, each = 16, 20
	var wg sync.WaitGroup
	var next atomic.Uint64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if w%2 == 0 {
					// entries: several StoreLogs calls in flight at once,
					// each started once the one before it is queued (so
					// they stay contiguous), none waiting for another's
					// fdatasync
					idx := next.Add(1)
					for {
						s.amu.Lock()
						ready := s.pend.last == idx-1
						s.amu.Unlock()
						if ready {
							break
						}
						time.Sleep(10 * time.Microsecond)
					}
					if err := s.StoreLogs([]*raft.Log{entry(idx, 1)}); err != nil {
						t.Error(err)
						return
					}
					if got, _ := s.LastIndex(); got < idx {
						t.Errorf("StoreLogs(%d) returned before the entry was durable (last %d)", idx, got)
					}
				} else {
					key := []byte{byte(w)}
					if err := s.SetUint64(key, uint64(i)); err != nil {
						t.Error(err)
						return
					}
					if v, _ := s.GetUint64(key); v != uint64(i) {
						t.Errorf("Set returned before the value was durable")
					}
				}
			}
		}()
	}
	wg.Wait()
	calls := int64(writers * each)
	t.Logf("%d calls, %d fdatasyncs", calls, obs.syncs.Load())
	if obs.syncs.Load() >= calls {
		t.Fatalf("%d fdatasyncs for %d concurrent calls: no group commit", obs.syncs.Load(), calls)
	}
	checkLog(t, s, entries(1, writers/2*each, 1))
}

// The index of a long-running store follows the log's length, not its
// history.
func TestMemoryFollowsTheLog(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer s.Close()
	const trailing = 2000
	var maxCap int
	for i := uint64(1); i <= 60_000; i += 250 {
		batch := make([]*raft.Log, 250)
		for k := range batch {
			batch[k] = &raft.Log{Index: i + uint64(k), Term: 1, Data: []byte("x")}
		}
		must(t, s.StoreLogs(batch))
		if last := i + 249; last%10_000 == 0 {
			must(t, s.DeleteRange(1, last-trailing))
		}
		s.smu.RLock()
		maxCap = max(maxCap, cap(s.v.idx))
		s.smu.RUnlock()
	}
	first, _ := s.FirstIndex()
	if first != 60_000-trailing+1 {
		t.Fatalf("first index %d", first)
	}
	// at most one snapshot interval plus the trailing entries, with slack
	if maxCap > 4*(10_000+trailing)+2048 {
		t.Fatalf("index capacity grew to %d entries", maxCap)
	}
	if n := len(segments(t, s.Dir())); n > 3 {
		t.Fatalf("%d segments kept", n)
	}
}
