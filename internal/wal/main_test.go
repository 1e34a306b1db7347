package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// payload is the deterministic test payload of record lsn. Every byte has at
// least two bits set, so a single flipped bit never makes a zero byte (which
// could make a flipped record look torn).
func payload(lsn uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(lsn*31+uint64(i)*7) | 0x81
	}
	return p
}

// sizeOf is the payload size used for record lsn by appendN.
func sizeOf(lsn uint64) int { return int(lsn*37) % 300 }

func mustOpen(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// appendN appends records from l.LastLSN()+1 on, n of them, with payload(lsn,
// sizeOf(lsn)) and type byte(lsn).
func appendN(t testing.TB, l *Log, n int) {
	t.Helper()
	for range n {
		want := l.LastLSN() + 1
		lsn, err := l.Append(uint8(want), payload(want, sizeOf(want)))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if lsn != want {
			t.Fatalf("Append got LSN %d, want %d", lsn, want)
		}
	}
}

type rec struct {
	lsn  uint64
	typ  uint8
	data []byte
}

func replayAll(t testing.TB, l *Log, from uint64) []rec {
	t.Helper()
	var out []rec
	err := l.Replay(from, func(lsn uint64, typ uint8, data []byte) error {
		out = append(out, rec{lsn, typ, bytes.Clone(data)})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", from, err)
	}
	return out
}

// checkRecords checks that recs are the appendN records first..last.
func checkRecords(t testing.TB, recs []rec, first, last uint64) {
	t.Helper()
	if want := int(last - first + 1); last < first && len(recs) != 0 || last >= first && len(recs) != want {
		t.Fatalf("got %d records, want LSNs %d..%d", len(recs), first, last)
	}
	for i, r := range recs {
		lsn := first + uint64(i)
		if r.lsn != lsn || r.typ != uint8(lsn) || !bytes.Equal(r.data, payload(lsn, sizeOf(lsn))) {
			t.Fatalf("record %d: got LSN %d type %d len %d, want LSN %d", i, r.lsn, r.typ, len(r.data), lsn)
		}
	}
}

// segmentFiles lists the segment files of dir (full paths) in LSN order.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func readBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyDir makes dst a copy of the segment files of src.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range segmentFiles(t, src) {
		writeBytes(t, filepath.Join(dst, filepath.Base(p)), readBytes(t, p))
	}
}

// recordStarts returns the offsets of the records in a segment's bytes.
func recordStarts(t testing.TB, data []byte) []int {
	t.Helper()
	var offs []int
	for off := segmentHeaderSize; off < len(data); {
		r, kind := decodeRecord(data[off:])
		if kind != recOK {
			t.Fatalf("bad record at %d: %v", off, kind)
		}
		offs = append(offs, off)
		off += r.size
	}
	return offs
}

func asCorruption(t testing.TB, err error) *CorruptionError {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got error %v, want ErrCorrupt", err)
	}
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CorruptionError", err)
	}
	return ce
}
