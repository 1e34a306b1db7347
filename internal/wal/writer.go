package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Class says whether an append may use the space the log holds in reserve
// for when the disk is full (Options.ReserveBytes).
type Class uint8

const (
	// ClassNormal appends fail at once with ErrDiskFull while the log is
	// disk-full, without touching the disk. Use it for records that grow
	// the state (new jobs).
	ClassNormal Class = iota
	// ClassReserve appends are written while the log is disk-full, into the
	// space freed by deleting the reserve file. Use it for records that let
	// the system drain (completions, lease changes, cancellations, purges):
	// they keep working while new work is refused. They can still fail with
	// ErrDiskFull once that space is used up too.
	ClassReserve
)

func (c Class) String() string {
	switch c {
	case ClassNormal:
		return "normal"
	case ClassReserve:
		return "reserve"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// AppendAsync is AppendAsyncClass with ClassNormal.
func (l *Log) AppendAsync(typ uint8, data []byte, done func(lsn uint64, err error)) {
	l.AppendAsyncClass(typ, data, ClassNormal, done)
}

// AppendAsyncClass queues a record and returns without waiting. data is
// copied before it returns. LSNs are assigned in the order of the calls.
//
// done (may be nil) is called exactly once, in LSN order across all appends,
// from the log's completion goroutine: after the record's batch is written
// and, with SyncAlways, fdatasynced; or with an error and LSN 0 (ErrTooLarge,
// ErrFailed wrapping the I/O error, ErrDiskFull). The one exception: after
// Close, done is called with ErrClosed before AppendAsyncClass returns. done
// must be quick and must not wait for the log (no Append, no Close);
// AppendAsync is fine.
//
// class matters only while the log is disk-full: a ClassNormal append then
// fails with ErrDiskFull without being written, a ClassReserve one is
// written. A record queued when the log enters the disk-full state is
// treated the same way, so that a ClassNormal record never uses the
// reserve.
//
// AppendAsyncClass blocks while more than Options.MaxQueued bytes wait for
// the writer.
func (l *Log) AppendAsyncClass(typ uint8, data []byte, class Class, done func(lsn uint64, err error)) {
	l.appendAsync(typ, data, class, done, nil)
}

// appendAsync queues a record whose completion calls done or donePos (one
// of them, or neither, is set).
func (l *Log) appendAsync(typ uint8, data []byte, class Class, done func(uint64, error), donePos func(Pos, error)) {
	var reject error
	size := 0
	if len(data) > MaxRecordSize {
		reject = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxRecordSize)
	} else {
		size = recordSize(len(data))
	}
	l.mu.Lock()
	for reject == nil && !l.closed && l.failErr == nil {
		if l.diskFullErr != nil && class == ClassNormal {
			reject = l.diskFullErr
			break
		}
		if l.queued == 0 || l.queued+int64(size) <= l.opts.MaxQueued {
			break
		}
		l.spaceWaiters++
		l.space.Wait()
		l.spaceWaiters--
	}
	if l.closed {
		l.mu.Unlock()
		if done != nil {
			done(0, ErrClosed)
		}
		if donePos != nil {
			donePos(Pos{}, ErrClosed)
		}
		return
	}
	if reject == nil {
		reject = l.failErr
	}
	if reject != nil && done == nil && donePos == nil {
		l.mu.Unlock()
		return
	}
	b := l.tailBatch(size)
	if reject != nil {
		b.entries = append(b.entries, entry{done: done, donePos: donePos, err: reject})
	} else {
		lsn := l.nextLSN
		l.nextLSN++
		if b.records == 0 {
			b.first = lsn
		}
		b.buf = appendFrame(b.buf, lsn, typ, data)
		b.entries = append(b.entries, entry{done: done, donePos: donePos, lsn: lsn, class: class})
		b.records++
		l.queued += int64(size)
	}
	wake := l.writerIdle
	l.writerIdle = false
	l.mu.Unlock()
	if wake {
		l.wakeWriter()
	}
}

// tailBatch returns the batch that takes a record of size bytes, starting a
// new one when the last is full. l.mu is held.
func (l *Log) tailBatch(size int) *batch {
	if n := len(l.queue); n > 0 {
		b := l.queue[n-1]
		if len(b.entries) == 0 || (len(b.buf)+size <= maxBatchBytes && len(b.entries) < maxBatchRecords) {
			return b
		}
	}
	var b *batch
	if n := len(l.free); n > 0 {
		b = l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
	} else {
		b = &batch{buf: make([]byte, 0, 64<<10)}
	}
	l.queue = append(l.queue, b)
	return b
}

func (l *Log) wakeWriter() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Append is AppendClass with ClassNormal.
func (l *Log) Append(typ uint8, data []byte) (uint64, error) {
	return l.AppendClass(typ, data, ClassNormal)
}

// AppendClass appends a record and waits until it is durable per the sync
// mode. It returns the record's LSN. See AppendAsyncClass for class.
func (l *Log) AppendClass(typ uint8, data []byte, class Class) (uint64, error) {
	w := waiterPool.Get().(*waiter)
	l.AppendAsyncClass(typ, data, class, w.fn)
	<-w.ch
	lsn, err := w.lsn, w.err
	w.err = nil
	waiterPool.Put(w)
	return lsn, err
}

// waiter turns the callback of AppendAsync into a wait; pooled so Append
// allocates nothing.
type waiter struct {
	ch  chan struct{}
	lsn uint64
	err error
	fn  func(uint64, error) // w.done, bound once
}

func (w *waiter) done(lsn uint64, err error) {
	w.lsn, w.err = lsn, err
	w.ch <- struct{}{}
}

var waiterPool = sync.Pool{New: func() any {
	w := &waiter{ch: make(chan struct{}, 1)}
	w.fn = w.done
	return w
}}

// writer is the state owned by the writer goroutine.
type writer struct {
	f      vfs.File // the active segment; nil once closed by finishWriter
	path   string
	size   int64       // bytes in the active segment
	next   uint64      // LSN of the next record to write
	dirty  bool        // written since the last fdatasync
	timer  *time.Timer // SyncInterval only
	failed error       // sticky, also published in l.failErr
	// diskFull is set in the disk-full state (published as l.diskFullErr);
	// freeTick then paces the free-space checks.
	diskFull bool
	freeTick *time.Ticker
}

// runWriter is the writer goroutine: it takes one batch at a time off the
// queue, writes it with one write and (SyncAlways) one fdatasync, and hands
// it to the completion goroutine. Records queued meanwhile form the next
// batch: that is the group commit. It exits once the log is closed and the
// queue is empty.
func (l *Log) runWriter() {
	defer l.wg.Done()
	var timerC <-chan time.Time
	if l.w.timer != nil {
		timerC = l.w.timer.C
	}
	for {
		b, closed := l.takeBatch()
		if b != nil {
			l.writeBatch(b)
			l.serveSyncs(false)
			continue
		}
		if l.serveSyncs(false) {
			continue
		}
		if closed {
			l.finishWriter()
			l.serveSyncs(true)
			return
		}
		var freeC <-chan time.Time
		if l.w.freeTick != nil {
			freeC = l.w.freeTick.C
		}
		select {
		case <-l.wake:
		case <-timerC:
			l.intervalSync()
		case <-freeC:
			l.checkFreeSpace()
		case ch := <-l.checkReq:
			l.checkFreeSpace()
			close(ch)
		}
	}
}

// serveSyncs answers the Sync calls whose records are all written, with one
// fdatasync if anything is unsynced. With all, it answers every call (the
// log is closed and drained). Once the log failed it answers every call with
// the failure: their records will never be written. It reports whether it
// answered any.
func (l *Log) serveSyncs(all bool) bool {
	all = all || l.w.failed != nil
	l.mu.Lock()
	var ready []syncReq
	keep := l.syncReqs[:0]
	for _, r := range l.syncReqs {
		if all || r.upTo < l.w.next {
			ready = append(ready, r)
		} else {
			keep = append(keep, r)
		}
	}
	clear(l.syncReqs[len(keep):])
	l.syncReqs = keep
	l.mu.Unlock()
	if len(ready) == 0 {
		return false
	}
	if l.w.dirty && l.w.failed == nil && l.w.f != nil {
		if err := l.syncActive(); err != nil {
			l.fail("fdatasync "+l.w.path, err)
		}
	}
	var err error
	if l.w.failed != nil {
		err = l.w.failed
	}
	for _, r := range ready {
		r.ch <- err
	}
	return true
}

// takeBatch removes the oldest batch from the queue. With none, it marks the
// writer idle and reports whether the log is closed.
func (l *Log) takeBatch() (*batch, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		l.writerIdle = true
		return nil, l.closed
	}
	b := l.queue[0]
	n := copy(l.queue, l.queue[1:])
	l.queue[n] = nil
	l.queue = l.queue[:n]
	l.queued -= int64(len(b.buf))
	if l.spaceWaiters > 0 {
		l.space.Broadcast()
	}
	return b, false
}

