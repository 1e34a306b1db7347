package wal

import (
	"fmt"
	"slices"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Report is the result of Verify.
type Report struct {
	Segments []SegmentReport
	Records  uint64 // intact records before the first damage (or in all)
	FirstLSN uint64 // 0 if no record
	LastLSN  uint64 // last intact record's LSN (see Log.LastLSN)
	// Damage is the first bad spot, nil if the log is clean. With
	// Damage.Torn, Open would cut it off; otherwise Open refuses to start
	// and Verify returns a *CorruptionError too.
	Damage *Damage
}

// SegmentReport describes one segment file.
type SegmentReport struct {
	File     string
	FirstLSN uint64 // from the file name
	Records  uint64 // intact records
	Bytes    int64
	Checked  bool // false for the segments after the first damage
}

// Verify checks the log in dir without changing anything, with the same
// rules as Open: every segment header, record frame, CRC and the LSN
// sequence. It returns a *CorruptionError (with the report) when Open would
// refuse the log; a torn tail that Open would cut is reported in
// Report.Damage with a nil error. It must not run against a log that is
// being written. fsys nil means vfs.OS.
func Verify(dir string, fsys vfs.FS) (Report, error) {
	if fsys == nil {
		fsys = vfs.OS
	}
	s, err := scanDir(fsys, dir)
	if err != nil {
		return Report{}, fmt.Errorf("wal: verify %s: %w", dir, err)
	}
	rep := Report{Records: s.records, Damage: s.damage}
	for i, seg := range s.segs {
		rep.Segments = append(rep.Segments, SegmentReport{
			File: seg.path, FirstLSN: seg.base, Records: seg.records, Bytes: seg.size, Checked: i < s.checked,
		})
	}
	if len(s.segs) > 0 {
		rep.LastLSN = s.next - 1
		if s.records > 0 {
			rep.FirstLSN = s.segs[0].base
		}
	}
	if s.damage != nil && !s.damage.Torn {
		return rep, s.damage.corruption()
	}
	return rep, nil
}

// RepairReport says what Repair removed.
type RepairReport struct {
	// Damage is what Repair found and cut off; nil if the log was clean and
	// nothing was changed.
	Damage *Damage
	// LastLSN is the last LSN left in the log; the next append gets
	// LastLSN+1.
	LastLSN uint64
	// Records with LSN >= RemovedFromLSN were removed. RemovedThroughLSN is
	// the highest LSN of an intact record among the removed bytes, 0 if
	// none was intact (only the damaged record itself was lost).
	RemovedFromLSN    uint64
	RemovedThroughLSN uint64
	// Removed lists every byte range removed, oldest segment first.
	Removed []RemovedRange
}

// RemovedRange is a byte range removed from a segment file by Repair.
type RemovedRange struct {
	File   string
	Broken string // the .broken copy of the whole file, made before the change
	Offset int64  // first byte removed
	Bytes  int64  // bytes removed (to the former end of the file)
	// Deleted: the whole file was removed. Otherwise the file was cut at
	// Offset, or, for damage in the header of the first segment (Offset <
	// 16), rewritten with a fresh header.
	Deleted bool
}

// Repair cuts the log in dir at its first bad record: it saves a .broken
// copy of the damaged segment (fsynced) and cuts it there, and saves and
// deletes every later segment, newest first. Everything kept passes Verify,
// so Open succeeds afterwards. A clean log is left alone. Repair must not
// run while the log is open. fsys nil means vfs.OS.
//
// Repair loses data: the records it removes may have been acknowledged. It
// is for an operator who has read Verify's report; the .broken copies keep
// the evidence.
func Repair(dir string, fsys vfs.FS) (RepairReport, error) {
	if fsys == nil {
		fsys = vfs.OS
	}
	s, err := scanDir(fsys, dir)
	if err != nil {
		return RepairReport{}, fmt.Errorf("wal: repair %s: %w", dir, err)
	}
	if len(s.segs) == 0 {
		return RepairReport{}, nil
	}
	d := s.damage
	if d == nil {
		return RepairReport{LastLSN: s.next - 1}, nil
	}
	rep := RepairReport{Damage: d, LastLSN: d.LSN - 1, RemovedFromLSN: d.LSN}
	noteLSN := func(data []byte, from int) {
		if lsn, ok := maxValidLSN(data, from); ok && lsn >= d.LSN && lsn > rep.RemovedThroughLSN {
			rep.RemovedThroughLSN = lsn
		}
	}
	noteLSN(s.dmgData, int(d.Offset))
	dmgData := s.dmgData

	// Later segments first, newest first: a crash part way leaves a log
	// without gaps, and Repair can run again.
	for j := len(s.segs) - 1; j > s.dmgIdx; j-- {
		seg := s.segs[j]
		data, err := readFile(fsys, seg.path, nil)
		if err != nil {
			return rep, fmt.Errorf("wal: repair: %w", err)
		}
		noteLSN(data, segmentHeaderSize)
		rr := RemovedRange{File: seg.path, Bytes: int64(len(data)), Deleted: true}
		if len(data) > 0 {
			if rr.Broken, err = saveBroken(fsys, seg.path, data); err != nil {
				return rep, err
			}
		}
		if err := removeFile(fsys, seg.path); err != nil {
			return rep, fmt.Errorf("wal: repair: %w", err)
		}
		rep.Removed = append(rep.Removed, rr)
	}

	seg := s.segs[s.dmgIdx]
	rr := RemovedRange{File: seg.path, Offset: d.Offset, Bytes: d.Bytes}
	if len(dmgData) > 0 {
		if rr.Broken, err = saveBroken(fsys, seg.path, dmgData); err != nil {
			return rep, err
		}
	}
	switch {
	case d.Offset >= segmentHeaderSize:
		err = truncateFile(fsys, seg.path, d.Offset)
	case s.dmgIdx == 0:
		// The first segment's name fixes the log's first LSN; keep it.
		rr.Offset, rr.Bytes = 0, int64(len(dmgData))
		err = resetSegment(fsys, seg.path, seg.base)
	default:
		rr.Offset, rr.Bytes, rr.Deleted = 0, int64(len(dmgData)), true
		err = removeFile(fsys, seg.path)
	}
	if err != nil {
		return rep, fmt.Errorf("wal: repair: %w", err)
	}
	rep.Removed = append(rep.Removed, rr)
	slices.Reverse(rep.Removed)
	return rep, nil
}
