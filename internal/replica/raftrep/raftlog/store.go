package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

// Errors of the store. A failed write wraps ErrFailed and the cause.
var (
	// ErrKeyNotFound: Get or GetUint64 of a key never set. Its text is
	// "not found" because hashicorp/raft compares error strings with that
	// (as raft-boltdb's and raft's in-memory store's errors read).
	ErrKeyNotFound = errors.New("not found")
	// ErrFailed: a write failed earlier (or this one did); what the disk
	// holds after it is unknown, so the store refuses every write until it
	// is reopened (which recovers it). Reads go on working.
	ErrFailed = errors.New("raft log: store failed")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("raft log: store closed")
	// ErrNotContiguous: StoreLogs was given entries that do not follow the
	// last one (or each other). The store is monotonic: raft deletes
	// everything (DeleteRange) before it starts again elsewhere.
	ErrNotContiguous = errors.New("raft log: entries not contiguous")
	// ErrUnsupported: DeleteRange of a range in the middle of the log,
	// which raft never asks for.
	ErrUnsupported = errors.New("raft log: unsupported delete")
	// ErrTooLarge: an entry's Data and Extensions exceed MaxData.
	ErrTooLarge = errors.New("raft log: entry too large")
)

// Options configure a Store. The zero value is valid.
type Options struct {
	FS vfs.FS // default vfs.OS
	// SegmentSize is the WAL segment size (default wal.DefaultSegmentSize).
	// Compaction deletes whole segments.
	SegmentSize int64
	Logger      *slog.Logger // default: discard
	Observer    wal.Observer // optional: the WAL's writes and fdatasyncs
}

// Store is a raft.LogStore and raft.StableStore on a WAL directory. Its
// methods are safe for concurrent use. See the package documentation.
type Store struct {
	dir    string
	log    *wal.Log
	logger *slog.Logger
	rec    Recovery

	// amu is held while a call queues its records, so that they are
	// consecutive in the WAL and in the order the pending state assumes. It
	// is released before the call waits for its fdatasync, so concurrent
	// calls share one (group commit).
	amu  sync.Mutex
	pend struct { // the log once every queued record is durable
		first, last uint64 // 0, 0: empty
		kv          map[string][]byte
	}
	enc []byte // encoding buffer, under amu

	// smu guards v, the durable state: the append callbacks apply each
	// record to it once the record is on disk.
	smu sync.RWMutex
	v   view

	fmu     sync.Mutex
	failErr error         // sticky: see ErrFailed
	failed  chan struct{} // closed when failErr is set
	closed  bool
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// Recovery is what Open found.
type Recovery struct {
	WAL         wal.Recovery // the segments, and a torn tail cut off, if any
	Records     uint64       // records replayed
	First, Last uint64       // the entries, 0 0 if none
	Keys        int          // stable-store keys
	Duration    time.Duration
}

// Open opens (or creates) the store in dir and recovers it: the WAL is
// checked (a torn tail of its last segment is cut off, keeping a .broken
// copy; any other damage is refused with a *wal.CorruptionError naming the
// file and offset) and every record is replayed. Only one Store may be open
// on a directory; the caller holds the lock that ensures it.
func Open(dir string, o Options) (*Store, error) {
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := wal.Open(dir, wal.Options{
		FS: o.FS, SegmentSize: o.SegmentSize, Sync: wal.SyncAlways, NoSpaceFails: true,
		Logger: o.Logger, Observer: o.Observer,
	})
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", err)
	}
	s := &Store{dir: dir, log: l, logger: o.Logger, failed: make(chan struct{})}
	s.v.kv = map[string][]byte{}
	var n uint64
	err = l.ReplayPos(1, func(pos wal.Pos, typ uint8, data []byte) error {
		n++
		o, err := decodeOp(typ, data)
		if err == nil {
			err = s.v.apply(&o, pos)
		}
		if err != nil {
			return &wal.CorruptionError{File: l.SegmentOf(pos.LSN), Offset: pos.Offset, LSN: pos.LSN,
				Reason: "raft log record: " + err.Error()}
		}
		return nil
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("raft log: %w", err)
	}
	s.pend.first, s.pend.last, s.pend.kv = s.v.first, s.v.last(), maps.Clone(s.v.kv)
	s.rec = Recovery{WAL: l.Recovery(), Records: n, First: s.v.first, Last: s.v.last(),
		Keys: len(s.v.kv), Duration: time.Since(start)}
	s.logger.Info("raft log opened", "dir", dir, "first_index", s.rec.First, "last_index", s.rec.Last,
		"records", n, "segments", s.rec.WAL.Segments, "duration", s.rec.Duration)
	return s, nil
}

// Recovery reports what Open found.
func (s *Store) Recovery() Recovery { return s.rec }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// IsMonotonic implements raft.MonotonicLogStore: the entries never have a
// gap, so after restoring a snapshot raft deletes the whole log instead of
// leaving a gap before the next entry.
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex implements raft.LogStore: the first entry's index, 0 if none.
func (s *Store) FirstIndex() (uint64, error) {
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.v.first, nil
}

// LastIndex implements raft.LogStore: the last entry's index, 0 if none.
func (s *Store) LastIndex() (uint64, error) {
	s.smu.RLock()
	defer s.smu.RUnlock()
	return s.v.last(), nil
}

// GetLog implements raft.LogStore: it reads the entry's record from its
// segment (a positioned read). An index the log does not hold gives
// raft.ErrLogNotFound.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	pos, ok := s.locate(index)
	if !ok {
		return raft.ErrLogNotFound
	}
	typ, data, err := s.log.ReadAt(pos, make([]byte, 0, 1024))
	if err != nil {
		if _, still := s.locate(index); !still && errors.Is(err, wal.ErrNotFound) {
			return raft.ErrLogNotFound // compacted meanwhile
		}
		return fmt.Errorf("raft log: read entry %d: %w", index, err)
	}
	bad := func(reason string) error {
		return fmt.Errorf("raft log: read entry %d: %w", index, &wal.CorruptionError{
			File: s.log.SegmentOf(pos.LSN), Offset: pos.Offset, LSN: pos.LSN, Reason: "raft log record: " + reason})
	}
	if typ != recEntry {
		return bad(fmt.Sprintf("record type %d, want an entry", typ))
	}
	if err := decodeEntry(data, out); err != nil {
		return bad(err.Error())
	}
	if out.Index != index {
		return bad(fmt.Sprintf("entry has index %d", out.Index))
	}
	return nil
}

