package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// store is what raftrep needs of either log store.
type store interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// kinds are the stores the conformance tests run against: this package's
// and raft-boltdb, so the tests show the two behave alike.
var kinds = []struct {
	name string
	open func(t testing.TB, dir string) store
}{
	{"wal", func(t testing.TB, dir string) store { return mustOpen(t, dir, Options{}) }},
	{"bolt", func(t testing.TB, dir string) store {
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func mustOpen(t testing.TB, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

// entry is the test entry of index i in term: every field set.
func entry(i, term uint64) *raft.Log {
	l := &raft.Log{
		Index: i, Term: term, Type: raft.LogType(i % 6),
		Data:       []byte(fmt.Sprintf("entry %d of term %d", i, term)),
		AppendedAt: time.Unix(1_700_000_000+int64(i), int64(i*7919)%1e9),
	}
	if i%3 == 0 {
		l.Extensions = []byte(fmt.Sprintf("ext %d", i))
	}
	if i%5 == 0 {
		l.Data = nil
	}
	if i%7 == 0 {
		l.AppendedAt = time.Time{}
	}
	return l
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) && a.AppendedAt.Equal(b.AppendedAt)
}

// checkLog checks that s holds exactly the entries want (nil: none).
func checkLog(t testing.TB, s raft.LogStore, want []*raft.Log) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var wf, wl uint64
	if len(want) > 0 {
		wf, wl = want[0].Index, want[len(want)-1].Index
	}
	if first != wf || last != wl {
		t.Fatalf("FirstIndex %d LastIndex %d, want %d %d", first, last, wf, wl)
	}
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", w.Index, err)
		}
		if !sameLog(&got, w) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", w.Index, got, *w)
		}
	}
	for _, i := range []uint64{0, wf - 1, wl + 1, wl + 100} {
		if i >= wf && i <= wl && len(want) > 0 {
			continue
		}
		var got raft.Log
		if err := s.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) of an index not held: %v, want ErrLogNotFound", i, err)
		}
	}
}

func forEachKind(t *testing.T, fn func(t *testing.T, open func() store)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			fn(t, func() store {
				s := k.open(t, dir)
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// Conformance, after raft-boltdb's bolt_store_test.go: the same checks
// against both stores.

func TestConformanceIndexes(t *testing.T) {
	forEachKind(t, func(t *testing.T, open func() store) {
		s := open()
		checkLog(t, s, nil)
		if err := s.StoreLogs(entries(1, 3, 1)); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, entries(1, 3, 1))
		if err := s.StoreLog(entry(4, 1)); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, entries(1, 4, 1))
	})
}

func TestConformanceGetLog(t *testing.T) {
	forEachKind(t, func(t *testing.T, open func() store) {
		s := open()
		var l raft.Log
		if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog of an empty store: %v", err)
		}
		want := entries(1, 30, 2)
		if err := s.StoreLogs(want); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, want)
		// every field comes back, the zero time and empty slices included
		for _, i := range []uint64{3, 5, 7, 21} {
			var got raft.Log
			if err := s.GetLog(i, &got); err != nil {
				t.Fatal(err)
			}
			w := want[i-1]
			if !got.AppendedAt.Equal(w.AppendedAt) || len(got.Data) != len(w.Data) || len(got.Extensions) != len(w.Extensions) {
				t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *w)
			}
		}
	})
}

func TestConformanceDeleteRange(t *testing.T) {
	forEachKind(t, func(t *testing.T, open func() store) {
		s := open()
		if err := s.StoreLogs(entries(1, 20, 1)); err != nil {
			t.Fatal(err)
		}
		// head (compaction after a snapshot)
		if err := s.DeleteRange(1, 5); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, entries(6, 20, 1))
		// tail (a follower's conflicting entries), then new ones in their place
		if err := s.DeleteRange(15, 20); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, entries(6, 14, 1))
		if err := s.StoreLogs(entries(15, 17, 3)); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, append(entries(6, 14, 1), entries(15, 17, 3)...))
		// a range past either end only deletes what is held
		if err := s.DeleteRange(1, 7); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(17, 40); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, append(entries(8, 14, 1), entries(15, 16, 3)...))
		// everything
		if err := s.DeleteRange(8, 16); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, nil)
		if err := s.StoreLogs(entries(17, 18, 4)); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, entries(17, 18, 4))
	})
}

