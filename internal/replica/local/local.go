// Package local is the single-node replica: the state machine driven by our
// WAL (group commit) and our snapshot files, in one data directory.
//
// # Data directory
//
//	<dir>/LOCK        flock held while open (a second opener is refused)
//	<dir>/wal/        WAL segments (package wal)
//	<dir>/snapshots/  snapshot files (package snapshot)
//
// # Recovery
//
// Open restores the newest valid snapshot (falling back to older ones when
// one is corrupt), replays the WAL records after it, and then proposes a
// Recover command that returns every in-flight job to its queue with its
// attempt counted: the workers holding those leases died with the process.
//
// # Proposals
//
// Propose encodes the command and appends it to the WAL. The WAL's writer
// batches concurrent appends into one write and one fdatasync (group
// commit); its completion goroutine then calls back, in log order, and the
// callback applies the command to the machine under the replica's lock and
// wakes the proposer. A command is therefore applied only once it is durable,
// and always in log order.
//
// # Disk full
//
// Enqueues are appended as wal.ClassNormal, every other command as
// wal.ClassReserve. When a WAL write fails with ENOSPC the WAL cuts the
// write back, deletes its reserve file and enters its disk-full state:
// enqueues then fail at once with an error matching replica.ErrDiskFull,
// wal.ErrDiskFull and syscall.ENOSPC, while leases, acks, heartbeats,
// cancels, retries, ticks and purges are still written into the freed
// reserve, so running jobs can finish and the queue drains. The WAL checks
// free space every second and accepts enqueues again once there is room
// (wal.Options.ReserveBytes). A failed fsync is different: the WAL stops for
// good (replica.ErrFailed, Status().Failed) until a restart.
//
// # Snapshots
//
// A background goroutine takes a snapshot every Options.SnapshotEvery
// records or SnapshotInterval: it captures the machine under the lock (cheap:
// copy on write), streams it to a snapshot file without the lock, and then
// deletes the WAL segments that the oldest kept snapshot covers.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/host"
	"github.com/beaver-raft/beaver-raft/internal/snapshot"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

// recordCommand is the WAL record type of an encoded fsm.Command.
const recordCommand uint8 = 1

// Defaults of Options.
const (
	DefaultSnapshotEvery    = 100_000
	DefaultSnapshotBytes    = 64 << 20
	DefaultSnapshotInterval = 5 * time.Minute
	DefaultSnapshotKeep     = 2
)

// Options configure a Replica.
type Options struct {
	Dir           string
	FS            vfs.FS // default vfs.OS
	Sync          wal.SyncMode
	SyncInterval  time.Duration
	SegmentSize   int64
	SnapshotEvery uint64 // records between snapshots; default DefaultSnapshotEvery
	// SnapshotBytes also takes a snapshot once this many bytes of commands
	// were logged since the last one (a batch enqueue of 1,000 jobs is one
	// record): it bounds the WAL a restart replays. Default
	// DefaultSnapshotBytes; negative: no byte trigger.
	SnapshotBytes    int64
	SnapshotInterval time.Duration // at most this long between snapshots while records arrive; default 5m
	SnapshotKeep     int           // snapshot chains kept; default 2
	// SnapshotDeltaRatio: snapshots are deltas on a chain until the chain's
	// deltas add up to more than this fraction of its full base; the next
	// snapshot then also writes a new base. Default
	// DefaultSnapshotDeltaRatio; negative: every snapshot is full.
	SnapshotDeltaRatio float64
	// SnapshotBaseRate limits the writing of a new base to this many bytes
	// per second. Default DefaultSnapshotBaseRate; negative: unlimited.
	SnapshotBaseRate int64
	// NoSnapshotOnClose skips the snapshot Close otherwise takes, which
	// makes the next start replay nothing.
	NoSnapshotOnClose bool
	Logger            *slog.Logger                                 // default discard
	Clock             func() time.Time                             // default time.Now
	WALObserver       wal.Observer                                 // optional
	OnSnapshot        func(d time.Duration, size int64, err error) // optional, called after each snapshot attempt
	// OnApply, if set, is called after each command proposed through this
	// replica is applied (not for commands replayed at recovery), under the
	// replica's lock, in log order. It must be fast and must not call the
	// replica.
	OnApply func(m *fsm.Machine, c *fsm.Command, r *fsm.Result)
	// ReserveBytes is the size of the WAL's reserve file, freed for the
	// commands other than enqueues when the disk fills up (see
	// wal.Options.ReserveBytes; 0: none). The server's default is
	// wal.DefaultReserveBytes.
	ReserveBytes int64
}

