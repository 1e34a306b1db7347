package snapshot

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// writeBufferSize is the size of the chunks the sink hashes and writes.
const writeBufferSize = 1 << 20

// Create begins a snapshot covering the WAL up to and including lsn, taken
// at createdAt (the caller's clock; Create never reads one). It creates a
// temp file in the directory and writes the header; the caller then writes
// the body to the returned Sink and calls Close to publish it or Cancel to
// discard it.
//
// Publishing a second snapshot with the same lsn replaces the first.
func (s *Store) Create(lsn uint64, createdAt time.Time) (*Sink, error) {
	return s.create(header{lsn: lsn, kind: Full}, createdAt)
}

// CreateDelta begins a delta snapshot covering the WAL up to and including
// lsn, to be restored on top of parent: a complete full snapshot or delta
// (a Meta returned by Close or listed with its BodyCRC) with a lower LSN.
// The delta joins parent's chain: its base is parent if parent is full, and
// parent's base otherwise. The body is the caller's delta encoding; the
// store only frames it, with the links in a block after the header.
func (s *Store) CreateDelta(lsn uint64, createdAt time.Time, parent Meta) (*Sink, error) {
	if parent.LSN >= lsn {
		return nil, fmt.Errorf("snapshot: delta at LSN %d on a parent at LSN %d: the parent must be older", lsn, parent.LSN)
	}
	if parent.Kind == Delta && parent.Base == (Link{}) {
		return nil, fmt.Errorf("snapshot: delta parent %s has no base link (not a complete snapshot?)", parent.Path)
	}
	return s.create(header{lsn: lsn, kind: Delta, parent: parent.Link(), base: parent.BaseLink()}, createdAt)
}

func (s *Store) create(h header, createdAt time.Time) (*Sink, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	ns, err := encodeTime(createdAt)
	if err != nil {
		return nil, err
	}
	h.createdAt = ns
	lsn := h.lsn
	final := s.path(lsn, h.kind)
	tmp := fmt.Sprintf("%s.%d%s", final, s.seq.Add(1), tmpSuffix)
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("snapshot: create: %w", err)
	}
	hdr := encodeHeader(h)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		s.removeTemp(tmp)
		return nil, fmt.Errorf("snapshot: write header to %s: %w", tmp, err)
	}
	k := &Sink{
		s:         s,
		h:         h,
		lsn:       lsn,
		createdAt: decodeTime(ns),
		tmp:       tmp,
		final:     final,
		f:         f,
		body:      bodyWriter{f: f},
	}
	k.bw = bufio.NewWriterSize(&k.body, writeBufferSize)
	return k, nil
}

// Sink receives the body of a snapshot being created. Write the body, then
// call Close to publish the snapshot or Cancel to throw it away; a sink that
// is neither closed nor canceled leaves a temp file that the next Open
// removes. A Sink is not safe for concurrent use.
//
// The usual pattern is
//
//	k, err := store.Create(lsn, now)
//	...
//	defer k.Cancel() // no-op once Close has run
//	if err := encode(k); err != nil { return err }
//	meta, err := k.Close()
type Sink struct {
	s         *Store
	h         header
	lsn       uint64
	createdAt time.Time
	tmp       string
	final     string

	f    vfs.File // nil once closed
	bw   *bufio.Writer
	body bodyWriter
	err  error // first write error; Close returns it
	done bool  // Close or Cancel has run
}

// bodyWriter hashes and counts the body on its way to the file. It sits
// under the bufio.Writer, so it sees large chunks.
type bodyWriter struct {
	f        vfs.File
	crc      uint32
	n        uint64
	unsynced int
}

// syncEvery bounds the dirty data a snapshot leaves for the final fsync.
// One huge fsync at the end queues the WAL's small fdatasyncs behind
// hundreds of megabytes of writeback; syncing as it goes keeps the WAL's
// latency flat while a snapshot is written.
const syncEvery = 8 << 20

func (w *bodyWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	w.n += uint64(n)
	w.unsynced += n
	if err == nil && w.unsynced >= syncEvery {
		w.unsynced = 0
		err = w.f.Sync()
	}
	return n, err
}

// LSN is the LSN the snapshot covers.
func (k *Sink) LSN() uint64 { return k.lsn }

