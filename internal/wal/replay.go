package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Replay calls fn for every record with LSN >= from, in LSN order, up to the
// last record appended successfully when Replay started. Records before
// FirstLSN are gone: Replay starts at the first record still present, and a
// caller that needs an unbroken sequence checks FirstLSN. data is valid only
// during the call. An error from fn stops the replay and is returned as is.
//
// Every record is checked again (framing, CRC, LSN sequence); damage gives a
// *CorruptionError. Replay may run while appends go on; fn must not call
// TruncateBefore or Close.
func (l *Log) Replay(from uint64, fn func(lsn uint64, typ uint8, data []byte) error) error {
	return l.replay(from, func(pos Pos, typ uint8, data []byte) error { return fn(pos.LSN, typ, data) })
}

// ReplayPos is Replay that also gives each record's position, for ReadAt.
func (l *Log) ReplayPos(from uint64, fn func(pos Pos, typ uint8, data []byte) error) error {
	return l.replay(from, fn)
}

func (l *Log) replay(from uint64, fn func(Pos, uint8, []byte) error) error {
	l.truncMu.RLock()
	defer l.truncMu.RUnlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	l.segMu.Lock()
	segs := slices.Clone(l.segs)
	last := l.lastLSN
	l.segMu.Unlock()

	r := segmentReader{fsys: l.fs}
	for i, s := range segs {
		end := last // the last LSN to read from this segment
		if i+1 < len(segs) {
			end = segs[i+1].base - 1
		}
		if end < s.base || end < from {
			continue
		}
		if err := r.replay(s, from, end, fn); err != nil {
			return err
		}
	}
	return nil
}

// segmentReader streams the records of segment files with reused buffers.
type segmentReader struct {
	fsys vfs.FS
	br   *bufio.Reader
	buf  []byte
}

// replay reads s from the start (bounded by s.size), checking every record,
// and calls fn for those with from <= LSN <= end.
func (r *segmentReader) replay(s segment, from, end uint64, fn func(Pos, uint8, []byte) error) error {
	f, err := r.fsys.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: replay: %w", err)
	}
	defer f.Close()
	src := io.NewSectionReader(f, 0, s.size)
	if r.br == nil {
		r.br = bufio.NewReaderSize(src, 256<<10)
	} else {
		r.br.Reset(src)
	}
	if len(r.buf) < recordHeaderSize {
		r.buf = make([]byte, 64<<10)
	}
	corrupt := func(off int64, lsn uint64, reason string) error {
		return &CorruptionError{File: s.path, Offset: off, LSN: lsn, Reason: reason}
	}
	readErr := func(off int64, lsn uint64, err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt(off, lsn, "segment shorter than when it was written")
		}
		return fmt.Errorf("wal: replay %s: %w", s.path, err)
	}

	hdr := r.buf[:segmentHeaderSize]
	if _, err := io.ReadFull(r.br, hdr); err != nil {
		return readErr(0, s.base, err)
	}
	if string(hdr[:len(segmentMagic)]) != segmentMagic ||
		binary.LittleEndian.Uint64(hdr[len(segmentMagic):]) != s.base {
		return corrupt(0, s.base, "bad segment header")
	}
	off := int64(segmentHeaderSize)
	for lsn := s.base; lsn <= end; lsn++ {
		if _, err := io.ReadFull(r.br, r.buf[:recordHeaderSize]); err != nil {
			return readErr(off, lsn, err)
		}
		rec, kind := decodeRecord(r.buf[:recordHeaderSize])
		if kind == recShort && rec.size > recordHeaderSize {
			if len(r.buf) < rec.size {
				r.buf = append(r.buf[:recordHeaderSize], make([]byte, rec.size-recordHeaderSize)...)
			}
			if _, err := io.ReadFull(r.br, r.buf[recordHeaderSize:rec.size]); err != nil {
				return readErr(off, lsn, err)
			}
			rec, kind = decodeRecord(r.buf[:rec.size])
		}
		if kind != recOK {
			return corrupt(off, lsn, kind.String())
		}
		if rec.lsn != lsn {
			return corrupt(off, lsn, fmt.Sprintf("record has LSN %d, want %d", rec.lsn, lsn))
		}
		if lsn >= from {
			if err := fn(Pos{LSN: lsn, Offset: off}, rec.typ, rec.data); err != nil {
				return err
			}
		}
		off += int64(rec.size)
	}
	return nil
}
