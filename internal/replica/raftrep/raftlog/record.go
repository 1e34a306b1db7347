package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/wal"
)

// Record types: the type byte of the WAL record. docs/wire-format-raftlog.md
// has the byte layouts.
const (
	recEntry      uint8 = 1 // a raft.Log
	recTruncTail  uint8 = 2 // entries after an index are deleted
	recCheckpoint uint8 = 3 // entries before an index are deleted; the whole stable store
	recSet        uint8 = 4 // one stable-store key set
)

// version is the format version of every record payload (its first byte).
const version = 1

// Sizes of the fixed parts.
const (
	entryHeaderSize      = 36
	truncTailSize        = 16
	checkpointHeaderSize = 20
	setHeaderSize        = 8
)

// MaxData is the most bytes a raft entry's Data and Extensions may hold
// together: one entry is one WAL record.
const MaxData = wal.MaxRecordSize - entryHeaderSize

// entry flags
const flagAppendedAt = 1

// zeroUnix is the Unix time of the zero time.Time, which is written as no
// time (flag clear).
var zeroUnix = time.Time{}.Unix()

// errFormat is the reason a record payload does not decode.
var errFormat = errors.New("bad record")

// op is a decoded record, applied to a view in log order.
type op struct {
	kind  uint8
	index uint64            // entry: its index; truncTail: the last index kept; checkpoint: the first index kept
	key   string            // set
	val   []byte            // set (owned)
	kv    map[string][]byte // checkpoint (owned)
}

// appendEntry appends the payload of an entry record for l.
//
//	0  u8  version      1  u8 raft.LogType   2  u8 flags   3  u8 0
//	4  u64 Index        12 u64 Term
//	20 i64 AppendedAt, Unix seconds          28 u32 AppendedAt, nanoseconds
//	32 u32 len(Extensions)
//	36 Extensions, then Data to the end of the payload
func appendEntry(dst []byte, l *raft.Log) []byte {
	var h [entryHeaderSize]byte
	h[0] = version
	h[1] = byte(l.Type)
	binary.LittleEndian.PutUint64(h[4:], l.Index)
	binary.LittleEndian.PutUint64(h[12:], l.Term)
	if !l.AppendedAt.IsZero() {
		h[2] = flagAppendedAt
		binary.LittleEndian.PutUint64(h[20:], uint64(l.AppendedAt.Unix()))
		binary.LittleEndian.PutUint32(h[28:], uint32(l.AppendedAt.Nanosecond()))
	}
	binary.LittleEndian.PutUint32(h[32:], uint32(len(l.Extensions)))
	dst = append(dst, h[:]...)
	dst = append(dst, l.Extensions...)
	return append(dst, l.Data...)
}

// entrySize is the payload size of the entry record of l.
func entrySize(l *raft.Log) int { return entryHeaderSize + len(l.Extensions) + len(l.Data) }

// decodeEntryHeader checks an entry payload and returns its index, term and
// extensions length.
func decodeEntryHeader(b []byte) (index, term uint64, ext int, err error) {
	if len(b) < entryHeaderSize {
		return 0, 0, 0, fmt.Errorf("%w: entry of %d bytes, shorter than its %d-byte header", errFormat, len(b), entryHeaderSize)
	}
	if b[0] != version {
		return 0, 0, 0, fmt.Errorf("%w: entry format version %d, want %d", errFormat, b[0], version)
	}
	if b[2]&^flagAppendedAt != 0 || b[3] != 0 {
		return 0, 0, 0, fmt.Errorf("%w: entry has unknown flags %#x or a nonzero reserved byte", errFormat, b[2])
	}
	index = binary.LittleEndian.Uint64(b[4:])
	term = binary.LittleEndian.Uint64(b[12:])
	if index == 0 {
		return 0, 0, 0, fmt.Errorf("%w: entry with index 0", errFormat)
	}
	if b[2]&flagAppendedAt == 0 && (binary.LittleEndian.Uint64(b[20:]) != 0 || binary.LittleEndian.Uint32(b[28:]) != 0) {
		return 0, 0, 0, fmt.Errorf("%w: entry has a time but no time flag", errFormat)
	}
	if ns := binary.LittleEndian.Uint32(b[28:]); ns >= 1e9 {
		return 0, 0, 0, fmt.Errorf("%w: entry time has %d nanoseconds", errFormat, ns)
	}
	if b[2]&flagAppendedAt != 0 && int64(binary.LittleEndian.Uint64(b[20:])) == zeroUnix && binary.LittleEndian.Uint32(b[28:]) == 0 {
		return 0, 0, 0, fmt.Errorf("%w: entry time flag set on the zero time", errFormat)
	}
	e := binary.LittleEndian.Uint32(b[32:])
	if uint64(e) > uint64(len(b)-entryHeaderSize) {
		return 0, 0, 0, fmt.Errorf("%w: entry extensions of %d bytes run past its end", errFormat, e)
	}
	return index, term, int(e), nil
}