// writeBatch writes, syncs and completes one batch.
func (l *Log) writeBatch(b *batch) {
	if b.records == 0 { // only rejected appends
		l.complete(b)
		return
	}
	if l.w.failed != nil {
		l.failBatch(b, l.w.failed)
		return
	}
	sealRecords(b.buf)
	b.start = l.w.size
	if _, err := l.w.f.Write(b.buf); err != nil {
		if errors.Is(err, syscall.ENOSPC) && !l.opts.NoSpaceFails {
			l.writeNoSpace(b, err)
			return
		}
		l.fail("write "+l.w.path, err)
		l.failBatch(b, l.w.failed)
		return
	}
	l.w.size += int64(len(b.buf))
	l.w.next = b.first + uint64(b.records)
	switch l.opts.Sync {
	case SyncAlways:
		if err := l.syncActive(); err != nil {
			// The batch is not acknowledged, but after a failed fdatasync
			// Linux may mark its pages clean without them reaching the
			// disk: a restart without a reboot would then build on data
			// the disk does not hold. Cut the batch off (best effort: the
			// log fails either way, and nothing is reported as durable).
			l.w.size -= int64(len(b.buf))
			if cerr := l.cutBack(); cerr != nil {
				l.logger.Warn("wal: could not cut off the batch whose fdatasync failed", "file", l.w.path, "err", cerr)
			}
			l.fail("fdatasync "+l.w.path, err)
			l.failBatch(b, l.w.failed)
			return
		}
	case SyncInterval:
		if !l.w.dirty {
			l.w.timer.Reset(l.opts.SyncInterval)
		}
		l.w.dirty = true
	case SyncNever:
		l.w.dirty = true
	}
	l.appends.Add(uint64(b.records))
	l.batches.Add(1)
	if o := l.opts.Observer; o != nil {
		o.ObserveWrite(b.records, len(b.buf))
	}
	l.segMu.Lock()
	l.segs[len(l.segs)-1].size = l.w.size
	l.lastLSN = l.w.next - 1
	l.segMu.Unlock()
	// Rotate before the callbacks run, so an acknowledged append sees the
	// segment list it caused. A failed rotation fails later appends only:
	// this batch is already done. While the disk is full the active segment
	// grows past SegmentSize instead (by the reserve at most).
	if l.w.size > l.opts.SegmentSize && !l.w.diskFull {
		l.rotate()
	}
	l.complete(b)

	// A busy writer never idles in select: poll the timers.
	if l.w.timer != nil {
		select {
		case <-l.w.timer.C:
			l.intervalSync()
		default:
		}
	}
	if l.w.freeTick != nil {
		select {
		case <-l.w.freeTick.C:
			l.checkFreeSpace()
		default:
		}
	}
}