// Replica is the single-node replica. See the package documentation.
type Replica struct {
	opts  Options
	log   *slog.Logger
	lock  *dirLock
	wal   *wal.Log
	snaps *snapshot.Store

	// m and applied are the state during recovery; h hosts it from then on
	// (Open returns only once h is set).
	m       *fsm.Machine
	applied uint64
	h       *host.Host

	recovery replica.Recovery
	closed   atomic.Bool
	closeMu  sync.Mutex

	snapTrigger chan struct{}
	stop        chan struct{}
	bg          sync.WaitGroup

	snapMu   sync.Mutex // serialises snapshots; guards snapStat and chain
	snapStat replica.SnapshotStatus
	chain    chainState
}

var _ replica.Replica = (*Replica)(nil)

// Open locks opts.Dir, recovers the state and starts the snapshot loop.
func Open(opts Options) (*Replica, error) {
	start := time.Now()
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.SnapshotBytes == 0 {
		opts.SnapshotBytes = DefaultSnapshotBytes
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = DefaultSnapshotEvery
	}
	if opts.SnapshotInterval == 0 {
		opts.SnapshotInterval = DefaultSnapshotInterval
	}
	if opts.SnapshotKeep == 0 {
		opts.SnapshotKeep = DefaultSnapshotKeep
	}
	if opts.SnapshotDeltaRatio == 0 {
		opts.SnapshotDeltaRatio = DefaultSnapshotDeltaRatio
	}
	if opts.SnapshotBaseRate == 0 {
		opts.SnapshotBaseRate = DefaultSnapshotBaseRate
	}
	if opts.Dir == "" {
		return nil, errors.New("local replica: no data directory")
	}
	if err := opts.FS.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if isClusterDir(opts.Dir) {
		return nil, fmt.Errorf("data directory of another mode: %s holds a cluster node's state (raft/); run it with --cluster, or use another --data-dir", opts.Dir)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	r := &Replica{
		opts:        opts,
		log:         opts.Logger,
		lock:        lock,
		m:           fsm.New(),
		snapTrigger: make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	// Nearly everything recovery allocates stays live, so collecting only
	// costs time: the collector is off while recovering, bounded by a memory
	// limit (unless the operator set GOGC or GOMEMLIMIT), then the garbage
	// goes back to the OS.
	relaxGC := os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
	if relaxGC {
		defer relaxGCForRecovery(recoveryMemoryLimit(opts.FS, opts.Dir))()
	}
	if err := r.recover(); err != nil {
		r.closeStorage()
		return nil, err
	}
	r.recovery.Duration = time.Since(start)
	if relaxGC {
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			debug.FreeOSMemory()
		}()
	}
	r.log.Info("recovered",
		"duration", r.recovery.Duration,
		"snapshot_lsn", r.recovery.SnapshotLSN,
		"snapshot_jobs", r.recovery.SnapshotJobs,
		"records_replayed", r.recovery.RecordsReplayed,
		"requeued", r.recovery.RequeuedJobs,
		"jobs", r.Len())
	r.bg.Add(1)
	go r.snapshotLoop()
	return r, nil
}

// Recovery's collector settings are the process's: the first Open to
// recover sets them, the last to finish puts back what was there before.
var recoveryGC struct {
	sync.Mutex
	n        int   // Opens recovering
	limit    int64 // the largest limit one asked for
	oldPct   int
	oldLimit int64
}

// relaxGCForRecovery turns the collector off, bounded by a memory limit of
// at least limit bytes, and returns the function that undoes it.
func relaxGCForRecovery(limit int64) (restore func()) {
	g := &recoveryGC
	g.Lock()
	defer g.Unlock()
	if g.n == 0 {
		g.oldPct = debug.SetGCPercent(-1)
		g.oldLimit = debug.SetMemoryLimit(limit)
		g.limit = limit
	} else if limit > g.limit {
		g.limit = limit
		debug.SetMemoryLimit(limit)
	}
	g.n++
	return func() {
		g.Lock()
		defer g.Unlock()
		if g.n--; g.n == 0 {
			debug.SetMemoryLimit(g.oldLimit)
			debug.SetGCPercent(g.oldPct)
		}
	}
}

// recoveryMemoryLimit bounds the heap while the collector is off for
// recovery: a state takes one to three times the bytes of its snapshot and
// WAL files (more for tiny payloads), so collecting before that would find
// little garbage.
func recoveryMemoryLimit(fsys vfs.FS, dir string) int64 {
	var disk int64
	for _, sub := range []string{"snapshots", "wal"} {
		d := filepath.Join(dir, sub)
		names, _ := fsys.ReadDir(d)
		for _, n := range names {
			if st, err := fsys.Stat(filepath.Join(d, n)); err == nil && st.Mode().IsRegular() {
				disk += st.Size()
			}
		}
	}
	return capRecoveryLimit(4*disk+256<<20, physicalMemory())
}

// capRecoveryLimit keeps the limit within half the machine's RAM (when
// known): a data directory much larger than RAM must not turn the collector
// off until the heap has outgrown the machine. Past the limit the collector
// runs as usual.
func capRecoveryLimit(limit, ram int64) int64 {
	if ram > 0 {
		return min(limit, ram/2)
	}
	return limit
}

func (r *Replica) recover() error {
	var err error
	r.snaps, err = snapshot.Open(filepath.Join(r.opts.Dir, "snapshots"), snapshot.Options{FS: r.opts.FS, Keep: r.opts.SnapshotKeep, Logger: r.log})
	if err != nil {
		return err
	}
	cat, err := r.snaps.Catalog()
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	used, skipped, err := r.restoreChains(cat)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	for _, s := range skipped {
		r.recovery.SkippedSnapshot = append(r.recovery.SkippedSnapshot, s.m.Path)
		r.log.Error("snapshot skipped at recovery", "file", s.m.Path, "lsn", s.m.LSN, "kind", s.m.Kind, "err", s.err)
	}
	if len(used) > 0 {
		tip := used[len(used)-1]
		r.recovery.SnapshotLSN = tip.LSN
		r.recovery.SnapshotJobs = r.m.Len()
		r.chain = chainState{ok: true, base: used[0], tip: tip}
		for _, d := range used[1:] {
			r.chain.deltaBytes += d.Size
			r.chain.deltas++
		}
		if len(skipped) > 0 {
			r.log.Warn("restored from an older snapshot", "file", tip.Path, "lsn", tip.LSN, "deltas", len(used)-1, "skipped", len(skipped))
		}
	}
	// Deltas from here on are taken against the state as restored.
	r.chain.mark = r.m.Mark()
	r.applied = r.recovery.SnapshotLSN

	r.wal, err = wal.Open(filepath.Join(r.opts.Dir, "wal"), wal.Options{
		FS:           r.opts.FS,
		SegmentSize:  r.opts.SegmentSize,
		Sync:         r.opts.Sync,
		SyncInterval: r.opts.SyncInterval,
		Logger:       r.log,
		Observer:     r.opts.WALObserver,
		StartLSN:     r.applied + 1,
		ReserveBytes: r.opts.ReserveBytes,
	})
	if err != nil {
		return err
	}
	wrec := r.wal.Recovery()
	r.recovery.TornBytes, r.recovery.TornFile = wrec.TornBytes, wrec.TornFile
	if err := r.checkCoverage(skipped); err != nil {
		return err
	}
	if len(skipped) > 0 && len(used) == 0 {
		r.log.Warn("no snapshot usable: rebuilding the state from the WAL, which holds every record since LSN 1", "skipped", len(skipped), "records", r.wal.LastLSN())
	}
	replayedBytes, err := r.replay()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	r.h = host.New(r.m, r.applied, r.opts.OnApply)
	r.h.AddSince(r.recovery.RecordsReplayed, replayedBytes)
	total, _ := r.m.Counts()
	r.m = nil // the host owns it now
	if total.Count(fsm.StateInFlight) > 0 {
		res, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindRecover, Now: r.opts.Clock().UnixNano()})
		if err != nil {
			return fmt.Errorf("requeue in-flight jobs: %w", err)
		}
		r.recovery.RequeuedJobs = res.Expired
	}
	return nil
}

