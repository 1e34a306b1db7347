package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestVerifyClean(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 40, 2048)
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 40 || rep.FirstLSN != 1 || rep.LastLSN != 40 || rep.Damage != nil || len(rep.Segments) != len(segs) {
		t.Fatalf("report %+v", rep)
	}
	var n uint64
	for _, s := range rep.Segments {
		if !s.Checked || s.FirstLSN != n+1 {
			t.Fatalf("segment %+v", s)
		}
		n += s.Records
	}
}

func TestVerifyTornTail(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 10, 1<<20)
	seg := segs[len(segs)-1]
	data := readBytes(t, seg)
	cut := data[:len(data)-100]
	writeBytes(t, seg, cut)
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Damage; d == nil || !d.Torn || d.File != seg || d.LSN != 10 || rep.LastLSN != 9 {
		t.Fatalf("report %+v damage %+v", rep, rep.Damage)
	}
	if !bytes.Equal(readBytes(t, seg), cut) {
		t.Fatal("Verify changed the segment")
	}
}

func TestVerifyCorrupt(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 40, 2048)
	data := readBytes(t, segs[1])
	starts := recordStarts(t, data)
	data[starts[2]+30] ^= 0x10
	writeBytes(t, segs[1], data)
	rep, err := Verify(dir, nil)
	ce := asCorruption(t, err)
	if ce.File != segs[1] || ce.Offset != int64(starts[2]) {
		t.Fatalf("error %v", err)
	}
	if rep.Damage == nil || rep.Damage.Torn || rep.Segments[2].Checked || !rep.Segments[1].Checked {
		t.Fatalf("report %+v", rep)
	}
}

func TestRepairMiddleRecord(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 60, 2048)
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	origs := make([][]byte, len(segs))
	for i, s := range segs {
		origs[i] = readBytes(t, s)
	}
	base1, _ := parseSegmentName(filepath.Base(segs[1]))
	starts := recordStarts(t, origs[1])
	data := bytes.Clone(origs[1])
	data[starts[3]+25] ^= 0x01 // payload bit of record base1+3
	writeBytes(t, segs[1], data)
	badLSN := base1 + 3

	rep, err := Repair(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damage == nil || rep.RemovedFromLSN != badLSN || rep.RemovedThroughLSN != 60 || rep.LastLSN != badLSN-1 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Removed) != len(segs)-1 {
		t.Fatalf("removed %+v", rep.Removed)
	}
	r0 := rep.Removed[0]
	if r0.File != segs[1] || r0.Offset != int64(starts[3]) || r0.Bytes != int64(len(data)-starts[3]) || r0.Deleted {
		t.Fatalf("first removed range %+v", r0)
	}
	if !bytes.Equal(readBytes(t, r0.Broken), data) {
		t.Fatal(".broken copy differs from the damaged segment")
	}
	for i, rr := range rep.Removed[1:] {
		if rr.File != segs[i+2] || !rr.Deleted || rr.Offset != 0 || !bytes.Equal(readBytes(t, rr.Broken), origs[i+2]) {
			t.Fatalf("removed %+v", rr)
		}
		if _, err := os.Stat(rr.File); !os.IsNotExist(err) {
			t.Fatalf("%s still exists", rr.File)
		}
	}
	if got := readBytes(t, segs[1]); !bytes.Equal(got, data[:starts[3]]) {
		t.Fatal("damaged segment not cut at the bad record")
	}

	l := mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 1), 1, badLSN-1)
	appendN(t, l, 1)
	if l.LastLSN() != badLSN {
		t.Fatalf("LastLSN %d", l.LastLSN())
	}
}

func TestRepairMissingSegment(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 60, 1024)
	if err := os.Remove(segs[1]); err != nil {
		t.Fatal(err)
	}
	base1, _ := parseSegmentName(filepath.Base(segs[1]))
	rep, err := Repair(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RemovedFromLSN != base1 || rep.LastLSN != base1-1 || rep.RemovedThroughLSN != 60 || len(rep.Removed) != len(segs)-2 {
		t.Fatalf("report %+v", rep)
	}
	for _, rr := range rep.Removed {
		if !rr.Deleted {
			t.Fatalf("removed %+v", rr)
		}
	}
	l := mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 1), 1, base1-1)
}

func TestRepairFirstSegmentHeader(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 60, 1024)
	data := readBytes(t, segs[0])
	data[3] ^= 0x40
	writeBytes(t, segs[0], data)
	rep, err := Repair(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RemovedFromLSN != 1 || rep.LastLSN != 0 || rep.Removed[0].Offset != 0 || rep.Removed[0].Deleted {
		t.Fatalf("report %+v", rep)
	}
	l := mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	if l.LastLSN() != 0 {
		t.Fatalf("LastLSN %d", l.LastLSN())
	}
	appendN(t, l, 2)
}

func TestRepairTornTailAndClean(t *testing.T) {
	dir := t.TempDir()
	segs := buildLog(t, dir, 10, 1<<20)
	rep, err := Repair(dir, nil) // clean: nothing to do
	if err != nil || rep.Damage != nil || len(rep.Removed) != 0 || rep.LastLSN != 10 {
		t.Fatalf("clean repair: %+v %v", rep, err)
	}
	seg := segs[0]
	data := readBytes(t, seg)
	writeBytes(t, seg, data[:len(data)-7])
	rep, err = Repair(dir, nil)
	if err != nil || rep.Damage == nil || !rep.Damage.Torn || rep.LastLSN != 9 || rep.RemovedThroughLSN != 0 {
		t.Fatalf("torn repair: %+v %v", rep, err)
	}
	l := mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	if l.Recovery().TornFile != "" || l.LastLSN() != 9 {
		t.Fatalf("recovery after repair %+v", l.Recovery())
	}
}
