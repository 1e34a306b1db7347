package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// checkDamaged asserts that the damaged snapshot m is detected by all three
// ways of reading it: OpenBody (for header and trailer damage, which must be
// reported before any body byte is handed out), reading the body to its end,
// and Verify. It returns the CorruptionError of Verify.
func checkDamaged(t *testing.T, s *Store, m Meta, what string, openMustFail bool) *CorruptionError {
	t.Helper()
	rc, err := s.OpenBody(m)
	if err == nil {
		if openMustFail {
			rc.Close()
			t.Fatalf("%s: OpenBody succeeded", what)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	requireCorrupt(t, err, m.Path, what+": OpenBody + read")
	ce := requireCorrupt(t, s.Verify(m), m.Path, what+": Verify")
	if ce.Offset < 0 || ce.Offset > m.Size {
		t.Fatalf("%s: offset %d out of range", what, ce.Offset)
	}
	return ce
}

// TestBitFlips flips every bit of the header and the trailer and one bit of
// every body byte: each flip is detected, at the right place.
func TestBitFlips(t *testing.T) {
	s := openStore(t, Options{})
	body := randomBytes(1500, 7)
	m := publish(t, s, 1234, body)
	orig, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(orig))
	bodyEnd := size - trailerSize

	f, err := os.OpenFile(m.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flipAt := func(off int64, bit uint) {
		t.Helper()
		b := []byte{orig[off] ^ 1<<bit}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(off int64) {
		t.Helper()
		if _, err := f.WriteAt(orig[off:off+1], off); err != nil {
			t.Fatal(err)
		}
	}

	for off := int64(0); off < size; off++ {
		inBody := off >= headerSize && off < bodyEnd
		bits := []uint{0, 1, 2, 3, 4, 5, 6, 7}
		if inBody {
			bits = []uint{uint(off % 8)}
		}
		for _, bit := range bits {
			flipAt(off, bit)
			what := fmt.Sprintf("bit %d of byte %d", bit, off)
			ce := checkDamaged(t, s, m, what, !inBody)
			switch {
			case off < headerSize && (ce.Offset < 0 || ce.Offset >= headerSize):
				t.Fatalf("%s: reported at offset %d, outside the header", what, ce.Offset)
			case inBody && ce.Offset != headerSize:
				t.Fatalf("%s: reported at offset %d, want the body start", what, ce.Offset)
			case off >= bodyEnd && ce.Offset < bodyEnd:
				t.Fatalf("%s: reported at offset %d, before the trailer", what, ce.Offset)
			}
			restore(off)
		}
	}
	if err := s.Verify(m); err != nil {
		t.Fatalf("restored file: %v", err)
	}
}

// TestRandomDamage overwrites random spans with random bytes.
func TestRandomDamage(t *testing.T) {
	s := openStore(t, Options{})
	m := publish(t, s, 99, randomBytes(5000, 8))
	orig, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		damaged := bytes.Clone(orig)
		off := rng.IntN(len(damaged))
		n := 1 + rng.IntN(min(64, len(damaged)-off))
		for j := range n {
			damaged[off+j] = byte(rng.Uint32())
		}
		if bytes.Equal(damaged, orig) {
			continue
		}
		if err := os.WriteFile(m.Path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		checkDamaged(t, s, m, fmt.Sprintf("case %d: %d bytes at %d", i, n, off), false)
	}
}

// TestTruncation cuts the file at every length: OpenBody itself refuses
// every one, List still lists the file.
func TestTruncation(t *testing.T) {
	s := openStore(t, Options{})
	m := publish(t, s, 5, randomBytes(700, 9))
	orig, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	for n := int64(len(orig)) - 1; n >= 0; n-- {
		if err := os.Truncate(m.Path, n); err != nil {
			t.Fatal(err)
		}
		checkDamaged(t, s, m, fmt.Sprintf("truncated to %d bytes", n), true)
		list, err := s.List()
		if err != nil || len(list) != 1 || list[0].Size != n {
			t.Fatalf("truncated to %d: List() = %+v, %v", n, list, err)
		}
	}
}

// TestAppendedBytes: garbage after the trailer, or a second trailer, is
// detected.
func TestAppendedBytes(t *testing.T) {
	s := openStore(t, Options{})
	m := publish(t, s, 6, randomBytes(300, 10))
	orig, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string][]byte{
		"one byte":       {0},
		"trailer again":  orig[len(orig)-trailerSize:],
		"whole file":     orig,
		"header+trailer": append(bytes.Clone(orig[:headerSize]), orig[len(orig)-trailerSize:]...),
	} {
		if err := os.WriteFile(m.Path, append(bytes.Clone(orig), extra...), 0o600); err != nil {
			t.Fatal(err)
		}
		m.Size = int64(len(orig) + len(extra))
		checkDamaged(t, s, m, name, true)
	}
}

// TestFileShrinksWhileReading: the body reader reports a file cut under it
// as corruption, not as a clean end.
func TestFileShrinksWhileReading(t *testing.T) {
	s := openStore(t, Options{})
	body := randomBytes(3<<20, 11)
	m := publish(t, s, 7, body)
	rc, err := s.OpenBody(m)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(m.Path, 2<<20); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	requireCorrupt(t, err, m.Path, "shrunk while reading")
}

// FuzzDecode feeds arbitrary bytes to the file checks (header, trailer,
// body stream). They never panic, only ever report ErrCorrupt, and accept
// only files that re-encode to the same bytes.
func FuzzDecode(f *testing.F) {
	valid := func(h header, body []byte) []byte {
		tr := encodeTrailer(trailer{bodyLen: uint64(len(body)), bodyCRC: crc32.Checksum(body, castagnoli)})
		return append(append(encodeHeader(h), body...), tr[:]...)
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	good := valid(header{lsn: 42, createdAt: at}, []byte("hello, beaver"))
	f.Add(good)
	f.Add(valid(header{}, nil))
	f.Add(valid(header{lsn: ^uint64(0), createdAt: -1}, bytes.Repeat([]byte{0xff}, 100)))
	delta := valid(header{lsn: 43, createdAt: at, kind: Delta, parent: Link{42, 7}, base: Link{42, 7}}, []byte("delta"))
	f.Add(delta)
	f.Add(valid(header{lsn: 90, kind: Delta, parent: Link{80, 1}, base: Link{10, 2}}, nil))
	f.Add(delta[:headerSize+linkSize])
	f.Add(good[:headerSize])
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{})
	f.Add([]byte("BVRSNAP1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.snap"
		h, tr, err := inspect(file, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("inspect: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		body, err := io.ReadAll(newBodyReader(file, bytes.NewReader(data), nil, h.bodyStart(), tr))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("body: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		got := valid(h, body)
		if h.kind == Full && binary.LittleEndian.Uint32(data[hOffVersion:]) == versionDelta {
			// a version-2 full header: the same but for version and CRC
			binary.LittleEndian.PutUint32(got[hOffVersion:], versionDelta)
			binary.LittleEndian.PutUint32(got[hOffCRC:], crc32.Checksum(got[:hOffCRC], castagnoli))
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("accepted a file that does not re-encode to itself:\n%x\n%x", data, got)
		}
	})
}
