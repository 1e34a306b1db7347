package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// The disk-full state (see the package documentation). Every transition
// runs on the writer goroutine, or in Open before it starts, so the writer's
// view (l.w.diskFull) needs no lock; appenders see l.diskFullErr under l.mu.

// reserveName is the reserve file in the log directory.
const reserveName = "reserve"

func (l *Log) reservePath() string { return filepath.Join(l.dir, reserveName) }

// writeNoSpace handles a batch whose write failed with ENOSPC. Part of the
// batch may be in the file: that is our own unacknowledged write, which
// recovery would take for a torn tail, so it is cut off (ftruncate to the
// size before the batch, then fdatasync). The batch fails with ErrDiskFull
// and the log enters the disk-full state. If the cut fails, what the segment
// holds is unknown and the log fails as for any other I/O error.
func (l *Log) writeNoSpace(b *batch, cause error) {
	if err := l.cutBack(); err != nil {
		l.fail("cut back "+l.w.path+" after ENOSPC", err)
		l.failBatch(b, l.w.failed)
		return
	}
	err := l.enterDiskFull("write "+l.w.path, cause)
	l.failBatch(b, err)
}

// cutBack truncates the active segment to l.w.size, the end of the last
// batch written, moves the write offset there and fdatasyncs the file.
func (l *Log) cutBack() error {
	if err := l.w.f.Truncate(l.w.size); err != nil {
		return err
	}
	if _, err := l.w.f.Seek(l.w.size, io.SeekStart); err != nil {
		return err
	}
	return l.syncActive()
}

// enterDiskFull puts the log into the disk-full state (or keeps it there)
// because op failed with cause (ENOSPC), and returns the error of the appends
// it fails. Records queued and not yet written are renumbered from the
// writer's next LSN: a batch that failed gives its LSNs back, and queued
// ClassNormal records fail at once, so the log stays without gaps. Then the
// reserve file is deleted, making room for ClassReserve records.
func (l *Log) enterDiskFull(op string, cause error) error {
	err := &diskFullError{op: op, cause: cause}
	first := !l.w.diskFull
	l.w.diskFull = true
	if l.w.freeTick == nil {
		l.w.freeTick = time.NewTicker(l.opts.FreeSpaceInterval)
	}
	l.mu.Lock()
	l.diskFullErr = err
	dropped := l.renumberQueue(err)
	l.mu.Unlock()
	freed := l.removeReserve()
	if first {
		l.logger.Warn("wal: disk full: normal appends are refused until space is freed; reserve-class appends go on",
			"op", op, "err", cause, "reserve_freed", freed, "queued_refused", dropped,
			"resume_at_free_bytes", l.resumeFree())
	} else {
		l.logger.Debug("wal: disk full again", "op", op, "err", cause, "queued_refused", dropped)
	}
	return err
}

// renumberQueue fails the queued ClassNormal records with err and gives the
// others consecutive LSNs from l.w.next, the LSN the writer writes next. It
// returns the number of records failed. l.mu is held.
func (l *Log) renumberQueue(err error) int {
	next := l.w.next
	dropped := 0
	for _, b := range l.queue {
		r, w := 0, 0 // read and write offsets of frames in b.buf
		b.records = 0
		for i := range b.entries {
			e := &b.entries[i]
			if e.err != nil { // rejected before: no frame
				continue
			}
			size := recordSize(int(binary.LittleEndian.Uint32(b.buf[r:])))
			if e.class == ClassNormal {
				e.err, e.lsn = err, 0
				dropped++
			} else {
				copy(b.buf[w:], b.buf[r:r+size])
				binary.LittleEndian.PutUint64(b.buf[w+8:], next) // the CRC is filled in by the writer
				if b.records == 0 {
					b.first = next
				}
				e.lsn = next
				next++
				b.records++
				w += size
			}
			r += size
		}
		l.queued -= int64(r - w)
		b.buf = b.buf[:w]
	}
	l.nextLSN = next
	// A Sync waits for the records appended before it; failed ones will
	// never be written.
	for i := range l.syncReqs {
		l.syncReqs[i].upTo = min(l.syncReqs[i].upTo, next-1)
	}
	if l.spaceWaiters > 0 {
		l.space.Broadcast()
	}
	return dropped
}

// resumeFree is the free space at which a disk-full log leaves the state.
func (l *Log) resumeFree() uint64 {
	return uint64(2*l.opts.ReserveBytes + l.opts.SegmentSize)
}

