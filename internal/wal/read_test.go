package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
)

// appendPos appends record lsn (payload(lsn, sizeOf(lsn)), type byte(lsn))
// with AppendAsyncPos and waits for its position.
func appendPos(t testing.TB, l *Log) Pos {
	t.Helper()
	want := l.LastLSN() + 1
	ch := make(chan struct{})
	var pos Pos
	var err error
	l.AppendAsyncPos(uint8(want), payload(want, sizeOf(want)), ClassNormal, func(p Pos, e error) {
		pos, err = p, e
		close(ch)
	})
	<-ch
	if err != nil {
		t.Fatalf("AppendAsyncPos: %v", err)
	}
	if pos.LSN != want {
		t.Fatalf("AppendAsyncPos got LSN %d, want %d", pos.LSN, want)
	}
	return pos
}

func checkReadAt(t testing.TB, l *Log, pos Pos) {
	t.Helper()
	typ, data, err := l.ReadAt(pos, nil)
	if err != nil {
		t.Fatalf("ReadAt(%+v): %v", pos, err)
	}
	if typ != uint8(pos.LSN) || !bytes.Equal(data, payload(pos.LSN, sizeOf(pos.LSN))) {
		t.Fatalf("ReadAt(%+v): type %d, %d bytes: not the record appended", pos, typ, len(data))
	}
}

// The positions AppendAsyncPos reports are those ReplayPos reports, across
// rotations and a reopen, and ReadAt reads each record back.
func TestAppendPosReadAt(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 2048}
	l := mustOpen(t, dir, opts)
	var got []Pos
	for range 120 {
		got = append(got, appendPos(t, l))
	}
	// a batch of many records at once: positions within one write
	var wg sync.WaitGroup
	var mu sync.Mutex
	batch := map[uint64]Pos{}
	for i := range 40 {
		wg.Add(1)
		lsn := uint64(121 + i)
		l.AppendAsyncPos(uint8(lsn), payload(lsn, sizeOf(lsn)), ClassNormal, func(p Pos, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("append: %v", err)
			}
			mu.Lock()
			batch[p.LSN] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	for lsn := uint64(121); lsn <= 160; lsn++ {
		got = append(got, batch[lsn])
	}
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("only %d segments", n)
	}
	for _, p := range got {
		checkReadAt(t, l, p)
	}
	check := func(l *Log) {
		t.Helper()
		i := 0
		err := l.ReplayPos(1, func(p Pos, typ uint8, data []byte) error {
			if p != got[i] {
				t.Fatalf("ReplayPos record %d at %+v, AppendAsyncPos said %+v", i, p, got[i])
			}
			i++
			return nil
		})
		if err != nil || i != len(got) {
			t.Fatalf("ReplayPos: %d records, %v", i, err)
		}
	}
	check(l)
	mustClose(t, l)
	if _, _, err := l.ReadAt(got[0], nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
	l = mustOpen(t, dir, opts)
	defer mustClose(t, l)
	check(l)
	for _, p := range got {
		checkReadAt(t, l, p)
	}
	if p := l.SegmentOf(got[0].LSN); filepath.Base(p) != "00000000000000000001.wal" {
		t.Fatalf("SegmentOf(1) = %q", p)
	}

	// Deleted segments and positions past the end are not found.
	if err := l.TruncateBefore(100); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.ReadAt(got[0], nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadAt of a deleted segment: %v", err)
	}
	if l.SegmentOf(got[0].LSN) != "" {
		t.Fatal("SegmentOf a deleted segment is not empty")
	}
	checkReadAt(t, l, got[len(got)-1])
	if _, _, err := l.ReadAt(Pos{LSN: 161, Offset: got[len(got)-1].Offset}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadAt past the end: %v", err)
	}
	// A position that does not start the record of its LSN is corruption.
	last := got[len(got)-1]
	if _, _, err := l.ReadAt(Pos{LSN: last.LSN - 1, Offset: last.Offset}, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAt with the wrong LSN: %v", err)
	}
}

// ReadAt detects a flipped bit in the record it reads.
func TestReadAtDetectsDamage(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	var got []Pos
	for range 10 {
		got = append(got, appendPos(t, l))
	}
	seg := segmentFiles(t, dir)[0]
	b := readBytes(t, seg)
	p := got[4]
	b[p.Offset+recordHeaderSize] ^= 0x10
	writeBytes(t, seg, b) // damage it under the open log
	_, _, err := l.ReadAt(p, nil)
	ce := asCorruption(t, err)
	if ce.File != seg || ce.Offset != p.Offset || ce.LSN != p.LSN {
		t.Fatalf("corruption %+v, want %s offset %d LSN %d", ce, seg, p.Offset, p.LSN)
	}
	checkReadAt(t, l, got[3])
	checkReadAt(t, l, got[5])
}

// ReadAt runs concurrently with appends, rotations and truncation (for the
// race detector).
func TestReadAtConcurrent(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentSize: 4096})
	defer mustClose(t, l)
	var mu sync.Mutex
	var pos []Pos
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 300 {
			p := appendPos(t, l)
			mu.Lock()
			pos = append(pos, p)
			mu.Unlock()
		}
		close(done)
	}()
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if i%50 == 49 {
				if err := l.TruncateBefore(l.LastLSN() / 2); err != nil {
					t.Error(err)
				}
			}
			mu.Lock()
			if len(pos) == 0 {
				mu.Unlock()
				continue
			}
			p := pos[i%len(pos)]
			mu.Unlock()
			typ, data, err := l.ReadAt(p, nil)
			switch {
			case errors.Is(err, ErrNotFound) && p.LSN < l.FirstLSN():
			case err != nil:
				t.Errorf("ReadAt(%+v): %v", p, err)
				return
			case typ != uint8(p.LSN) || !bytes.Equal(data, payload(p.LSN, sizeOf(p.LSN))):
				t.Errorf("ReadAt(%+v): wrong record", p)
				return
			}
		}
	}()
	wg.Wait()
}

// With NoSpaceFails an ENOSPC fails the log like any other write error, so
// no later append succeeds: the log on disk stays a prefix of the appends.
func TestNoSpaceFails(t *testing.T) {
	fsys := vfstest.New(1)
	dir := filepath.Join(t.TempDir(), "wal")
	l := mustOpen(t, dir, Options{FS: fsys, NoSpaceFails: true})
	defer l.Close()
	appendN(t, l, 5)
	fsys.SetCapacity(fsys.Used() + 100)
	if _, err := l.Append(1, make([]byte, 500)); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ErrFailed and ENOSPC", err)
	}
	fsys.SetCapacity(vfstest.Unlimited)
	if _, err := l.Append(1, []byte("x")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after the failure: %v, want ErrFailed", err)
	}
	if l.DiskFull() {
		t.Fatal("log entered the disk-full state")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("the in-memory log wrote to the real disk")
	}
}