// syncActive fdatasyncs the active segment.
func (l *Log) syncActive() error {
	start := time.Now()
	err := l.w.f.Sync()
	l.syncs.Add(1)
	if o := l.opts.Observer; o != nil {
		o.ObserveSync(time.Since(start))
	}
	l.w.dirty = false
	return err
}

func (l *Log) intervalSync() {
	if !l.w.dirty || l.w.failed != nil {
		return
	}
	if err := l.syncActive(); err != nil {
		l.fail("fdatasync "+l.w.path, err)
	}
}

// rotate makes the active segment durable, starts the next and closes the
// old one. The old segment is synced in every mode, before the next is
// created: recovery forgives a torn tail only in the last segment. If the
// disk is too full to create the next segment, the half-made file is
// removed, the log enters the disk-full state and goes on writing to the
// old segment.
func (l *Log) rotate() {
	if l.w.failed != nil {
		return
	}
	if l.w.dirty {
		if err := l.syncActive(); err != nil {
			l.fail("fdatasync "+l.w.path, err)
			return
		}
	}
	f, path, err := createSegment(l.fs, l.dir, l.w.next)
	if err != nil {
		if !errors.Is(err, syscall.ENOSPC) || l.opts.NoSpaceFails {
			l.fail("rotate", err)
			return
		}
		if rerr := discardFile(l.fs, path); rerr != nil {
			l.fail("remove half-made segment after ENOSPC", rerr)
			return
		}
		l.enterDiskFull("create segment "+path, err)
		return
	}
	old, oldPath := l.w.f, l.w.path
	l.w.f, l.w.path, l.w.size = f, path, segmentHeaderSize
	l.segMu.Lock()
	l.segs = append(l.segs, segment{base: l.w.next, path: path, size: segmentHeaderSize})
	l.segMu.Unlock()
	l.logger.Debug("wal: rotated segment", "file", path, "first_lsn", l.w.next)
	if err := old.Close(); err != nil {
		l.fail("close "+oldPath, err)
	}
}

