package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// SyncMode says when appended records are made durable.
type SyncMode int

const (
	// SyncAlways fdatasyncs every batch before its callbacks run: an
	// acknowledged record survives a crash or a power loss.
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges a record once it is written to the OS and
	// fdatasyncs every Options.SyncInterval. A process crash loses nothing
	// acknowledged; a power loss or kernel crash can lose the records
	// acknowledged in the last interval (plus the time of one fdatasync).
	SyncInterval
	// SyncNever acknowledges a record once it is written to the OS and
	// fdatasyncs only when a segment is rotated and on Close. A process crash
	// loses nothing acknowledged; a power loss can lose everything written
	// to the active segment since it was created (up to SegmentSize plus
	// one batch), at the kernel's writeback discretion.
	SyncNever
)

func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// ParseSyncMode parses "always", "interval" or "never".
func ParseSyncMode(s string) (SyncMode, error) {
	for _, m := range []SyncMode{SyncAlways, SyncInterval, SyncNever} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("wal: unknown sync mode %q (want always, interval or never)", s)
}

// Defaults of Options.
const (
	DefaultSegmentSize  = 64 << 20
	DefaultSyncInterval = 10 * time.Millisecond
	DefaultMaxQueued    = 64 << 20
	// DefaultReserveBytes is the reserve file size the server configures
	// by default (Options.ReserveBytes itself defaults to no reserve).
	DefaultReserveBytes      = 64 << 20
	DefaultFreeSpaceInterval = time.Second
)

// Batch bounds: the writer writes and syncs at most this much at once.
const (
	maxBatchBytes   = 4 << 20
	maxBatchRecords = 4096
	maxFreeBatches  = 16
)

// Options configure a Log. The zero value is valid: the OS file system,
// 64 MiB segments, SyncAlways.
type Options struct {
	FS vfs.FS // default vfs.OS
	// SegmentSize: the active segment is rotated once a batch leaves it
	// larger than this. Default DefaultSegmentSize.
	SegmentSize int64
	Sync        SyncMode // default SyncAlways
	// SyncInterval is the fdatasync period with SyncInterval. Default
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// MaxQueued bounds the bytes of records queued and not yet written;
	// AppendAsync blocks while it is exceeded. Default DefaultMaxQueued.
	MaxQueued int64
	Logger    *slog.Logger // default: discard
	Observer  Observer     // optional metrics hook, may be nil
	// StartLSN is the LSN of the first record of a log created in an empty
	// directory (default 1). A replica whose snapshot covers LSN S opens
	// with StartLSN S+1, so the log never restarts below its snapshot.
	StartLSN uint64
	// ReserveBytes is the size of the reserve file, <dir>/reserve, that the
	// log keeps allocated (fallocate, or zeros where that is unsupported;
	// fsynced) so that records of ClassReserve can still be written once the
	// disk is full: entering the disk-full state deletes the file, leaving
	// it re-creates it. 0 (the default): no reserve file, and Open deletes
	// one left by an earlier configuration. The server's default is
	// DefaultReserveBytes.
	ReserveBytes int64
	// FreeSpaceInterval is how often a disk-full log checks for free space
	// (see the package documentation). Default DefaultFreeSpaceInterval.
	FreeSpaceInterval time.Duration
	// NoSpaceFails makes ENOSPC a failure like any other I/O error (the
	// log fails, ErrFailed) instead of entering the disk-full state. A
	// caller that needs every record after a failed one to fail too, so
	// that the log on disk is always a prefix of the appends, sets it
	// (with ReserveBytes 0): in the disk-full state a later append can
	// succeed after an earlier one failed.
	NoSpaceFails bool
}

// Observer receives metrics. It is called from the writer goroutine, so
// implementations must be fast and must not call into the Log.
type Observer interface {
	// ObserveWrite is called once per batch written, with its number of
	// records and bytes.
	ObserveWrite(records int, bytes int)
	// ObserveSync is called once per fdatasync of the active segment done
	// for appended data (per batch, per interval, at rotation and on Close),
	// with its duration. It is called for failed syncs too.
	ObserveSync(d time.Duration)
}

