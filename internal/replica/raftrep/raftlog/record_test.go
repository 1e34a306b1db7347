package raftlog

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Every field of a raft.Log comes back, and the layout is the documented
// one (docs/wire-format-raftlog.md, the worked example).
func TestEntryRoundTrip(t *testing.T) {
	l := &raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("hi"), AppendedAt: time.Unix(1767225600, 500)}
	b := appendEntry(nil, l)
	want := []byte{1, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0xb9, 0x55, 0x69, 0, 0, 0, 0, 0xf4, 0x01, 0, 0, 0, 0, 0, 0, 'h', 'i'}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding\n% x\nwant\n% x", b, want)
	}
	for i := uint64(1); i < 40; i++ {
		l := entry(i, i*3)
		var got raft.Log
		if err := decodeEntry(appendEntry(nil, l), &got); err != nil {
			t.Fatal(err)
		}
		if !sameLog(&got, l) {
			t.Fatalf("round trip of %+v gave %+v", *l, got)
		}
	}
	// a huge term and a time far from now
	l = &raft.Log{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.LogConfiguration, Extensions: []byte{0},
		AppendedAt: time.Date(2400, 1, 1, 0, 0, 0, 999_999_999, time.UTC)}
	var got raft.Log
	if err := decodeEntry(appendEntry(nil, l), &got); err != nil || !sameLog(&got, l) {
		t.Fatalf("round trip of %+v gave %+v, %v", *l, got, err)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	o, err := decodeOp(recTruncTail, appendTruncTail(nil, 77))
	if err != nil || o.kind != recTruncTail || o.index != 77 {
		t.Fatalf("truncate-tail: %+v %v", o, err)
	}
	kv := map[string][]byte{"CurrentTerm": {0, 0, 0, 0, 0, 0, 0, 9}, "LastVoteCand": []byte("n2"), "e": {}}
	o, err = decodeOp(recCheckpoint, appendCheckpoint(nil, 12, kv))
	if err != nil || o.kind != recCheckpoint || o.index != 12 || len(o.kv) != 3 ||
		!bytes.Equal(o.kv["CurrentTerm"], kv["CurrentTerm"]) || string(o.kv["LastVoteCand"]) != "n2" {
		t.Fatalf("checkpoint: %+v %v", o, err)
	}
	o, err = decodeOp(recSet, appendSet(nil, []byte("k"), []byte("value")))
	if err != nil || o.kind != recSet || o.key != "k" || string(o.val) != "value" {
		t.Fatalf("set: %+v %v", o, err)
	}
}

// Damage that passes the WAL's CRC (a bug, or a newer version's record) is
// refused, never guessed at.
func TestDecodeRefuses(t *testing.T) {
	good := appendEntry(nil, entry(3, 1))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, c := range map[string]struct {
		typ uint8
		b   []byte
	}{
		"short entry":         {recEntry, good[:20]},
		"entry version 2":     {recEntry, mut(func(b []byte) []byte { b[0] = 2; return b })},
		"unknown flag":        {recEntry, mut(func(b []byte) []byte { b[2] |= 2; return b })},
		"reserved byte":       {recEntry, mut(func(b []byte) []byte { b[3] = 1; return b })},
		"index 0":             {recEntry, mut(func(b []byte) []byte { clear(b[4:12]); return b })},
		"extensions too long": {recEntry, mut(func(b []byte) []byte { b[32] = 0xff; return b })},
		"nanoseconds":         {recEntry, mut(func(b []byte) []byte { b[2] = 1; copy(b[28:], []byte{0xff, 0xff, 0xff, 0xff}); return b })},
		"time without flag":   {recEntry, mut(func(b []byte) []byte { b[2] = 0; b[20] = 1; return b })},
		"long truncate":       {recTruncTail, append(appendTruncTail(nil, 1), 0)},
		"checkpoint trailer":  {recCheckpoint, append(appendCheckpoint(nil, 1, nil), 0)},
		"checkpoint count":    {recCheckpoint, func() []byte { b := appendCheckpoint(nil, 1, nil); b[16] = 1; return b }()},
		"set key too long":    {recSet, func() []byte { b := appendSet(nil, []byte("k"), nil); b[4] = 9; return b }()},
		"unknown type":        {7, good},
	} {
		if _, err := decodeOp(c.typ, c.b); !errors.Is(err, errFormat) {
			t.Errorf("%s: %v, want errFormat", name, err)
		}
	}
}

// Decoding never panics, whatever the bytes.
func FuzzDecodeOp(f *testing.F) {
	f.Add(recEntry, appendEntry(nil, entry(3, 1)))
	f.Add(recTruncTail, appendTruncTail(nil, 5))
	f.Add(recCheckpoint, appendCheckpoint(nil, 9, map[string][]byte{"a": []byte("b")}))
	f.Add(recSet, appendSet(nil, []byte("k"), []byte("v")))
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		o, err := decodeOp(typ, b)
		if err == nil && typ == recEntry {
			var l raft.Log
			if err := decodeEntry(b, &l); err != nil || l.Index != o.index {
				t.Fatalf("entry header decodes, entry does not: %v", err)
			}
			if !bytes.Equal(appendEntry(nil, &l), b) {
				t.Fatalf("entry does not re-encode to its bytes")
			}
		}
	})
}

func TestZeroTimeWithFlagRefused(t *testing.T) {
	b := appendEntry(nil, &raft.Log{Index: 1})
	b[2] = flagAppendedAt
	var sec [8]byte
	for i := range 8 {
		sec[i] = byte(uint64(zeroUnix) >> (8 * i))
	}
	copy(b[20:], sec[:])
	if _, err := decodeOp(recEntry, b); !errors.Is(err, errFormat) {
		t.Fatalf("zero time with the flag: %v", err)
	}
}