// fail puts the log into the failed state. A failed fsync is never retried:
// what reached the disk is unknown, so nothing more is acknowledged until
// the log is reopened and recovered.
func (l *Log) fail(op string, cause error) {
	if l.w.failed != nil {
		return
	}
	err := &failedError{op: op, cause: cause}
	l.w.failed = err
	l.mu.Lock()
	l.failErr = err
	if l.spaceWaiters > 0 {
		l.space.Broadcast()
	}
	l.mu.Unlock()
	l.logger.Error("wal: log failed; no more appends until reopened", "op", op, "err", cause)
}

// failBatch completes every record of b with err.
func (l *Log) failBatch(b *batch, err error) {
	for i := range b.entries {
		if e := &b.entries[i]; e.err == nil {
			e.err, e.lsn = err, 0
		}
	}
	l.complete(b)
}

// finishWriter runs once the log is closed and the queue drained.
func (l *Log) finishWriter() {
	if l.w.timer != nil {
		l.w.timer.Stop()
	}
	l.stopFreeTicker()
	if l.w.f != nil {
		if l.w.dirty && l.w.failed == nil {
			if err := l.syncActive(); err != nil {
				l.closeErr = fmt.Errorf("wal: close: fdatasync %s: %w", l.w.path, err)
				l.fail("fdatasync "+l.w.path, err)
			}
		}
		if err := l.w.f.Close(); err != nil && l.closeErr == nil {
			l.closeErr = fmt.Errorf("wal: close %s: %w", l.w.path, err)
		}
		l.w.f = nil
	}
	l.cmu.Lock()
	l.complStop = true
	wake := l.complIdle
	l.complIdle = false
	l.cmu.Unlock()
	if wake {
		l.wakeCompleter()
	}
}

// complete hands a finished batch to the completion goroutine.
func (l *Log) complete(b *batch) {
	l.cmu.Lock()
	l.doneQ = append(l.doneQ, b)
	wake := l.complIdle
	l.complIdle = false
	l.cmu.Unlock()
	if wake {
		l.wakeCompleter()
	}
}

func (l *Log) wakeCompleter() {
	select {
	case l.complWake <- struct{}{}:
	default:
	}
}

// runCompleter is the completion goroutine: it calls the callbacks of
// finished batches in order, so the writer can go on with the next write
// and fdatasync meanwhile. It exits after the writer did and every callback
// ran.
func (l *Log) runCompleter() {
	defer l.wg.Done()
	var work []*batch
	for {
		l.cmu.Lock()
		if len(l.doneQ) == 0 {
			stop := l.complStop
			l.complIdle = !stop
			l.cmu.Unlock()
			if stop {
				return
			}
			<-l.complWake
			continue
		}
		work, l.doneQ = l.doneQ, work[:0]
		l.cmu.Unlock()
		for _, b := range work {
			off := 0 // of the next record's frame in b.buf
			for i := range b.entries {
				e := &b.entries[i]
				var pos Pos
				if e.err == nil {
					pos = Pos{LSN: e.lsn, Offset: b.start + int64(off)}
					off += recordSize(int(binary.LittleEndian.Uint32(b.buf[off:])))
				}
				switch {
				case e.done != nil:
					e.done(e.lsn, e.err)
				case e.donePos != nil:
					e.donePos(pos, e.err)
				}
			}
			l.recycle(b)
		}
		clear(work)
	}
}

// recycle returns a completed batch to the free list.
func (l *Log) recycle(b *batch) {
	clear(b.entries)
	b.entries = b.entries[:0]
	b.buf = b.buf[:0]
	b.first, b.records, b.start = 0, 0, 0
	if cap(b.buf) > 2*maxBatchBytes { // grown by a huge record
		b.buf = nil
	}
	l.mu.Lock()
	if len(l.free) < maxFreeBatches {
		l.free = append(l.free, b)
	}
	l.mu.Unlock()
}