func (o *Options) fill() error {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.SegmentSize < 0 {
		return fmt.Errorf("wal: SegmentSize %d is negative", o.SegmentSize)
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	switch o.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return fmt.Errorf("wal: unknown sync mode %d", int(o.Sync))
	}
	if o.SyncInterval < 0 {
		return fmt.Errorf("wal: SyncInterval %v is negative", o.SyncInterval)
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.MaxQueued < 0 {
		return fmt.Errorf("wal: MaxQueued %d is negative", o.MaxQueued)
	}
	if o.MaxQueued == 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.ReserveBytes < 0 {
		return fmt.Errorf("wal: ReserveBytes %d is negative", o.ReserveBytes)
	}
	if o.FreeSpaceInterval < 0 {
		return fmt.Errorf("wal: FreeSpaceInterval %v is negative", o.FreeSpaceInterval)
	}
	if o.FreeSpaceInterval == 0 {
		o.FreeSpaceInterval = DefaultFreeSpaceInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Recovery is what Open found and did.
type Recovery struct {
	Segments int    // segment files found
	FirstLSN uint64 // first record on disk, 0 if none
	LastLSN  uint64 // last record on disk (see Log.LastLSN)
	Records  uint64 // intact records scanned
	// A torn tail cut off the last segment; TornFile is empty if none was.
	TornFile   string
	TornOffset int64  // where the cut was made (the torn record's start)
	TornBytes  int64  // bytes removed
	TornReason string // why the tail counted as torn
	BrokenPath string // the .broken copy of the segment before the cut ("" if it was empty)
	Duration   time.Duration
}

// Stats are counters and sizes of an open Log.
type Stats struct {
	Segments int
	Bytes    int64 // total size of the segment files
	FirstLSN uint64
	LastLSN  uint64
	Appends  uint64 // records written successfully since Open
	Batches  uint64 // batches written since Open
	Syncs    uint64 // fdatasyncs of appended data since Open
	Err      error  // the failure that stopped the log (matches ErrFailed), or nil
	// DiskFull is set while the log is in the disk-full state: only
	// ClassReserve appends are accepted.
	DiskFull bool
	Reserve  int64 // bytes held by the reserve file (0 while disk-full or with no reserve)
}

// segment is a segment file of an open log.
type segment struct {
	base uint64
	path string
	size int64 // bytes; for the active segment, as of the last batch done
}

// entry is one AppendAsync call in a batch.
type entry struct {
	done    func(uint64, error)
	donePos func(Pos, error) // AppendAsyncPos; set instead of done
	lsn     uint64
	err     error
	class   Class
}

// batch is a group of records written with one write and one fdatasync.
type batch struct {
	buf     []byte // encoded frames, CRCs filled in by the writer
	entries []entry
	first   uint64 // LSN of the first record
	records int    // entries with a record in buf (the others were rejected)
	start   int64  // offset in the active segment at which buf was written
}

// Log is a segmented write-ahead log. Its methods are safe for concurrent
// use.
//
// Goroutines: Open starts a writer goroutine, which owns the active segment
// file, and a completion goroutine, which calls the append callbacks. Close
// stops both (writer first, after it has flushed the queue) and waits for
// them.
type Log struct {
	dir      string
	fs       vfs.FS
	opts     Options
	logger   *slog.Logger
	recovery Recovery

	// The append queue, shared by appenders and the writer.
	mu           sync.Mutex
	space        sync.Cond // signalled when queued bytes drop, the log closes or fails
	spaceWaiters int
	queue        []*batch // waiting for the writer; the last one takes new records
	free         []*batch
	nextLSN      uint64
	queued       int64 // bytes in queue
	closed       bool
	failErr      error
	writerIdle   bool          // the writer waits for wake
	wake         chan struct{} // cap 1
	syncReqs     []syncReq     // Sync calls waiting for the writer
	// diskFullErr is set (a *diskFullError) while the log is disk-full;
	// only the writer goroutine (or Open) changes it. See diskfull.go.
	diskFullErr error

	// Batches done by the writer, waiting for their callbacks.
	cmu       sync.Mutex
	doneQ     []*batch
	complIdle bool
	complStop bool
	complWake chan struct{} // cap 1

	// The segment list, changed by the writer (rotation) and TruncateBefore.
	segMu   sync.Mutex
	segs    []segment
	lastLSN uint64 // last LSN written and done per the sync mode

	// truncMu is held shared by Replay and ReadAt and exclusively by
	// TruncateBefore and Close, so no segment is deleted (nor its read
	// handle closed) while it is read.
	truncMu sync.RWMutex
	// readers are the read-only handles of segments opened by ReadAt, by
	// first LSN; rmu guards the map (truncMu, shared, is held too).
	rmu     sync.Mutex
	readers map[uint64]vfs.File

	w writer // owned by the writer goroutine

	appends, batches, syncs atomic.Uint64
	reserve                 atomic.Int64       // bytes in the reserve file
	checkReq                chan chan struct{} // tests: the writer checks free space now and closes the channel

	closeOnce sync.Once
	closeErr  error // set by the writer before it exits
	wg        sync.WaitGroup
}

// Open opens the log in dir, creating the directory and the first segment
// if needed, and recovers it: every segment is read and checked. A torn tail
// of the last segment is cut off after a .broken copy is saved; any other
// damage makes Open fail with a *CorruptionError (see Repair).
//
// Only one Log may be open on a directory at a time; the caller holds the
// lock that ensures it.
func Open(dir string, opts Options) (*Log, error) {
	start := time.Now()
	if err := opts.fill(); err != nil {
		return nil, err
	}
	fsys := opts.FS
	if err := ensureDir(fsys, dir); err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	// A process that died between creating a segment (or this directory)
	// and the directory fsync leaves names that only the page cache holds:
	// make them durable before appending to them.
	if err := fsys.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("wal: open %s: sync dir: %w", dir, err)
	}
	if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("wal: open %s: sync parent dir: %w", dir, err)
	}
	scan, err := scanDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	l := &Log{
		dir:       dir,
		fs:        fsys,
		opts:      opts,
		logger:    opts.Logger,
		wake:      make(chan struct{}, 1),
		complWake: make(chan struct{}, 1),
		checkReq:  make(chan chan struct{}),
	}
	l.space.L = &l.mu
	rec := Recovery{Segments: len(scan.segs), Records: scan.records}
	if d := scan.damage; d != nil {
		if !d.Torn {
			return nil, d.corruption()
		}
		if err := l.cutTornTail(scan, &rec); err != nil {
			return nil, err
		}
	}
	for _, s := range scan.segs {
		l.segs = append(l.segs, segment{base: s.base, path: s.path, size: s.size})
	}
	if len(l.segs) == 0 {
		base := max(opts.StartLSN, 1)
		f, path, err := createSegment(fsys, dir, base)
		if err != nil {
			return nil, err
		}
		f.Close()
		l.segs = []segment{{base: base, path: path, size: segmentHeaderSize}}
		scan.next = base
	}
	l.nextLSN = scan.next
	l.lastLSN = scan.next - 1

	active := &l.segs[len(l.segs)-1]
	f, err := fsys.OpenFile(active.path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", active.path, err)
	}
	if _, err := f.Seek(active.size, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: open %s: %w", active.path, err)
	}
	// What recovery read may be only in the page cache (written by a
	// process that died before its fdatasync): make it durable before
	// anything is built on it, such as a snapshot covering those records.
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: open %s: fdatasync: %w", active.path, err)
	}
	l.w = writer{f: f, path: active.path, size: active.size, next: l.nextLSN}
	if opts.Sync == SyncInterval {
		l.w.timer = time.NewTimer(time.Hour)
		l.w.timer.Stop()
	}
	if err := l.openReserve(); err != nil {
		f.Close()
		l.stopFreeTicker()
		return nil, err
	}

	rec.FirstLSN, rec.LastLSN = l.firstLSNLocked(), l.lastLSN
	rec.Duration = time.Since(start)
	l.recovery = rec
	l.logger.Info("wal opened", "dir", dir, "segments", rec.Segments, "records", rec.Records,
		"first_lsn", rec.FirstLSN, "last_lsn", rec.LastLSN, "duration", rec.Duration)

	l.wg.Add(2)
	go l.runWriter()
	go l.runCompleter()
	return l, nil
}

