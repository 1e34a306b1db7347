package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// buildLog writes records 1..n with small segments and returns the segment
// paths. The last record is large enough to span several sectors.
func buildLog(t *testing.T, dir string, n int, segSize int64) []string {
	t.Helper()
	l := mustOpen(t, dir, Options{SegmentSize: segSize})
	appendN(t, l, n-1)
	last := uint64(n)
	if _, err := l.Append(uint8(last), payload(last, 1300)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	return segmentFiles(t, dir)
}

// reopenAndCheck reopens dir and checks that records 1..keep are there
// (the last one may be buildLog's big record of lastSize bytes) and that the
// next append gets keep+1. It returns the open log.
func reopenAndCheck(t *testing.T, dir string, keep uint64, lastSize int) *Log {
	t.Helper()
	l := mustOpen(t, dir, Options{SegmentSize: 1 << 20})
	if l.LastLSN() != keep {
		t.Fatalf("LastLSN %d, want %d (recovery %+v)", l.LastLSN(), keep, l.Recovery())
	}
	recs := replayAll(t, l, 1)
	if lastSize > 0 && len(recs) > 0 && int(recs[len(recs)-1].lsn) == int(keep) && len(recs[len(recs)-1].data) == lastSize {
		recs = recs[:len(recs)-1] // the big last record, checked by the caller
	}
	checkRecords(t, recs, 1, min(keep, uint64(len(recs))))
	lsn, err := l.Append(uint8(keep+1), payload(keep+1, sizeOf(keep+1)))
	if err != nil || lsn != keep+1 {
		t.Fatalf("append after recovery: LSN %d, %v", lsn, err)
	}
	return l
}

// TestTornTailEveryOffset truncates the last segment at every byte offset
// inside its last record: Open cuts the partial record, keeps a .broken
// copy, reports the cut, and the log continues with the right LSN.
func TestTornTailEveryOffset(t *testing.T) {
	const n = 30
	src := filepath.Join(t.TempDir(), "src")
	segs := buildLog(t, src, n, 4096)
	lastSeg := segs[len(segs)-1]
	orig := readBytes(t, lastSeg)
	starts := recordStarts(t, orig)
	start := starts[len(starts)-1]
	if len(orig)-start != recordSize(1300) {
		t.Fatalf("last record at %d, file %d bytes", start, len(orig))
	}
	work := filepath.Join(t.TempDir(), "work")
	for cut := start; cut < len(orig); cut++ {
		copyDir(t, src, work)
		seg := filepath.Join(work, filepath.Base(lastSeg))
		writeBytes(t, seg, orig[:cut])

		l := reopenAndCheck(t, work, n-1, 0)
		r := l.Recovery()
		if cut == start {
			if r.TornFile != "" {
				t.Fatalf("cut %d on a record boundary reported a torn tail: %+v", cut, r)
			}
		} else {
			if r.TornFile != seg || r.TornOffset != int64(start) || r.TornBytes != int64(cut-start) {
				t.Fatalf("cut at %d: recovery %+v, want torn %s at %d, %d bytes", cut, r, seg, start, cut-start)
			}
			if got := readBytes(t, r.BrokenPath); !bytes.Equal(got, orig[:cut]) {
				t.Fatalf("cut at %d: .broken copy %s differs from the damaged segment", cut, r.BrokenPath)
			}
		}
		mustClose(t, l)
	}
}

// TestTornTailZeroFill zeroes the last record from every sector boundary
// inside it (a write whose later sectors never reached the disk).
func TestTornTailZeroFill(t *testing.T) {
	const n = 30
	src := filepath.Join(t.TempDir(), "src")
	segs := buildLog(t, src, n, 4096)
	lastSeg := segs[len(segs)-1]
	orig := readBytes(t, lastSeg)
	starts := recordStarts(t, orig)
	start := starts[len(starts)-1]
	points := []int{start, start + 8, start + 20, start + 24}
	for p := (start/sectorSize + 1) * sectorSize; p < len(orig); p += sectorSize {
		points = append(points, p)
	}
	work := filepath.Join(t.TempDir(), "work")
	for _, p := range points {
		copyDir(t, src, work)
		seg := filepath.Join(work, filepath.Base(lastSeg))
		data := bytes.Clone(orig)
		clear(data[p:])
		writeBytes(t, seg, data)
		changed := !bytes.Equal(data, orig) // zeroing only padding changes nothing

		keep := uint64(n - 1)
		if !changed {
			keep = n
		}
		l := reopenAndCheck(t, work, keep, 1300)
		r := l.Recovery()
		if changed && (r.TornOffset != int64(start) || r.TornBytes != int64(len(orig)-start)) {
			t.Fatalf("zeroed from %d: recovery %+v, want cut at %d", p, r, start)
		}
		if !changed && r.TornFile != "" {
			t.Fatalf("zeroed padding from %d: unexpected cut %+v", p, r)
		}
		mustClose(t, l)
	}
}

// TestTornTailZeroExtension: the file size grew but the data never arrived
// (zeros after the last record).
func TestTornTailZeroExtension(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 10, 1<<20)
	seg := segs[len(segs)-1]
	orig := readBytes(t, seg)
	writeBytes(t, seg, append(bytes.Clone(orig), make([]byte, 4096)...))
	l := reopenAndCheck(t, dir, 10, 1300)
	defer mustClose(t, l)
	if r := l.Recovery(); r.TornOffset != int64(len(orig)) || r.TornBytes != 4096 {
		t.Fatalf("recovery %+v", r)
	}
}