// checkFreeSpace runs every Options.FreeSpaceInterval while the log is
// disk-full. Once the file system reports at least 2 × ReserveBytes +
// SegmentSize free, it re-creates the reserve file and leaves the state.
// Where free space cannot be read (no vfs.StatFS, or an error), creating the
// reserve file is the test; with no reserve configured either, the log
// leaves the state and a new ENOSPC brings it back.
func (l *Log) checkFreeSpace() {
	if !l.w.diskFull {
		return
	}
	if l.w.failed != nil { // ErrFailed wins; nothing to wait for
		l.stopFreeTicker()
		return
	}
	var free uint64
	known := false
	if sfs, ok := l.fs.(vfs.StatFS); ok {
		n, err := sfs.FreeSpace(l.dir)
		switch {
		case err == nil && n < l.resumeFree():
			return
		case err == nil:
			free, known = n, true
		case !errors.Is(err, errors.ErrUnsupported):
			l.logger.Debug("wal: cannot read free space; probing with the reserve file", "dir", l.dir, "err", err)
		}
	}
	if l.opts.ReserveBytes > 0 {
		if err := l.createReserve(); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				l.logger.Warn("wal: cannot re-create the reserve file; staying disk-full", "err", err)
			}
			return
		}
	}
	l.w.diskFull = false
	l.stopFreeTicker()
	l.mu.Lock()
	l.diskFullErr = nil
	l.mu.Unlock()
	attrs := []any{"dir", l.dir, "reserve", l.reserve.Load()}
	if known {
		attrs = append(attrs, "free_bytes", free)
	}
	l.logger.Info("wal: disk space available again; accepting all appends", attrs...)
}

func (l *Log) stopFreeTicker() {
	if l.w.freeTick != nil {
		l.w.freeTick.Stop()
		l.w.freeTick = nil
	}
}

// openReserve brings the reserve file in line with Options.ReserveBytes at
// Open: it keeps a file of the right size, (re)creates one otherwise, and
// deletes it when no reserve is configured. If the disk is too full to
// create it, the log starts in the disk-full state.
func (l *Log) openReserve() error {
	path := l.reservePath()
	want := l.opts.ReserveBytes
	fi, err := l.fs.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	if want == 0 {
		if fi != nil {
			if err := removeFile(l.fs, path); err != nil {
				return fmt.Errorf("wal: remove reserve %s: %w", path, err)
			}
			l.logger.Info("wal: removed the reserve file: no reserve is configured", "file", path, "bytes", fi.Size())
		}
		return nil
	}
	if fi != nil && fi.Mode().IsRegular() && fi.Size() == want {
		l.reserve.Store(want)
		return nil
	}
	err = l.createReserve()
	switch {
	case errors.Is(err, syscall.ENOSPC):
		l.enterDiskFull("create reserve "+path, err)
		return nil
	case err != nil:
		return err
	}
	l.logger.Info("wal: created the reserve file", "file", path, "bytes", want)
	return nil
}

// createReserve (re)creates the reserve file with Options.ReserveBytes
// allocated bytes, makes it durable, and records its size. On failure it
// removes what it made; if that fails too, the error is the removal's (so
// an ENOSPC is not mistaken for all that happened).
func (l *Log) createReserve() error {
	path := l.reservePath()
	size := l.opts.ReserveBytes
	f, err := l.fs.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fileMode)
	if err == nil {
		err = fillReserve(f, size)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		if rerr := discardFile(l.fs, path); rerr != nil {
			// Not an ENOSPC any more: the file system failed us.
			return fmt.Errorf("wal: create reserve %s: %v; then removing it: %w", path, err, rerr)
		}
		return fmt.Errorf("wal: create reserve %s: %w", path, err)
	}
	l.reserve.Store(size)
	return nil
}

// fillReserve allocates size bytes of f: with fallocate where the file
// system supports it, by writing zeros otherwise.
func fillReserve(f vfs.File, size int64) error {
	if a, ok := f.(vfs.Allocator); ok {
		if err := a.Allocate(size); !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	zeros := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; {
		n, err := f.Write(zeros[:min(int64(len(zeros)), size-off)])
		off += int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// removeReserve deletes the reserve file, if any, and makes the deletion
// durable. It returns the bytes it held. A failure is logged: the log is
// disk-full either way.
func (l *Log) removeReserve() int64 {
	n := l.reserve.Swap(0)
	if err := discardFile(l.fs, l.reservePath()); err != nil {
		l.logger.Warn("wal: cannot delete the reserve file", "file", l.reservePath(), "err", err)
	}
	return n
}

// discardFile removes path if it exists and then fsyncs its directory.
func discardFile(fsys vfs.FS, path string) error {
	err := fsys.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("wal: sync dir after removing %s: %w", path, err)
	}
	return nil
}