// replayBatch is a run of decoded WAL records for replay to apply.
type replayBatch struct {
	cmds  []fsm.Command
	lsns  []uint64
	bytes int64
	err   error // after the commands: why the replay stopped
	// specs[i] is the array of job specs cmds[i] may reuse when the
	// batch is used again
	specs [][]fsm.JobSpec
}

// replay applies the WAL records after r.applied to r.m. One goroutine reads,
// checks and decodes the records in batches while this one applies them in
// log order; an error is returned after every record before it is applied,
// as a replay by one goroutine would. It returns the bytes replayed.
func (r *Replica) replay() (int64, error) {
	const batchLen, batchBytes, inFlight = 256, 1 << 20, 4
	batches := make(chan *replayBatch, inFlight)
	free := make(chan *replayBatch, inFlight+2) // applied batches, for reuse
	from := r.applied + 1
	newBatch := func() *replayBatch {
		select {
		case b := <-free:
			return b
		default:
			return &replayBatch{cmds: make([]fsm.Command, 0, batchLen), lsns: make([]uint64, 0, batchLen), specs: make([][]fsm.JobSpec, batchLen)}
		}
	}
	go func() { // ends when the WAL's records do; replay drains batches
		defer close(batches)
		b := newBatch()
		err := r.wal.Replay(from, func(lsn uint64, typ uint8, data []byte) error {
			if typ != recordCommand {
				return fmt.Errorf("WAL record %d: unknown record type %d", lsn, typ)
			}
			k := len(b.cmds)
			c, err := fsm.DecodeCommandReusing(data, b.specs[k])
			if err != nil {
				return fmt.Errorf("WAL record %d: %w", lsn, err)
			}
			if cap(c.Jobs) > cap(b.specs[k]) {
				b.specs[k] = c.Jobs[:0]
			}
			b.cmds = append(b.cmds, c)
			b.lsns = append(b.lsns, lsn)
			b.bytes += int64(len(data))
			if len(b.cmds) == batchLen || b.bytes >= batchBytes {
				batches <- b
				b = newBatch()
			}
			return nil
		})
		b.err = err
		batches <- b
	}()
	var replayed int64
	var err error
	for b := range batches {
		for i := range b.cmds {
			r.m.Apply(&b.cmds[i])
			r.applied = b.lsns[i]
			r.recovery.RecordsReplayed++
		}
		replayed += b.bytes
		if b.err != nil {
			err = b.err
		}
		clear(b.cmds) // the machine keeps no pointer into them
		*b = replayBatch{cmds: b.cmds[:0], lsns: b.lsns[:0], specs: b.specs}
		select {
		case free <- b:
		default:
		}
	}
	return replayed, err
}