// TestEmptyLastSegment: a last segment that is empty, has a short header, or
// a zeroed header (created, then a crash) is fine.
func TestEmptyLastSegment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   []byte
		broken bool
	}{
		{"header only", appendSegmentHeader(nil, 11), false},
		{"zero length", nil, false},
		{"short header", []byte("BVRWA"), true},
		{"zeroed header", make([]byte, 16), true},
		{"zeroed page", make([]byte, 4096), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, 10, 1<<20)
			seg := filepath.Join(dir, segmentName(11))
			writeBytes(t, seg, tc.data)
			l := reopenAndCheck(t, dir, 10, 1300)
			defer mustClose(t, l)
			r := l.Recovery()
			if (r.BrokenPath != "") != tc.broken {
				t.Fatalf("recovery %+v: .broken copy %q, want one: %v", r, r.BrokenPath, tc.broken)
			}
			if len(tc.data) != segmentHeaderSize || tc.broken {
				if r.TornFile != seg || r.TornBytes != int64(len(tc.data)) {
					t.Fatalf("recovery %+v", r)
				}
			}
			if b := readBytes(t, seg); !bytes.HasPrefix(b, appendSegmentHeader(nil, 11)) {
				t.Fatalf("segment header not rewritten: % x", b[:min(len(b), 16)])
			}
		})
	}
}

// expectCorrupt expects Open to fail with a *CorruptionError naming file and
// offset, without touching the damaged segment.
func expectCorrupt(t *testing.T, dir, file string, wantOff int64) {
	t.Helper()
	l, err := Open(dir, Options{})
	if err == nil {
		l.Close()
		t.Fatalf("Open succeeded, want corruption in %s at %d", file, wantOff)
	}
	ce := asCorruption(t, err)
	if ce.File != file || ce.Offset != wantOff {
		t.Fatalf("got %v, want file %s offset %d", err, file, wantOff)
	}
	for _, s := range []string{file, fmt.Sprint(wantOff)} {
		if !bytes.Contains([]byte(err.Error()), []byte(s)) {
			t.Fatalf("message %q does not name %q", err, s)
		}
	}
	if _, err := os.Stat(file + ".broken"); err == nil {
		t.Fatalf("Open made a .broken copy of %s for corruption", file)
	}
}

// TestBitFlips flips a bit in every byte of a non-last segment, of the
// segment headers, and of every record of the last segment, the last record
// included: always ErrCorrupt at the damaged record, never a silent cut.
func TestBitFlips(t *testing.T) {
	const n = 30
	src := filepath.Join(t.TempDir(), "src")
	segs := buildLog(t, src, n, 2048)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	work := filepath.Join(t.TempDir(), "work")
	flip := func(segIdx int, offsets []int) {
		t.Helper()
		orig := readBytes(t, segs[segIdx])
		starts := recordStarts(t, orig)
		for _, off := range offsets {
			copyDir(t, src, work)
			seg := filepath.Join(work, filepath.Base(segs[segIdx]))
			data := bytes.Clone(orig)
			data[off] ^= 1 << (off % 8)
			writeBytes(t, seg, data)
			want := int64(0) // the damaged record's start, or the header field's
			switch {
			case off >= segmentHeaderSize:
				for _, s := range starts {
					if s <= off {
						want = int64(s)
					}
				}
			case off >= 8:
				want = 8
			}
			expectCorrupt(t, work, seg, want)
		}
	}
	every := func(from, to int) []int {
		var offs []int
		for i := from; i < to; i++ {
			offs = append(offs, i)
		}
		return offs
	}
	// Every byte of the first and a middle segment.
	flip(0, every(0, len(readBytes(t, segs[0]))))
	flip(len(segs)/2, every(0, len(readBytes(t, segs[len(segs)/2]))))
	// Every byte of the last segment: header, earlier records, last record.
	last := len(segs) - 1
	flip(last, every(0, len(readBytes(t, segs[last]))))
}

