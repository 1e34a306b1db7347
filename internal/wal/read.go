package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Pos locates a record: its LSN and the byte offset of its frame in the
// segment file that holds it (the segment is found from the LSN).
// AppendAsyncPos and ReplayPos report it; ReadAt reads the record back.
type Pos struct {
	LSN    uint64
	Offset int64
}

// AppendAsyncPos is AppendAsyncClass whose callback also receives the
// record's position, so the caller can keep an index of the records it
// wants to read back at random (ReadAt). On error pos is the zero Pos.
func (l *Log) AppendAsyncPos(typ uint8, data []byte, class Class, done func(pos Pos, err error)) {
	l.appendAsync(typ, data, class, nil, done)
}

// ReadAt reads the record at pos, which AppendAsyncPos or ReplayPos
// reported, with a positioned read of its segment file. It checks the
// framing, the CRC and that the record has pos.LSN; damage gives a
// *CorruptionError. data is a slice of buf when buf is large enough (a new
// slice otherwise), so the caller may keep it as long as it does not reuse
// buf.
//
// A record before FirstLSN (its segment deleted by TruncateBefore) or
// after LastLSN gives an error matching ErrNotFound. ReadAt is safe to call
// concurrently with appends, Replay and other ReadAt calls; it keeps one
// read-only handle per segment it has read, closed when the segment is
// deleted and at Close.
func (l *Log) ReadAt(pos Pos, buf []byte) (typ uint8, data []byte, err error) {
	l.truncMu.RLock()
	defer l.truncMu.RUnlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return 0, nil, ErrClosed
	}
	seg, ok := l.segmentOf(pos.LSN)
	if !ok || pos.Offset < segmentHeaderSize || pos.Offset+recordHeaderSize > seg.size {
		return 0, nil, fmt.Errorf("%w: LSN %d at offset %d", ErrNotFound, pos.LSN, pos.Offset)
	}
	f, err := l.reader(seg)
	if err != nil {
		return 0, nil, fmt.Errorf("wal: read %s: %w", seg.path, err)
	}
	corrupt := func(reason string) error {
		return &CorruptionError{File: seg.path, Offset: pos.Offset, LSN: pos.LSN, Reason: reason}
	}
	if cap(buf) < recordHeaderSize {
		buf = make([]byte, 0, 512)
	}
	// The first read takes as much as buf holds (within the segment), so a
	// small record costs one pread.
	buf = buf[:min(int64(cap(buf)), seg.size-pos.Offset)]
	if _, err := f.ReadAt(buf, pos.Offset); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, corrupt("segment shorter than when it was written")
		}
		return 0, nil, fmt.Errorf("wal: read %s: %w", seg.path, err)
	}
	rec, kind := decodeRecord(buf)
	if kind == recShort && rec.size > len(buf) {
		if pos.Offset+int64(rec.size) > seg.size {
			return 0, nil, corrupt(recShort.String())
		}
		have := len(buf)
		if cap(buf) < rec.size {
			buf = append(buf, make([]byte, rec.size-have)...)
		}
		buf = buf[:rec.size]
		if _, err := f.ReadAt(buf[have:], pos.Offset+int64(have)); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, nil, corrupt("segment shorter than when it was written")
			}
			return 0, nil, fmt.Errorf("wal: read %s: %w", seg.path, err)
		}
		rec, kind = decodeRecord(buf)
	}
	if kind != recOK {
		return 0, nil, corrupt(kind.String())
	}
	if rec.lsn != pos.LSN {
		return 0, nil, corrupt(fmt.Sprintf("record has LSN %d, want %d", rec.lsn, pos.LSN))
	}
	return rec.typ, rec.data, nil
}

// SegmentOf returns the path of the segment file that holds the record
// with LSN lsn, or "" if no segment does (any more).
func (l *Log) SegmentOf(lsn uint64) string {
	seg, ok := l.segmentOf(lsn)
	if !ok {
		return ""
	}
	return seg.path
}

// segmentOf returns the segment holding lsn, with its size as of the last
// batch written.
func (l *Log) segmentOf(lsn uint64) (segment, bool) {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if lsn == 0 || lsn > l.lastLSN || len(l.segs) == 0 || lsn < l.segs[0].base {
		return segment{}, false
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > lsn }) - 1
	return l.segs[i], true
}

// reader returns the read-only handle of seg, opening it the first time.
// truncMu is held shared.
func (l *Log) reader(seg segment) (vfs.File, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if f, ok := l.readers[seg.base]; ok {
		return f, nil
	}
	f, err := l.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, segmentHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		f.Close()
		return nil, err
	}
	if string(hdr[:len(segmentMagic)]) != segmentMagic || binary.LittleEndian.Uint64(hdr[len(segmentMagic):]) != seg.base {
		f.Close()
		return nil, &CorruptionError{File: seg.path, LSN: seg.base, Reason: "bad segment header"}
	}
	if l.readers == nil {
		l.readers = map[uint64]vfs.File{}
	}
	l.readers[seg.base] = f
	return f, nil
}

// closeReader closes the read handle of the segment starting at base, if
// any. truncMu is held exclusively.
func (l *Log) closeReader(base uint64) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if f, ok := l.readers[base]; ok {
		f.Close()
		delete(l.readers, base)
	}
}

// closeReaders closes every read handle (at Close).
func (l *Log) closeReaders() {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.rmu.Lock()
	defer l.rmu.Unlock()
	for base, f := range l.readers {
		f.Close()
		delete(l.readers, base)
	}
}
