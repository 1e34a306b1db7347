package wal

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Damage describes the first bad spot in a log directory.
type Damage struct {
	File   string // path of the segment file
	Offset int64  // where the bad record (or header field) starts
	LSN    uint64 // the LSN expected at Offset
	Reason string
	// Torn is set for a torn tail of the last segment: an unacknowledged
	// write cut short by a crash, which Open cuts off (keeping a .broken
	// copy) instead of refusing to start.
	Torn bool
	// Bytes is the number of bytes from Offset to the end of File.
	Bytes int64
}

func (d *Damage) corruption() *CorruptionError {
	return &CorruptionError{File: d.File, Offset: d.Offset, LSN: d.LSN, Reason: d.Reason}
}

// segInfo is one segment file as found on disk.
type segInfo struct {
	path    string
	base    uint64 // first LSN, from the file name
	size    int64
	records uint64
}

// dirScan is the result of checking a whole log directory.
type dirScan struct {
	segs    []segInfo // every segment file, in LSN order
	checked int       // segs[:checked] were read and checked
	records uint64    // intact records before the damage (or in all)
	next    uint64    // the LSN after the last intact record
	damage  *Damage   // the first bad spot; nil if the log is clean
	dmgIdx  int       // index in segs of the damaged segment
	dmgData []byte    // the damaged segment's contents
}

// listSegments returns the segment files of dir in LSN order. Other files
// (.broken copies, anything else) are ignored.
func listSegments(fsys vfs.FS, dir string) ([]segInfo, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segInfo
	for _, name := range names {
		if base, ok := parseSegmentName(name); ok {
			segs = append(segs, segInfo{path: filepath.Join(dir, name), base: base})
		}
	}
	slices.SortFunc(segs, func(a, b segInfo) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})
	return segs, nil
}

// readFile reads the whole file at path, reusing buf when it is big enough.
func readFile(fsys vfs.FS, path string, buf []byte) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), buf); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return buf, nil
}

// scanDir reads and checks every segment of dir in order, stopping at the
// first damage. It changes nothing on disk. The error is for I/O failures
// only; damage is reported in the result.
func scanDir(fsys vfs.FS, dir string) (*dirScan, error) {
	segs, err := listSegments(fsys, dir)
	if err != nil {
		return nil, err
	}
	s := &dirScan{segs: segs, dmgIdx: -1}
	if len(segs) == 0 {
		return s, nil
	}
	s.next = segs[0].base
	var buf, window []byte
	for i := range segs {
		seg := &segs[i]
		// A clean segment (nearly always) is checked through a window; a
		// segment that is not is read whole and checked again, for the
		// verdict and the evidence.
		if seg.base == s.next {
			var records uint64
			var ok bool
			records, seg.size, ok, window, err = scanClean(fsys, seg.path, seg.base, window)
			if err != nil {
				return nil, err
			}
			if ok {
				s.checked = i + 1
				seg.records = records
				s.records += records
				s.next = seg.base + records
				continue
			}
		}
		data, err := readFile(fsys, seg.path, buf)
		if err != nil {
			return nil, err
		}
		buf = data
		seg.size = int64(len(data))
		s.checked = i + 1
		var bad *badSpot
		if seg.base != s.next {
			bad = &badSpot{reason: fmt.Sprintf(
				"segment starts at LSN %d, want %d: a segment is missing or out of place", seg.base, s.next)}
		} else {
			var records uint64
			records, bad = checkSegment(data, seg.base, i == len(segs)-1)
			seg.records = records
			s.records += records
			s.next = seg.base + records
		}
		if bad != nil {
			s.damage = &Damage{
				File:   seg.path,
				Offset: int64(bad.off),
				LSN:    s.next,
				Reason: bad.reason,
				Torn:   bad.torn,
				Bytes:  int64(len(data) - bad.off),
			}
			s.dmgIdx = i
			s.dmgData = data
			return s, nil
		}
	}
	return s, nil
}

// scanWindow is the size of the window scanClean reads a segment through
// (it grows to hold a larger record).
const scanWindow = 1 << 20