// writeSegment writes a segment with the given LSNs (payloads as appendN).
func writeSegment(t *testing.T, dir string, base uint64, lsns ...uint64) string {
	t.Helper()
	b := appendSegmentHeader(nil, base)
	for _, lsn := range lsns {
		b = appendRecord(b, lsn, uint8(lsn), payload(lsn, sizeOf(lsn)))
	}
	path := filepath.Join(dir, segmentName(base))
	writeBytes(t, path, b)
	return path
}

func TestLSNGap(t *testing.T) {
	for _, tc := range []struct {
		name string
		lsns []uint64 // the LSNs written into the second segment (base 2)
		bad  int      // index of the first bad record
	}{
		{"gap in the middle", []uint64{2, 3, 5, 6}, 2},
		{"gap at the end", []uint64{2, 3, 4, 6}, 3},
		{"repeat", []uint64{2, 3, 3, 4}, 2},
		{"first record", []uint64{3, 4}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSegment(t, dir, 1, 1) // a clean first segment
			b := appendSegmentHeader(nil, 2)
			var starts []int
			for _, lsn := range tc.lsns {
				starts = append(starts, len(b))
				b = appendRecord(b, lsn, 1, payload(lsn, 40))
			}
			seg := filepath.Join(dir, segmentName(2))
			writeBytes(t, seg, b)
			expectCorrupt(t, dir, seg, int64(starts[tc.bad]))
		})
	}
}

func TestMissingSegment(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 60, 1024)
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	if err := os.Remove(segs[1]); err != nil {
		t.Fatal(err)
	}
	expectCorrupt(t, dir, segs[2], 0)
}

func TestSegmentNameMismatch(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 60, 1024)
	// Rename the last segment: its header no longer matches its name, and
	// the names have a gap.
	base, _ := parseSegmentName(filepath.Base(segs[len(segs)-1]))
	renamed := filepath.Join(dir, segmentName(base+1))
	if err := os.Rename(segs[len(segs)-1], renamed); err != nil {
		t.Fatal(err)
	}
	expectCorrupt(t, dir, renamed, 0)
}

// TestValidRecordAfterDamage: a zeroed record in the middle of the last
// segment looks torn, but an intact record follows it: corruption.
func TestValidRecordAfterDamage(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 20, 1<<20)
	seg := segs[len(segs)-1]
	data := readBytes(t, seg)
	starts := recordStarts(t, data)
	bad := starts[10]
	clear(data[bad:starts[11]])
	writeBytes(t, seg, data)
	expectCorrupt(t, dir, seg, int64(bad))

	// Same with a short header: garbage where a record should start.
	copy(data[bad:], []byte{1, 2, 3, 4, 5})
	writeBytes(t, seg, data)
	expectCorrupt(t, dir, seg, int64(bad))
}

func TestCorruptNonLastSegmentTail(t *testing.T) {
	// A torn-looking tail in a segment that is not the last is corruption.
	dir := t.TempDir()
	segs := buildLog(t, dir, 60, 1024)
	data := readBytes(t, segs[0])
	writeBytes(t, segs[0], data[:len(data)-5])
	starts := recordStarts(t, data)
	expectCorrupt(t, dir, segs[0], int64(starts[len(starts)-1]))
}

func TestUnknownFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 5, 1<<20)
	writeBytes(t, filepath.Join(dir, "00000000000000000001.wal.broken"), []byte("junk"))
	writeBytes(t, filepath.Join(dir, "notes.txt"), []byte("junk"))
	writeBytes(t, filepath.Join(dir, "1.wal"), []byte("junk"))
	l := reopenAndCheck(t, dir, 5, 1300)
	mustClose(t, l)
}

// TestSecondTornTailKeepsFirstEvidence: two crashes in the same segment keep
// two .broken copies.
func TestSecondTornTailKeepsFirstEvidence(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 5, 1<<20)
	var brokens []string
	for range 2 {
		data := readBytes(t, segs[0])
		writeBytes(t, segs[0], append(data, 1, 2, 3)) // a short record header
		l := mustOpen(t, dir, Options{})
		brokens = append(brokens, l.Recovery().BrokenPath)
		mustClose(t, l)
	}
	if brokens[0] == "" || brokens[0] == brokens[1] {
		t.Fatalf(".broken copies %q", brokens)
	}
	for _, b := range brokens {
		if _, err := os.Stat(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptionErrorShape(t *testing.T) {
	err := error(&CorruptionError{File: "/x/1.wal", Offset: 40, LSN: 7, Reason: "CRC mismatch"})
	if !errors.Is(err, ErrCorrupt) || err.Error() != "wal: corrupt segment /x/1.wal at offset 40 (expected LSN 7): CRC mismatch" {
		t.Fatalf("%v", err)
	}
	ferr := error(&failedError{op: "fdatasync", cause: errInjectedSync})
	if !errors.Is(ferr, ErrFailed) || !errors.Is(ferr, errInjectedSync) {
		t.Fatalf("%v", ferr)
	}
}