// checkCoverage checks that the WAL holds every record after the restore
// point (r.applied) that anything on disk says was written: up to the WAL's
// own end, and up to the newest snapshot file that had to be skipped. It
// refuses rather than start without an acknowledged record, naming the
// skipped files (each error gives file and offset) and the missing LSNs.
func (r *Replica) checkCoverage(skipped []skippedFile) error {
	return coverage(r.applied, r.wal.FirstLSN(), r.wal.LastLSN(), skipped)
}

// coverage is checkCoverage for a restore point applied and a WAL holding
// records first..last (first 0: none, and last is where it ends).
func coverage(applied, first, last uint64, skipped []skippedFile) error {
	var newest uint64
	var damage []error
	for _, s := range skipped {
		newest = max(newest, s.m.LSN)
		damage = append(damage, s.err)
	}
	point := "the snapshot covers only up to LSN " + fmt.Sprint(applied)
	if applied == 0 {
		point = "no snapshot is usable"
	}
	why := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if len(damage) == 0 {
			return fmt.Errorf("recover: %s", msg)
		}
		return fmt.Errorf("recover: %s; skipped snapshots: %w", msg, errors.Join(damage...))
	}
	switch {
	case first == 0 && last > applied:
		return why("the WAL holds no records and ends at LSN %d but %s: records %d..%d are missing", last, point, applied+1, last)
	case first > applied+1:
		return why("the WAL starts at LSN %d but %s: records %d..%d are missing", first, point, applied+1, first-1)
	case last < applied:
		return why("the snapshot covers LSN %d but the WAL ends at LSN %d", applied, last)
	case last < newest:
		return why("a skipped snapshot covers LSN %d but the WAL ends at LSN %d and %s: records %d..%d are missing", newest, last, point, last+1, newest)
	}
	return nil
}