// scanClean reads the segment at path through a window (window, grown or
// made with scanWindow bytes if need be, returned for reuse) and reports whether checkSegment
// would find it clean: a header naming base, then intact records in LSN
// order from base up to the last byte. If so it returns the records and the
// file's size. When ok is false the segment is not clean, and checkSegment
// over the whole file says why; the error is for I/O failures only.
func scanClean(fsys vfs.FS, path string, base uint64, window []byte) (records uint64, size int64, ok bool, _ []byte, err error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, false, window, err
	}
	defer f.Close()
	if size, err = f.Size(); err != nil {
		return 0, 0, false, window, err
	}
	if cap(window) < recordHeaderSize {
		window = make([]byte, scanWindow)
	}
	buf := window[:cap(window)]
	// buf[r:w] holds the file's bytes [off, off+w-r)
	var r, w int
	var off int64
	// fill makes the window hold need bytes, or all the file has left.
	fill := func(need int) error {
		if rem := size - off; int64(need) > rem {
			need = int(rem)
		}
		if w-r >= need {
			return nil
		}
		w = copy(buf, buf[r:w])
		r = 0
		if need > len(buf) {
			nb := make([]byte, need)
			copy(nb, buf[:w])
			buf = nb
		}
		k := min(int64(len(buf)-w), size-off-int64(w))
		if _, err := io.ReadFull(io.NewSectionReader(f, off+int64(w), k), buf[w:w+int(k)]); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		w += int(k)
		return nil
	}
	if err := fill(segmentHeaderSize); err != nil {
		return 0, 0, false, buf, err
	}
	if w < segmentHeaderSize || string(buf[:len(segmentMagic)]) != segmentMagic ||
		binary.LittleEndian.Uint64(buf[len(segmentMagic):]) != base {
		return 0, 0, false, buf, nil
	}
	r, off = segmentHeaderSize, segmentHeaderSize
	lsn := base
	for off < size {
		if err := fill(recordHeaderSize); err != nil {
			return 0, 0, false, buf, err
		}
		// decodeRecord reads no byte past the record's size, so a window
		// holding the whole record decides as the whole file would
		rec, kind := decodeRecord(buf[r:w])
		if kind == recShort && rec.size > w-r {
			if err := fill(rec.size); err != nil {
				return 0, 0, false, buf, err
			}
			rec, kind = decodeRecord(buf[r:w])
		}
		if kind != recOK || rec.lsn != lsn {
			return 0, 0, false, buf, nil
		}
		lsn++
		r += rec.size
		off += int64(rec.size)
	}
	return lsn - base, size, true, buf, nil
}

// badSpot is where and why checkSegment stopped.
type badSpot struct {
	off    int
	reason string
	torn   bool
}

// checkSegment checks a segment's bytes: the header, then every record in
// LSN order from base. It returns the number of intact records and, if the
// segment does not end cleanly, the first bad spot. Only in the last segment
// (last) can a bad spot be a torn tail.
func checkSegment(data []byte, base uint64, last bool) (uint64, *badSpot) {
	if len(data) < segmentHeaderSize {
		return 0, &badSpot{reason: fmt.Sprintf("short segment header (%d bytes)", len(data)), torn: last}
	}
	if string(data[:len(segmentMagic)]) != segmentMagic {
		if last && allZero(data) {
			return 0, &badSpot{reason: "torn write: zeroed segment header", torn: true}
		}
		return 0, &badSpot{reason: fmt.Sprintf("bad segment magic %q", data[:len(segmentMagic)])}
	}
	if h := binary.LittleEndian.Uint64(data[len(segmentMagic):]); h != base {
		return 0, &badSpot{off: len(segmentMagic),
			reason: fmt.Sprintf("segment header says first LSN %d, file name says %d", h, base)}
	}
	lsn := base
	for off := segmentHeaderSize; off < len(data); {
		rec, kind := decodeRecord(data[off:])
		if kind == recOK && rec.lsn != lsn {
			return lsn - base, &badSpot{off: off, reason: fmt.Sprintf("record has LSN %d, want %d", rec.lsn, lsn)}
		}
		if kind != recOK {
			spot := &badSpot{off: off, reason: kind.String()}
			if last {
				spot.torn, spot.reason = classifyTail(data, off, lsn, rec, kind)
			}
			return lsn - base, spot
		}
		lsn++
		off += rec.size
	}
	return lsn - base, nil
}

// classifyTail decides whether the bad record at off in the last segment is a
// torn write. It is when the record runs past the end of the file, its length
// words are zero, or its CRC fails and one of its sectors is all zeros; and
// in every case only if no intact record with LSN >= lsn follows it.
// Anything else is corruption.
func classifyTail(data []byte, off int, lsn uint64, rec record, kind badKind) (bool, string) {
	reason := kind.String()
	switch kind {
	case recShort, recZero:
	case recCRC:
		// Only the header and payload count: padding is zero by construction
		// and says nothing about whether the write reached the disk.
		if !hasZeroSector(data, off, off+recordHeaderSize+len(rec.data)) {
			return false, reason
		}
		reason = "CRC mismatch in a record with a zeroed sector"
	default:
		return false, reason
	}
	if p, l, ok := findValidRecord(data, off+recordAlign, lsn); ok {
		return false, fmt.Sprintf("%s, but an intact record with LSN %d follows at offset %d", reason, l, p)
	}
	return true, "torn write: " + reason
}