func TestConformanceStable(t *testing.T) {
	forEachKind(t, func(t *testing.T, open func() store) {
		s := open()
		if _, err := s.Get([]byte("nope")); err == nil || err.Error() != "not found" {
			t.Fatalf("Get of a missing key: %v, want \"not found\" (raft compares the text)", err)
		}
		if _, err := s.GetUint64([]byte("nope")); err == nil || err.Error() != "not found" {
			t.Fatalf("GetUint64 of a missing key: %v", err)
		}
		if err := s.Set([]byte("k"), []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if err := s.Set([]byte("k"), []byte("v2")); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
			t.Fatalf("GetUint64 = %d, %v", v, err)
		}
	})
}

// raft.HasExistingState reads both stores; a fresh store has none, and one
// with a term or an entry has some.
func TestConformanceExistingState(t *testing.T) {
	forEachKind(t, func(t *testing.T, open func() store) {
		s := open()
		snaps := raft.NewInmemSnapshotStore()
		if ok, err := raft.HasExistingState(s, s, snaps); err != nil || ok {
			t.Fatalf("fresh store: existing state %v, %v", ok, err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
			t.Fatal(err)
		}
		if ok, err := raft.HasExistingState(s, s, snaps); err != nil || !ok {
			t.Fatalf("store with a term: existing state %v, %v", ok, err)
		}
	})
}

// What only this store does.

// Everything survives a reopen: entries, the truncate-tail record and the
// entries that replaced the deleted ones, compaction, the stable store.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 4096}
	s := mustOpen(t, dir, o)
	must(t, s.StoreLogs(entries(1, 100, 1)))
	must(t, s.SetUint64([]byte("CurrentTerm"), 1))
	must(t, s.DeleteRange(91, 100)) // conflict
	must(t, s.StoreLogs(entries(91, 95, 2)))
	must(t, s.SetUint64([]byte("CurrentTerm"), 2))
	must(t, s.Set([]byte("LastVoteCand"), []byte("n2")))
	want := append(entries(1, 90, 1), entries(91, 95, 2)...)
	checkLog(t, s, want)
	must(t, s.Close())

	s = mustOpen(t, dir, o)
	checkLog(t, s, want)
	checkStable(t, s, map[string]string{"CurrentTerm": u64(2), "LastVoteCand": "n2"})
	if r := s.Recovery(); r.First != 1 || r.Last != 95 || r.Keys != 2 {
		t.Fatalf("recovery %+v", r)
	}
	must(t, s.DeleteRange(1, 60)) // compaction
	must(t, s.Set([]byte("LastVoteCand"), []byte("n3")))
	must(t, s.Close())

	s = mustOpen(t, dir, o)
	defer s.Close()
	checkLog(t, s, want[60:])
	checkStable(t, s, map[string]string{"CurrentTerm": u64(2), "LastVoteCand": "n3"})
	// appends go on after the reopen
	must(t, s.StoreLogs(entries(96, 97, 3)))
	checkLog(t, s, append(want[60:], entries(96, 97, 3)...))
}

// Compaction deletes the segments holding only records before the new
// first entry, keeps the stable store (whose records were in them), and
// FirstIndex is right after a restart.
func TestCompactionAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 4096}
	s := mustOpen(t, dir, o)
	must(t, s.SetUint64([]byte("CurrentTerm"), 7)) // in the first segment
	must(t, s.Set([]byte("LastVoteCand"), []byte("n1")))
	for i := uint64(1); i <= 1000; i += 50 {
		must(t, s.StoreLogs(entries(i, i+49, 7)))
	}
	before := segments(t, dir)
	if len(before) < 10 {
		t.Fatalf("only %d segments", len(before))
	}
	must(t, s.DeleteRange(1, 900))
	after := segments(t, dir)
	if len(after) >= len(before)/2 || after[0] == before[0] {
		t.Fatalf("compaction kept %d of %d segments (first %s)", len(after), len(before), after[0])
	}
	checkLog(t, s, entries(901, 1000, 7))
	must(t, s.Close())

	s = mustOpen(t, dir, o)
	checkLog(t, s, entries(901, 1000, 7))
	checkStable(t, s, map[string]string{"CurrentTerm": u64(7), "LastVoteCand": "n1"})

	// compacting everything (raft, after restoring a snapshot on a
	// monotonic store), then the log starts again at the snapshot's index
	must(t, s.DeleteRange(901, 1000))
	checkLog(t, s, nil)
	must(t, s.Close())
	s = mustOpen(t, dir, o)
	checkLog(t, s, nil)
	checkStable(t, s, map[string]string{"CurrentTerm": u64(7), "LastVoteCand": "n1"})
	must(t, s.StoreLogs(entries(5000, 5009, 8)))
	must(t, s.Close())
	s = mustOpen(t, dir, o)
	defer s.Close()
	checkLog(t, s, entries(5000, 5009, 8))
	if n := len(segments(t, dir)); n > 2 {
		t.Fatalf("%d segments left after deleting everything", n)
	}
}