// proposal is one Propose waiting for its command to be applied.
type proposal struct {
	cmd  *fsm.Command
	res  fsm.Result
	err  error
	done chan struct{}
	size int // encoded bytes
}

var proposalPool = sync.Pool{New: func() any { return &proposal{done: make(chan struct{}, 1)} }}
var encodePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledEncode bounds the encoding buffers encodePool keeps: a batch of
// 1,000 jobs takes some 130 KB, which would otherwise be allocated and
// zeroed for every batch.
const maxPooledEncode = 1 << 20

// Propose implements replica.Replica.
func (r *Replica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	if r.closed.Load() {
		return fsm.Result{}, replica.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, err
	}
	bp := encodePool.Get().(*[]byte)
	*bp = fsm.AppendCommand((*bp)[:0], cmd)
	p := proposalPool.Get().(*proposal)
	p.cmd = cmd
	p.size = len(*bp)
	r.wal.AppendAsyncClass(recordCommand, *bp, walClass(cmd.Kind), func(lsn uint64, err error) { r.applyDurable(p, lsn, err) })
	if cap(*bp) <= maxPooledEncode {
		encodePool.Put(bp) // the log copied the record
	}
	<-p.done
	res, err := p.res, p.err
	*p = proposal{done: p.done}
	proposalPool.Put(p)
	if err != nil {
		return res, storageErr(err)
	}
	return res, nil
}

// walClass says which commands may use the WAL's reserve when the disk is
// full: all but enqueues, so that work in progress can finish (and the
// queue drain) while new work is refused.
func walClass(k fsm.Kind) wal.Class {
	if k == fsm.KindEnqueue {
		return wal.ClassNormal
	}
	return wal.ClassReserve
}

// storageError is a WAL failure as Propose and Status report it: it matches
// kind (replica.ErrDiskFull or replica.ErrFailed) and everything the WAL's
// error matches, and reads as the WAL's error.
type storageError struct {
	kind error
	err  error
}

func (e *storageError) Error() string   { return e.err.Error() }
func (e *storageError) Unwrap() []error { return []error{e.kind, e.err} }