func (s *Store) locate(index uint64) (wal.Pos, bool) {
	s.smu.RLock()
	defer s.smu.RUnlock()
	if s.v.empty() || index < s.v.first || index > s.v.last() {
		return wal.Pos{}, false
	}
	return s.v.idx[index-s.v.first], true
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: it appends the entries and returns
// once they are durable (fdatasync). The entries must be consecutive. The
// first must follow the last entry stored, or the log must be empty (after
// a DeleteRange of everything it may start anywhere). One that leaves a gap
// after the last entry deletes the whole log first (a checkpoint record,
// as DeleteRange of everything): raft sends such entries only after a
// snapshot that covers the gap, when a crash came between installing the
// snapshot and deleting the old log. One at or before the last entry is
// ErrNotContiguous (raft deletes conflicting entries first).
//
// Concurrent calls share one fdatasync. An error of the write fails the
// store (ErrFailed): entries of the call may or may not be on disk, and no
// later write is accepted.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.amu.Lock()
	if err := s.writable(); err != nil {
		s.amu.Unlock()
		return err
	}
	first := logs[0].Index
	gap := s.pend.first != 0 && first > s.pend.last+1
	var bad error
	switch {
	case first == 0:
		bad = fmt.Errorf("%w: entry with index 0", ErrNotContiguous)
	case s.pend.first != 0 && first <= s.pend.last:
		bad = fmt.Errorf("%w: entry %d after the last entry %d", ErrNotContiguous, first, s.pend.last)
	}
	for i, l := range logs {
		if bad != nil {
			break
		}
		switch {
		case l.Index != first+uint64(i):
			bad = fmt.Errorf("%w: entry %d at position %d of a batch from %d", ErrNotContiguous, l.Index, i, first)
		case entrySize(l) > wal.MaxRecordSize:
			bad = fmt.Errorf("%w: entry %d has %d bytes, limit %d", ErrTooLarge, l.Index, len(l.Data)+len(l.Extensions), MaxData)
		}
	}
	if bad != nil {
		s.amu.Unlock()
		return bad
	}
	k := 0
	if gap {
		k = 1
	}
	c := newCall(s, k+len(logs))
	if gap {
		s.logger.Warn("raft log: entries start after a gap; deleting the log before them",
			"dir", s.dir, "first_index", s.pend.first, "last_index", s.pend.last, "next_index", first)
		c.ops[0] = op{kind: recCheckpoint, index: first, kv: cloneKV(s.pend.kv)}
		s.enc = appendCheckpoint(s.enc[:0], first, c.ops[0].kv)
		s.log.AppendAsyncPos(recCheckpoint, s.enc, wal.ClassNormal, c.done(0))
		s.pend.first = 0
	}
	for i, l := range logs {
		c.ops[k+i] = op{kind: recEntry, index: l.Index}
		s.enc = appendEntry(s.enc[:0], l)
		s.log.AppendAsyncPos(recEntry, s.enc, wal.ClassNormal, c.done(k+i))
	}
	if s.pend.first == 0 {
		s.pend.first = first
	}
	s.pend.last = logs[len(logs)-1].Index
	s.shrinkEnc()
	s.amu.Unlock()
	if err := c.wait(); err != nil {
		return err
	}
	if gap {
		if err := s.compact(); err != nil {
			s.logger.Warn("raft log: could not delete old segments", "dir", s.dir, "err", err)
		}
	}
	return nil
}