// cutTornTail saves a .broken copy of the last segment and cuts its torn tail.
func (l *Log) cutTornTail(scan *dirScan, rec *Recovery) error {
	d := scan.damage
	seg := &scan.segs[scan.dmgIdx]
	rec.TornFile, rec.TornOffset, rec.TornBytes, rec.TornReason = d.File, d.Offset, d.Bytes, d.Reason
	if len(scan.dmgData) > 0 {
		broken, err := saveBroken(l.fs, seg.path, scan.dmgData)
		if err != nil {
			return err
		}
		rec.BrokenPath = broken
	}
	if d.Offset < segmentHeaderSize {
		if err := resetSegment(l.fs, seg.path, seg.base); err != nil {
			return err
		}
		seg.size = segmentHeaderSize
	} else {
		if err := truncateFile(l.fs, seg.path, d.Offset); err != nil {
			return err
		}
		seg.size = d.Offset
	}
	l.logger.Warn("wal: cut torn tail of last segment", "file", d.File, "offset", d.Offset,
		"bytes", d.Bytes, "next_lsn", d.LSN, "reason", d.Reason, "broken_copy", rec.BrokenPath)
	return nil
}

// Recovery reports what Open found and did.
func (l *Log) Recovery() Recovery { return l.recovery }

// FirstLSN returns the LSN of the oldest record still in the log, or 0 if
// the log holds no record.
func (l *Log) FirstLSN() uint64 {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	return l.firstLSNLocked()
}