// storageErr classifies an error of the WAL for the replica's callers, so
// that they match only the replica's own errors.
func storageErr(err error) error {
	switch {
	case errors.Is(err, wal.ErrFailed):
		return &storageError{kind: replica.ErrFailed, err: err}
	case errors.Is(err, wal.ErrDiskFull), errors.Is(err, syscall.ENOSPC):
		return &storageError{kind: replica.ErrDiskFull, err: err}
	case errors.Is(err, wal.ErrTooLarge):
		return &storageError{kind: replica.ErrTooLarge, err: err}
	case errors.Is(err, wal.ErrClosed):
		return &storageError{kind: replica.ErrClosed, err: err}
	}
	return err
}

// applyDurable runs on the WAL's completion goroutine, in LSN order.
func (r *Replica) applyDurable(p *proposal, lsn uint64, err error) {
	if err != nil {
		p.err = err
		p.done <- struct{}{}
		return
	}
	p.res = r.h.Apply(lsn, p.cmd, p.size)
	p.done <- struct{}{}
	recs, bytes := r.h.Since()
	if recs >= r.opts.SnapshotEvery || (r.opts.SnapshotBytes > 0 && bytes >= r.opts.SnapshotBytes) {
		select {
		case r.snapTrigger <- struct{}{}:
		default: // one is pending already
		}
	}
}

// Read implements replica.Replica. A single node reads its own state,
// which is always current: ctx and the consistency level do not matter.
func (r *Replica) Read(fn func(m *fsm.Machine)) { r.h.Read(fn) }

// Changed implements replica.Replica.
func (r *Replica) Changed() <-chan struct{} { return r.h.Changed() }

// Capture freezes the current state (for seeding a cluster from it).
func (r *Replica) Capture() *fsm.Snapshot {
	s, _ := r.h.Capture()
	return s
}

// Len is the number of jobs held.
func (r *Replica) Len() (n int) {
	r.h.Read(func(m *fsm.Machine) { n = m.Len() })
	return n
}

// Status implements replica.Replica.
func (r *Replica) Status() replica.Status {
	applied := r.h.Applied()
	ws := r.wal.Stats()
	r.snapMu.Lock()
	ss := r.snapStat
	r.snapMu.Unlock()
	if metas, err := r.snaps.List(); err == nil {
		ss.Count = len(metas)
		if ss.LastLSN == 0 && len(metas) > 0 {
			ss.LastLSN, ss.LastSize, ss.LastTime = metas[0].LSN, metas[0].Size, metas[0].CreatedAt
		}
	}
	st := replica.Status{
		Role:       "single",
		AppliedLSN: applied,
		Recovery:   r.recovery,
		WAL:        replica.WALStatus{FirstLSN: ws.FirstLSN, LastLSN: ws.LastLSN, Segments: ws.Segments, Bytes: ws.Bytes},
		Snapshot:   ss,
	}
	if err := r.wal.Err(); err != nil {
		st.Failed = storageErr(err)
	}
	st.DiskFull = r.wal.DiskFull()
	return st
}

// pending is the number of commands applied since the last snapshot.
func (r *Replica) pending() uint64 {
	n, _ := r.h.Since()
	return n
}

// Close implements replica.Replica.
func (r *Replica) Close() error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed.Swap(true) {
		return nil
	}
	close(r.stop)
	r.bg.Wait()
	r.snapMu.Lock() // wait for a snapshot still running (Snapshot); stop ends a throttled base
	r.snapMu.Unlock()
	var errs []error
	if !r.opts.NoSnapshotOnClose && r.wal.Err() == nil && r.pending() > 0 {
		if err := r.takeSnapshot(false); err != nil {
			errs = append(errs, fmt.Errorf("snapshot on close: %w", err))
		}
	}
	errs = append(errs, r.closeStorage())
	return errors.Join(errs...)
}

func (r *Replica) closeStorage() error {
	var errs []error
	if r.wal != nil {
		errs = append(errs, r.wal.Close())
	}
	errs = append(errs, r.lock.release())
	return errors.Join(errs...)
}

// Recovery reports what Open did.
func (r *Replica) Recovery() replica.Recovery { return r.recovery }