// DeleteRange implements raft.LogStore. The part of [min, max] the log
// holds must be at its head (compaction after a snapshot), at its tail
// (a follower deleting conflicting entries) or the whole log; anything else
// is ErrUnsupported. Nothing is ever cut out of a file:
//
//   - at the tail, a truncate-tail record says that the entries after
//     min-1 are deleted; entries stored later with those indexes replace
//     them.
//   - at the head (or everything), a checkpoint record says that the
//     entries before max+1 are deleted and carries the stable store; once
//     it is durable, the segments holding only older records are deleted.
//
// It returns once the record is durable.
func (s *Store) DeleteRange(min, max uint64) error {
	s.amu.Lock()
	if err := s.writable(); err != nil {
		s.amu.Unlock()
		return err
	}
	p := &s.pend
	if p.first == 0 || min > max || max < p.first || min > p.last {
		s.amu.Unlock()
		return nil // nothing held in the range
	}
	var o op
	switch {
	case min <= p.first:
		o = op{kind: recCheckpoint, index: max + 1, kv: cloneKV(p.kv)}
		s.enc = appendCheckpoint(s.enc[:0], o.index, o.kv)
		if max >= p.last {
			p.first, p.last = 0, 0
		} else {
			p.first = max + 1
		}
	case max >= p.last:
		o = op{kind: recTruncTail, index: min - 1}
		s.enc = appendTruncTail(s.enc[:0], o.index)
		p.last = min - 1
	default:
		s.amu.Unlock()
		return fmt.Errorf("%w: entries %d..%d of %d..%d are neither the head nor the tail", ErrUnsupported, min, max, p.first, p.last)
	}
	c := newCall(s, 1)
	c.ops[0] = o
	s.log.AppendAsyncPos(o.kind, s.enc, wal.ClassNormal, c.done(0))
	s.amu.Unlock()
	if err := c.wait(); err != nil {
		return err
	}
	if o.kind == recCheckpoint {
		return s.compact()
	}
	return nil
}

// compact deletes the segments that hold only records older than both the
// newest checkpoint and the first entry's record: replaying what is left
// gives the same state (the checkpoint carries the first index and the
// stable store, and every entry's current record is at or after the
// first's). A failure is returned but leaves the store working: the next
// compaction tries again.
func (s *Store) compact() error {
	s.smu.RLock()
	cut := s.v.cpLSN
	if !s.v.empty() && s.v.idx[0].LSN < cut {
		cut = s.v.idx[0].LSN
	}
	s.smu.RUnlock()
	if cut == 0 {
		return nil
	}
	if err := s.log.TruncateBefore(cut); err != nil {
		return fmt.Errorf("raft log: delete old segments: %w", err)
	}
	return nil
}

