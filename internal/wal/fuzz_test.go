package wal

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

func TestDecodeRecord(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 100, 4096} {
		data := payload(uint64(n), n)
		b := appendRecord(nil, 42, 9, data)
		if len(b) != recordSize(n) || len(b)%8 != 0 {
			t.Fatalf("size %d for payload %d", len(b), n)
		}
		r, kind := decodeRecord(b)
		if kind != recOK || r.lsn != 42 || r.typ != 9 || !bytes.Equal(r.data, data) || r.size != len(b) {
			t.Fatalf("decode: %v %+v", kind, r)
		}
		for i := 1; i < len(b); i++ {
			if _, kind := decodeRecord(b[:i]); kind != recShort {
				t.Fatalf("payload %d cut at %d: %v", n, i, kind)
			}
		}
	}
	if _, kind := decodeRecord(make([]byte, 24)); kind != recZero {
		t.Fatalf("zeros: %v", kind)
	}
}

func TestSegmentNames(t *testing.T) {
	if segmentName(1) != "00000000000000000001.wal" {
		t.Fatal(segmentName(1))
	}
	for name, want := range map[string]uint64{
		"00000000000000000001.wal":        1,
		"18446744073709551615.wal":        1<<64 - 1,
		"00000000000000000000.wal":        0, // LSNs start at 1
		"99999999999999999999.wal":        0, // overflow
		"0000000000000000001.wal":         0,
		"00000000000000000001.wal.broken": 0,
		"0000000000000000000a.wal":        0,
		"+0000000000000000001.wal":        0,
	} {
		got, ok := parseSegmentName(name)
		if got != want || ok != (want != 0) {
			t.Errorf("parseSegmentName(%q) = %d, %v", name, got, ok)
		}
	}
}

// FuzzDecodeRecord: the decoder and the recovery scanners never panic, and
// what decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 1, 2, []byte("hello")))
	f.Add(appendRecord(nil, 7, 0, nil))
	f.Add(make([]byte, 40))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(append(appendSegmentHeader(nil, 1), appendRecord(nil, 1, 1, []byte("x"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, kind := decodeRecord(b)
		if kind == recOK {
			if again := appendRecord(nil, r.lsn, r.typ, r.data); !bytes.Equal(again, b[:r.size]) {
				t.Fatalf("re-encoding differs")
			}
		}
		hasZeroSector(b, 0, len(b))
		findValidRecord(b, 0, 0)
		maxValidLSN(b, 3)
		checkSegment(b, 1, true)
		checkSegment(b, 1, false)
	})
}

// FuzzOpen: arbitrary bytes as the last segment. Open either succeeds or
// returns ErrCorrupt, and agrees with Verify.
func FuzzOpen(f *testing.F) {
	valid := appendSegmentHeader(nil, 1)
	for i := uint64(1); i <= 3; i++ {
		valid = appendRecord(valid, i, 1, payload(i, int(i*50)))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-9])
	f.Add(append(bytes.Clone(valid), make([]byte, 600)...))
	f.Add([]byte{})
	f.Add([]byte("BVRWAL01"))
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		writeBytes(t, filepath.Join(dir, segmentName(1)), b)
		_, verr := Verify(dir, nil)
		if verr != nil && !errors.Is(verr, ErrCorrupt) {
			t.Fatalf("Verify: %v", verr)
		}
		l, err := Open(dir, Options{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v", err)
			}
			if verr == nil {
				t.Fatalf("Open failed (%v) but Verify passed", err)
			}
			return
		}
		defer l.Close()
		if verr != nil {
			t.Fatalf("Open succeeded but Verify failed: %v", verr)
		}
		n := uint64(0)
		if err := l.Replay(1, func(uint64, uint8, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != l.LastLSN() {
			t.Fatalf("replayed %d records, LastLSN %d", n, l.LastLSN())
		}
		if lsn, err := l.Append(1, []byte("after")); err != nil || lsn != n+1 {
			t.Fatalf("append: %d %v", lsn, err)
		}
	})
}

// TestWireFormatExample pins the example in docs/wire-format-wal.md.
func TestWireFormatExample(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	if _, err := l.Append(7, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	want := []byte{
		0x42, 0x56, 0x52, 0x57, 0x41, 0x4c, 0x30, 0x31, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0xfa, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x07, 0x00, 0x00, 0x00, 0xd5, 0x7c, 0x6a, 0x9d, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x00, 0x00,
	}
	if got := readBytes(t, filepath.Join(dir, segmentName(1))); !bytes.Equal(got, want) {
		t.Fatalf("segment bytes\n% x\nwant\n% x", got, want)
	}
}

// TestScanCleanAgreesWithCheckSegment: the windowed check of a segment
// calls it clean exactly when checkSegment over the whole file finds no bad
// spot, with the same record count, whatever the damage and the window.
func TestScanCleanAgreesWithCheckSegment(t *testing.T) {
	valid := appendSegmentHeader(nil, 5)
	for i := uint64(5); i < 25; i++ {
		valid = appendRecord(valid, i, 1, payload(i, int(i*i*3)%700))
	}
	cases := [][]byte{valid, valid[:0], appendSegmentHeader(nil, 4), append(bytes.Clone(valid), make([]byte, 40)...)}
	for n := 0; n < len(valid); n += 23 {
		cases = append(cases, valid[:n])
	}
	for off := 0; off < len(valid); off += 31 {
		b := bytes.Clone(valid)
		b[off] ^= 0x40
		cases = append(cases, b)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, segmentName(5))
	for i, b := range cases {
		writeBytes(t, path, b)
		records, bad := checkSegment(b, 5, true)
		for _, w := range []int{recordHeaderSize, 64, 1000, scanWindow} {
			got, size, ok, _, err := scanClean(vfs.OS, path, 5, make([]byte, w))
			if err != nil {
				t.Fatal(err)
			}
			if ok != (bad == nil) || ok && (got != records || size != int64(len(b))) {
				t.Fatalf("case %d, window %d: scanClean %d records, size %d, clean %v; checkSegment %d records, bad spot %+v", i, w, got, size, ok, records, bad)
			}
		}
	}
}