func (l *Log) firstLSNLocked() uint64 {
	if len(l.segs) == 0 || l.lastLSN < l.segs[0].base {
		return 0
	}
	return l.segs[0].base
}

// LastLSN returns the LSN of the last record appended successfully (durable
// per the sync mode), 0 for a new log. After TruncateBefore removed every
// record it still names the last LSN ever assigned, so LastLSN()+1 is always
// the LSN the next append gets.
func (l *Log) LastLSN() uint64 {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	return l.lastLSN
}

// Stats returns counters and sizes.
func (l *Log) Stats() Stats {
	l.segMu.Lock()
	st := Stats{
		Segments: len(l.segs),
		FirstLSN: l.firstLSNLocked(),
		LastLSN:  l.lastLSN,
	}
	for _, s := range l.segs {
		st.Bytes += s.size
	}
	l.segMu.Unlock()
	st.Appends = l.appends.Load()
	st.Batches = l.batches.Load()
	st.Syncs = l.syncs.Load()
	st.Reserve = l.reserve.Load()
	l.mu.Lock()
	st.Err = l.failErr
	st.DiskFull = l.diskFullErr != nil
	l.mu.Unlock()
	return st
}

// DiskFull reports whether the log is in the disk-full state: ClassNormal
// appends fail with ErrDiskFull until free space returns.
func (l *Log) DiskFull() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.diskFullErr != nil
}

// TruncateBefore deletes the oldest segments all of whose records have an
// LSN below lsn. It never deletes the active segment, nor a segment holding
// a record with LSN >= lsn, so records from lsn on stay readable. Segments
// are deleted oldest first, each followed by a directory fsync, so a crash
// leaves a log without gaps.
func (l *Log) TruncateBefore(lsn uint64) error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	l.segMu.Lock()
	segs := slices.Clone(l.segs)
	l.segMu.Unlock()
	// The writer only appends to l.segs, so segs[:n] stay at the front.
	n := 0
	for n+1 < len(segs) && segs[n+1].base <= lsn {
		n++
	}
	for _, s := range segs[:n] {
		// A segment already gone (a previous call removed it and then
		// failed to sync the directory) counts as removed.
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("wal: truncate before %d: %w", lsn, err)
		}
		l.segMu.Lock()
		l.segs = slices.Delete(l.segs, 0, 1)
		l.segMu.Unlock()
		l.closeReader(s.base)
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: truncate before %d: sync dir after removing %s: %w", lsn, s.path, err)
		}
		l.logger.Debug("wal: deleted segment", "file", s.path, "truncate_before", lsn)
	}
	return nil
}

// Err returns the failure that stopped the log (matching ErrFailed), or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failErr
}

// syncReq is a Sync call: it is answered once every record up to upTo is
// written and fdatasynced.
type syncReq struct {
	upTo uint64
	ch   chan error
}

// Sync makes every record appended before the call durable, whatever the
// sync mode: it waits for them to be written and fdatasyncs the active
// segment if needed. (Segments are synced when rotated.) It returns the
// log's failure, if any. It must not be called from an append callback.
func (l *Log) Sync() error {
	l.mu.Lock()
	if l.failErr != nil || l.closed {
		err := l.failErr
		if err == nil {
			err = ErrClosed
		}
		l.mu.Unlock()
		return err
	}
	ch := make(chan error, 1)
	l.syncReqs = append(l.syncReqs, syncReq{upTo: l.nextLSN - 1, ch: ch})
	wake := l.writerIdle
	l.writerIdle = false
	l.mu.Unlock()
	if wake {
		l.wakeWriter()
	}
	return <-ch
}

// Close writes and syncs everything queued (in every sync mode), stops the
// goroutines, calls every pending callback and closes the active segment.
// Appends after Close fail with ErrClosed. Close is idempotent; it returns
// the error of the final fdatasync or close, if any. It must not be called
// from an append callback.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		wake := l.writerIdle
		l.writerIdle = false
		if l.spaceWaiters > 0 {
			l.space.Broadcast()
		}
		l.mu.Unlock()
		if wake {
			l.wakeWriter()
		}
		l.wg.Wait()
		l.closeReaders()
		l.logger.Info("wal closed", "dir", l.dir, "last_lsn", l.LastLSN())
	})
	return l.closeErr
}