// Set implements raft.StableStore: it returns once the value is durable.
func (s *Store) Set(key, val []byte) error {
	s.amu.Lock()
	if err := s.writable(); err != nil {
		s.amu.Unlock()
		return err
	}
	if setHeaderSize+len(key)+len(val) > wal.MaxRecordSize {
		s.amu.Unlock()
		return fmt.Errorf("%w: stable-store key of %d bytes with a value of %d", ErrTooLarge, len(key), len(val))
	}
	o := op{kind: recSet, key: string(key), val: slices.Clone(val)}
	if o.val == nil {
		o.val = []byte{}
	}
	c := newCall(s, 1)
	c.ops[0] = o
	s.enc = appendSet(s.enc[:0], key, val)
	s.log.AppendAsyncPos(recSet, s.enc, wal.ClassNormal, c.done(0))
	s.pend.kv[o.key] = o.val
	s.shrinkEnc()
	s.amu.Unlock()
	return c.wait()
}

// Get implements raft.StableStore; a key never set gives ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.smu.RLock()
	defer s.smu.RUnlock()
	v, ok := s.v.kv[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return slices.Clone(v), nil
}

// SetUint64 implements raft.StableStore (8 bytes, big-endian).
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft log: stable-store key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Err returns the failure that stopped the store's writes, or nil.
func (s *Store) Err() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.failErr
}

// Failed is closed once the store has failed (Err is then non-nil). Raft
// panics when it cannot store a new term, so its owner should stop raft as
// soon as this is closed, before raft's next election.
func (s *Store) Failed() <-chan struct{} { return s.failed }

// Close closes the store; writes after it fail with ErrClosed.
func (s *Store) Close() error {
	s.fmu.Lock()
	s.closed = true
	s.fmu.Unlock()
	return s.log.Close()
}

func (s *Store) writable() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	switch {
	case s.failErr != nil:
		return s.failErr
	case s.closed:
		return ErrClosed
	}
	return nil
}

// fail makes the store refuse every later write. The WAL has failed too (or
// was closed): no record queued after the failed one reaches the disk, so
// the log on disk stays a prefix of what was appended.
func (s *Store) fail(cause error) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.closed && errors.Is(cause, wal.ErrClosed) {
		return ErrClosed
	}
	if s.failErr == nil {
		s.failErr = &failedError{cause: cause}
		close(s.failed)
		s.logger.Error("raft log failed: no more writes until the node restarts", "dir", s.dir, "err", cause)
	}
	return s.failErr
}

// shrinkEnc drops an encoding buffer grown by a huge entry.
func (s *Store) shrinkEnc() {
	if cap(s.enc) > 4<<20 {
		s.enc = nil
	}
}

func cloneKV(kv map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(kv))
	for k, v := range kv {
		out[k] = v // values are never changed in place
	}
	return out
}

type failedError struct{ cause error }

func (e *failedError) Error() string   { return fmt.Sprintf("raft log: store failed: %v", e.cause) }
func (e *failedError) Unwrap() []error { return []error{ErrFailed, e.cause} }

// call is one method call's records: their callbacks apply each to the
// durable state in log order, and the last one to run wakes the caller.
type call struct {
	s    *Store
	ops  []op
	mu   sync.Mutex
	left int
	err  error
	ch   chan struct{}
}

func newCall(s *Store, n int) *call {
	return &call{s: s, ops: make([]op, n), left: n, ch: make(chan struct{})}
}

// done returns the callback of record i.
func (c *call) done(i int) func(wal.Pos, error) {
	return func(pos wal.Pos, err error) {
		if err == nil {
			c.s.smu.Lock()
			err = c.s.v.apply(&c.ops[i], pos)
			c.s.smu.Unlock()
			if err != nil {
				err = fmt.Errorf("raft log: bug: %w", err)
			}
		}
		if err != nil {
			err = c.s.fail(err)
		}
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.left--
		last := c.left == 0
		c.mu.Unlock()
		if last {
			close(c.ch)
		}
	}
}

func (c *call) wait() error {
	<-c.ch
	return c.err
}