// decodeEntry decodes an entry payload into l. l.Data and l.Extensions
// alias b (nil when empty).
func decodeEntry(b []byte, l *raft.Log) error {
	index, term, ext, err := decodeEntryHeader(b)
	if err != nil {
		return err
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(b[1])}
	if b[2]&flagAppendedAt != 0 {
		l.AppendedAt = time.Unix(int64(binary.LittleEndian.Uint64(b[20:])), int64(binary.LittleEndian.Uint32(b[28:])))
	}
	if ext > 0 {
		l.Extensions = b[entryHeaderSize : entryHeaderSize+ext : entryHeaderSize+ext]
	}
	if rest := b[entryHeaderSize+ext:]; len(rest) > 0 {
		l.Data = rest
	}
	return nil
}

// appendTruncTail appends the payload of a truncate-tail record: entries
// after last are deleted.
//
//	0 u8 version   1 7 zero bytes   8 u64 last index kept
func appendTruncTail(dst []byte, last uint64) []byte {
	var h [truncTailSize]byte
	h[0] = version
	binary.LittleEndian.PutUint64(h[8:], last)
	return append(dst, h[:]...)
}

// appendCheckpoint appends the payload of a checkpoint record: entries
// before first are deleted, and kv is the whole stable store.
//
//	0  u8 version   1 7 zero bytes   8 u64 first index kept
//	16 u32 number of keys, then per key in byte order:
//	   u32 len(key), key, u32 len(value), value
func appendCheckpoint(dst []byte, first uint64, kv map[string][]byte) []byte {
	var h [checkpointHeaderSize]byte
	h[0] = version
	binary.LittleEndian.PutUint64(h[8:], first)
	binary.LittleEndian.PutUint32(h[16:], uint32(len(kv)))
	dst = append(dst, h[:]...)
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(k)))
		dst = append(dst, k...)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(kv[k])))
		dst = append(dst, kv[k]...)
	}
	return dst
}

// appendSet appends the payload of a set record.
//
//	0 u8 version   1 3 zero bytes   4 u32 len(key)   8 key, then the value to the end
func appendSet(dst []byte, key, val []byte) []byte {
	var h [setHeaderSize]byte
	h[0] = version
	binary.LittleEndian.PutUint32(h[4:], uint32(len(key)))
	dst = append(dst, h[:]...)
	dst = append(dst, key...)
	return append(dst, val...)
}

// decodeOp decodes a record into an op. Entries keep only their index;
// sets and checkpoints copy what they keep.
func decodeOp(typ uint8, b []byte) (op, error) {
	switch typ {
	case recEntry:
		index, _, _, err := decodeEntryHeader(b)
		return op{kind: recEntry, index: index}, err
	case recTruncTail:
		if len(b) != truncTailSize || b[0] != version || !zero(b[1:8]) {
			return op{}, fmt.Errorf("%w: truncate-tail record of %d bytes, version %d", errFormat, len(b), first(b))
		}
		return op{kind: recTruncTail, index: binary.LittleEndian.Uint64(b[8:])}, nil
	case recCheckpoint:
		if len(b) < checkpointHeaderSize || b[0] != version || !zero(b[1:8]) {
			return op{}, fmt.Errorf("%w: checkpoint record of %d bytes, version %d", errFormat, len(b), first(b))
		}
		o := op{kind: recCheckpoint, index: binary.LittleEndian.Uint64(b[8:]), kv: map[string][]byte{}}
		n := binary.LittleEndian.Uint32(b[16:])
		rest := b[checkpointHeaderSize:]
		for i := uint32(0); i < n; i++ {
			k, r, ok := cut(rest)
			if !ok {
				return op{}, fmt.Errorf("%w: checkpoint key %d runs past the record", errFormat, i)
			}
			v, r, ok := cut(r)
			if !ok {
				return op{}, fmt.Errorf("%w: checkpoint value %d runs past the record", errFormat, i)
			}
			o.kv[string(k)] = slices.Clone(v)
			rest = r
		}
		if len(rest) != 0 {
			return op{}, fmt.Errorf("%w: %d bytes after the checkpoint's %d keys", errFormat, len(rest), n)
		}
		return o, nil
	case recSet:
		if len(b) < setHeaderSize || b[0] != version || !zero(b[1:4]) {
			return op{}, fmt.Errorf("%w: set record of %d bytes, version %d", errFormat, len(b), first(b))
		}
		k := binary.LittleEndian.Uint32(b[4:])
		if uint64(k) > uint64(len(b)-setHeaderSize) {
			return op{}, fmt.Errorf("%w: set key of %d bytes runs past the record", errFormat, k)
		}
		key := b[setHeaderSize : setHeaderSize+k]
		return op{kind: recSet, key: string(key), val: slices.Clone(b[setHeaderSize+k:])}, nil
	}
	return op{}, fmt.Errorf("%w: unknown record type %d", errFormat, typ)
}

// cut splits a u32-length-prefixed field off b.
func cut(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

func zero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func first(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