// Write appends p to the body. Writes are buffered (1 MiB); writes at least
// that large go straight to the file. After an error every later Write and
// Close returns it.
func (k *Sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, ErrClosed
	}
	if k.err != nil {
		return 0, k.err
	}
	n, err := k.bw.Write(p)
	if err != nil {
		k.err = fmt.Errorf("snapshot: write %s: %w", k.tmp, err)
		return n, k.err
	}
	return n, nil
}

// Close publishes the snapshot: it flushes the body, appends the trailer,
// fsyncs and closes the temp file, renames it to its final name and fsyncs
// the directory. Only then is the snapshot durable, and Close returns its
// Meta. Finally, for a full snapshot, it prunes the directory to
// Options.Keep complete chains (never deleting the one just published); a pruning failure is logged, not
// returned, because the snapshot is published: Store.Prune retries.
//
// If any step fails, or an earlier Write failed, Close returns the error and
// removes the temp file; no final file is left behind (if the directory
// fsync after the rename fails, the renamed file is removed again). Close
// never retries a failed fsync. A second Close returns ErrClosed.
func (k *Sink) Close() (Meta, error) {
	if k.done {
		return Meta{}, ErrClosed
	}
	k.done = true
	if k.err != nil {
		return Meta{}, k.abort(k.err)
	}
	if err := k.bw.Flush(); err != nil {
		return Meta{}, k.abort(fmt.Errorf("write %s: %w", k.tmp, err))
	}
	tr := encodeTrailer(trailer{bodyLen: k.body.n, bodyCRC: k.body.crc})
	if _, err := k.f.Write(tr[:]); err != nil {
		return Meta{}, k.abort(fmt.Errorf("write trailer to %s: %w", k.tmp, err))
	}
	if err := k.f.Sync(); err != nil {
		return Meta{}, k.abort(fmt.Errorf("sync %s: %w", k.tmp, err))
	}
	err := k.f.Close()
	k.f = nil
	if err != nil {
		return Meta{}, k.abort(fmt.Errorf("close %s: %w", k.tmp, err))
	}

	s := k.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fs.Rename(k.tmp, k.final); err != nil {
		return Meta{}, k.abort(err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		// The rename may or may not survive a crash. Report failure and
		// take the file back, so what the caller believes (not published,
		// WAL not to be truncated) matches what it sees. Should the rename
		// resurface after a crash, the file is complete and valid.
		if rerr := s.fs.Remove(k.final); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Error("snapshot: remove unpublished snapshot", "file", k.final, "err", rerr)
		}
		return Meta{}, fmt.Errorf("snapshot: publish %s: sync directory: %w", k.final, err)
	}
	m := Meta{
		LSN:       k.lsn,
		Kind:      k.h.kind,
		Path:      k.final,
		Size:      k.h.bodyStart() + trailerSize + int64(k.body.n),
		CreatedAt: k.createdAt,
		BodyCRC:   k.body.crc,
		Parent:    k.h.parent,
		Base:      k.h.base,
	}
	// A delta extends its own chain and makes no other file prunable,
	// except leftovers that continue no chain, which the next full
	// snapshot's pruning (or Prune) deletes: skip the directory scan.
	if k.h.kind == Full {
		if err := s.prune(k.final); err != nil {
			s.log.Error("snapshot: prune after publishing", "file", k.final, "err", err)
		}
	}
	return m, nil
}

// abort closes and removes the temp file after a failure in Close and
// returns err, annotated.
func (k *Sink) abort(err error) error {
	if k.f != nil {
		k.f.Close()
		k.f = nil
	}
	k.s.removeTemp(k.tmp)
	return fmt.Errorf("snapshot: publish %s: %w", k.final, err)
}

// Cancel discards the snapshot: it closes and removes the temp file. It is a
// no-op returning nil once Close or Cancel has run, so it can be deferred.
func (k *Sink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.f.Close() // the content is being thrown away; only the removal matters
	k.f = nil
	if err := k.s.fs.Remove(k.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot: cancel: %w", err)
	}
	return nil
}

// removeTemp deletes a temp file after a failure, logging (not returning) a
// failure to do so: the next Open removes it anyway.
func (s *Store) removeTemp(tmp string) {
	if err := s.fs.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("snapshot: remove temp file", "file", tmp, "err", err)
	}
}
