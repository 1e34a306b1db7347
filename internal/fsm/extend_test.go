package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// testSection is a section registered by the tests only: a counter per
// machine, so that the framing of sections in snapshots and deltas is
// tested before (and apart from) the features that use it.
var testSectionState = map[*Machine]uint64{}

const testSectionTag = 1 << 20

func init() {
	registerSection(section{
		tag:  testSectionTag,
		name: "test",
		encode: func(m *Machine, dst []byte) []byte {
			if v := testSectionState[m]; v != 0 {
				dst = binary.AppendUvarint(dst, v)
			}
			return dst
		},
		decode: func(b []byte) (func(*Machine), error) {
			d := decoder{b: b}
			var v uint64
			if len(b) > 0 {
				v = d.uvarint()
				if d.err == nil && (v == 0 || len(d.b) != 0) {
					d.err = ErrCorrupt
				}
			}
			if d.err != nil {
				return nil, d.err
			}
			return func(m *Machine) {
				if v == 0 {
					delete(testSectionState, m)
				} else {
					testSectionState[m] = v
				}
			}, nil
		},
	})
}

func TestSectionRoundTripsThroughSnapshotAndDelta(t *testing.T) {
	m := New()
	defer delete(testSectionState, m)
	apply(t, m, enq(1*sec, JobSpec{Type: "a"}))
	var v1 bytes.Buffer
	if _, err := m.Capture().WriteTo(&v1); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(v1.Bytes()[8:]); got != snapVersion {
		t.Fatalf("a state without sections wrote version %d, want %d", got, snapVersion)
	}

	testSectionState[m] = 42
	mark := m.Capture().Mark()
	apply(t, m, enq(2*sec, JobSpec{Type: "b"}))
	testSectionState[m] = 43
	snap := m.Capture()
	var full, delta bytes.Buffer
	if _, err := snap.WriteTo(&full); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(full.Bytes()[8:]); got != snapVersionV2 {
		t.Fatalf("a state with a section wrote version %d, want %d", got, snapVersionV2)
	}
	if _, err := snap.WriteDeltaTo(&delta, mark); err != nil {
		t.Fatal(err)
	}

	r := New()
	defer delete(testSectionState, r)
	if err := r.Restore(bytes.NewReader(full.Bytes())); err != nil {
		t.Fatal(err)
	}
	if testSectionState[r] != 43 || r.Digest() != m.Digest() {
		t.Fatalf("restored section %d (want 43), digests equal %v", testSectionState[r], r.Digest() == m.Digest())
	}

	// the delta carries the section whole: restore the parent state, apply it
	p := New()
	defer delete(testSectionState, p)
	var parent bytes.Buffer
	q := New()
	apply(t, q, enq(1*sec, JobSpec{Type: "a"}))
	q.applied = mark.applied
	testSectionState[q] = 42
	if _, err := q.Capture().WriteTo(&parent); err != nil {
		t.Fatal(err)
	}
	delete(testSectionState, q)
	if err := p.Restore(&parent); err != nil {
		t.Fatal(err)
	}
	d, err := p.ReadDelta(bytes.NewReader(delta.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if testSectionState[p] != 42 {
		t.Fatalf("ReadDelta changed the section before ApplyDelta: %d", testSectionState[p])
	}
	if err := p.ApplyDelta(d); err != nil {
		t.Fatal(err)
	}
	if testSectionState[p] != 43 {
		t.Fatalf("section after ApplyDelta = %d, want 43", testSectionState[p])
	}

	// a section emptied since the parent is cleared by the delta
	testSectionState[m] = 0
	var empty bytes.Buffer
	if _, err := m.Capture().WriteDeltaTo(&empty, snap.Mark()); err != nil {
		t.Fatal(err)
	}
	d, err = p.ReadDelta(&empty)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyDelta(d); err != nil {
		t.Fatal(err)
	}
	if _, ok := testSectionState[p]; ok {
		t.Fatal("an emptied section survived the delta")
	}
}

func TestUnknownSectionIsCorrupt(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, testSectionTag+1)
	b = binary.AppendUvarint(b, 1)
	b = append(b, 7)
	if _, err := decodeExtras(b); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown section: %v", err)
	}
	var twice []byte
	for range 2 {
		twice = binary.AppendUvarint(twice, testSectionTag)
		twice = binary.AppendUvarint(twice, 1)
		twice = append(twice, 7)
	}
	if _, err := decodeExtras(twice); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("repeated section: %v", err)
	}
}

func TestAppendTaggedFramesTheBody(t *testing.T) {
	body := bytes.Repeat([]byte{9}, 300) // a two-byte length
	got, ok := appendTagged([]byte{1, 2}, 5, func(b []byte) []byte { return append(b, body...) })
	if !ok {
		t.Fatal("not appended")
	}
	d := decoder{b: got[2:]}
	if tag := d.uvarint(); tag != 5 {
		t.Fatalf("tag %d", tag)
	}
	if b := d.bytes(); !bytes.Equal(b, body) || len(d.b) != 0 || d.err != nil {
		t.Fatalf("body %d bytes, %d left, %v", len(b), len(d.b), d.err)
	}
	if got, ok := appendTagged([]byte{1}, 5, func(b []byte) []byte { return b }); ok || len(got) != 1 {
		t.Fatal("an empty body was framed")
	}
}