// The conflict marker: entries after it are deleted on replay and the ones
// stored later win, also when the old ones were in earlier segments, and
// also when it deletes more than once.
func TestTruncateTailMarker(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 2048}
	s := mustOpen(t, dir, o)
	must(t, s.StoreLogs(entries(1, 80, 1)))
	must(t, s.DeleteRange(41, 80))
	must(t, s.StoreLogs(entries(41, 60, 2)))
	must(t, s.DeleteRange(51, 100)) // beyond the end: deletes 51..60
	must(t, s.StoreLogs(entries(51, 55, 3)))
	want := append(append(entries(1, 40, 1), entries(41, 50, 2)...), entries(51, 55, 3)...)
	checkLog(t, s, want)
	// nothing before the current end was cut out of a file
	must(t, s.Close())
	s = mustOpen(t, dir, o)
	checkLog(t, s, want)
	if r := s.Recovery(); r.Records != 80+1+20+1+5 {
		t.Fatalf("replayed %d records, want every one written (%d)", r.Records, 80+1+20+1+5)
	}
	// compaction past the replaced entries
	must(t, s.DeleteRange(1, 45))
	must(t, s.Close())
	s = mustOpen(t, dir, o)
	defer s.Close()
	checkLog(t, s, want[45:])
}

// Calls that break the store's rules fail without writing anything.
func TestRefusedCalls(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	must(t, s.StoreLogs(entries(1, 10, 1)))
	for _, c := range []struct {
		name string
		logs []*raft.Log
	}{
		{"overlap", entries(10, 11, 1)},
		{"before the first", entries(1, 1, 1)},
		{"index 0", []*raft.Log{{Index: 0}}},
		{"hole in the batch", []*raft.Log{entry(11, 1), entry(13, 1)}},
	} {
		if err := s.StoreLogs(c.logs); !errors.Is(err, ErrNotContiguous) {
			t.Errorf("%s: %v, want ErrNotContiguous", c.name, err)
		}
	}
	big := &raft.Log{Index: 11, Data: make([]byte, MaxData+1)}
	if err := s.StoreLogs([]*raft.Log{big}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge entry: %v", err)
	}
	if err := s.DeleteRange(4, 6); !errors.Is(err, ErrUnsupported) {
		t.Errorf("delete in the middle: %v", err)
	}
	must(t, s.DeleteRange(20, 30)) // nothing held: no-op
	must(t, s.DeleteRange(9, 3))   // empty range: no-op
	checkLog(t, s, entries(1, 10, 1))
	if s.Err() != nil {
		t.Fatalf("store failed: %v", s.Err())
	}
	must(t, s.StoreLogs(entries(11, 11, 1)))
	must(t, s.Close())
	if err := s.StoreLogs(entries(12, 12, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLogs after Close: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func u64(v uint64) string {
	var b [8]byte
	for i := range 8 {
		b[7-i] = byte(v >> (8 * i))
	}
	return string(b[:])
}

func checkStable(t testing.TB, s raft.StableStore, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, err := s.Get([]byte(k))
		if err != nil || string(got) != v {
			t.Fatalf("Get(%s) = %q, %v; want %q", k, got, err, v)
		}
	}
}

func segments(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Entries that start after a gap delete the log before them (raft sends
// them after a snapshot covering the gap, when a crash came between
// installing it and deleting the old log), durably.
func TestGapDeletesTheLog(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 2048}
	s := mustOpen(t, dir, o)
	must(t, s.SetUint64([]byte("CurrentTerm"), 3))
	for i := uint64(1); i <= 100; i += 10 {
		must(t, s.StoreLogs(entries(i, i+9, 1)))
	}
	before := len(segments(t, dir))
	must(t, s.StoreLogs(entries(151, 160, 2)))
	checkLog(t, s, entries(151, 160, 2))
	if after := len(segments(t, dir)); after >= before {
		t.Fatalf("%d segments before, %d after: the old log was not deleted", before, after)
	}
	must(t, s.Close())
	s = mustOpen(t, dir, o)
	defer s.Close()
	checkLog(t, s, entries(151, 160, 2))
	checkStable(t, s, map[string]string{"CurrentTerm": u64(3)})
}
