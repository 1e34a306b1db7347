package local

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/snapshot"
)

// Snapshots are chains: a full base, then deltas holding only the pages of
// jobs changed since the previous file. Each snapshot the loop takes is a
// delta on the current chain's tip (cheap: a few pages while the state is
// large), unless there is no chain yet. Once the chain's deltas add up to
// more than Options.SnapshotDeltaRatio of the base, the same capture is
// also written as a new full base, throttled to Options.SnapshotBaseRate
// bytes/s so that it does not flood the disk the WAL fsyncs to; pruning
// then drops the chain before the previous one. A new base is also written
// once the WAL kept since the current base outgrows the base (or 64 MiB),
// so that the WAL stays bounded however few pages the traffic touches, and
// after maxChainDeltas deltas. The WAL truncation point moves only when a
// base is published, so a delta does not read the directory again.
//
// The WAL is truncated up to the newest chain's base or the oldest kept
// chain's tip, whichever is older: a damaged delta falls back to the file
// before it, a damaged base to the older chain's tip, and either finds
// every record it needs in the WAL.

// Defaults of the chain options.
const (
	DefaultSnapshotDeltaRatio = 0.5
	DefaultSnapshotBaseRate   = 64 << 20 // bytes/s
)

// chainState is the current chain as the replica wrote or restored it;
// guarded by snapMu.
type chainState struct {
	ok         bool          // tip and mark name a chain on disk
	base       snapshot.Meta // its full base
	tip        snapshot.Meta // its newest file
	mark       fsm.Mark      // the state at tip
	deltaBytes int64         // the size of its deltas
	deltas     int           // and their number
	// truncated: the WAL was truncated up to what the chains on disk need
	// (see truncateWAL) since the last full snapshot was published; a
	// delta does not change that point, so the directory is not read again.
	truncated bool
}

// maxChainDeltas bounds a chain's length (files to open at recovery) when
// deltas are too small to reach the ratio: the next snapshot after it
// writes a new base.
const maxChainDeltas = 256

// Snapshot takes a snapshot now (it waits for one already running).
func (r *Replica) Snapshot() error {
	if r.closed.Load() {
		return replica.ErrClosed
	}
	return r.takeSnapshot(true)
}

func (r *Replica) snapshotLoop() {
	defer r.bg.Done()
	t := time.NewTicker(r.opts.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.snapTrigger:
		case <-t.C:
			if recs, _ := r.h.Since(); recs == 0 {
				continue
			}
		}
		if err := r.takeSnapshot(true); err != nil {
			r.log.Error("snapshot failed", "err", err)
		}
	}
}

// takeSnapshot writes a delta on the current chain (or a full snapshot when
// there is none), then, if compact and the chain has grown past its ratio,
// a new full base from the same capture.
func (r *Replica) takeSnapshot(compact bool) error {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	start := time.Now()
	if lsn := r.h.Applied(); lsn == r.snapStat.LastLSN || lsn == 0 || (r.chain.ok && lsn == r.chain.tip.LSN) {
		return nil
	}
	snap, lsn := r.h.Capture()

	// In relaxed sync modes the records the snapshot covers may not be on
	// disk yet; the WAL must never end before a snapshot it continues.
	err := r.wal.Sync()
	if err != nil {
		err = fmt.Errorf("sync WAL before snapshot: %w", err)
	}
	var meta snapshot.Meta
	delta := r.chain.ok && r.opts.SnapshotDeltaRatio >= 0
	if err == nil && delta {
		dirty, pages := snap.DirtyPages(r.chain.mark)
		r.log.Debug("writing delta snapshot", "lsn", lsn, "jobs", snap.Jobs(), "dirty_pages", dirty, "pages", pages, "parent", r.chain.tip.Path)
		meta, err = r.writeDelta(snap, lsn)
	} else if err == nil {
		r.log.Debug("writing snapshot", "lsn", lsn, "jobs", snap.Jobs())
		meta, err = r.writeFull(snap, lsn, false)
	}
	d := time.Since(start)
	if r.opts.OnSnapshot != nil {
		r.opts.OnSnapshot(d, meta.Size, err)
	}
	if err != nil {
		r.snapStat.Failures++
		r.snapStat.LastError = err.Error()
		return err
	}
	if delta {
		r.chain.deltaBytes += meta.Size
		r.chain.deltas++
		r.chain.tip = meta
	} else {
		r.chain = chainState{ok: true, base: meta, tip: meta}
	}
	r.chain.mark = snap.Mark()
	r.noteSnapshot(lsn, meta.Size, d)
	r.log.Info("snapshot taken", "kind", meta.Kind, "lsn", lsn, "jobs", snap.Jobs(), "bytes", meta.Size, "duration", d)

	walBytes := r.wal.Stats().Bytes
	if compact && delta && (float64(r.chain.deltaBytes) > r.opts.SnapshotDeltaRatio*float64(r.chain.base.Size) ||
		walBytes > max(r.chain.base.Size, DefaultSnapshotBytes) || r.chain.deltas >= maxChainDeltas) {
		cstart := time.Now()
		r.log.Debug("writing new base snapshot", "lsn", lsn, "chain_delta_bytes", r.chain.deltaBytes, "base_bytes", r.chain.base.Size, "wal_bytes", walBytes)
		base, err := r.writeFull(snap, lsn, true)
		cd := time.Since(cstart)
		if r.opts.OnSnapshot != nil {
			r.opts.OnSnapshot(cd, base.Size, err)
		}
		if err != nil {
			// The delta is published: the chain stays as it is and the
			// next snapshot tries again.
			r.snapStat.Failures++
			r.snapStat.LastError = err.Error()
			r.log.Error("new base snapshot failed", "lsn", lsn, "err", err)
		} else {
			r.chain = chainState{ok: true, base: base, tip: base, mark: r.chain.mark}
			r.noteSnapshot(lsn, base.Size, cd)
			r.log.Info("new base snapshot taken", "lsn", lsn, "jobs", snap.Jobs(), "bytes", base.Size, "duration", cd)
		}
	}
	if r.chain.truncated {
		return nil
	}
	if err := r.truncateWAL(); err != nil {
		return err
	}
	r.chain.truncated = true
	return nil
}

// noteSnapshot records a published snapshot in the status; snapMu is held.
func (r *Replica) noteSnapshot(lsn uint64, size int64, d time.Duration) {
	r.snapStat.Taken++
	r.snapStat.LastLSN, r.snapStat.LastSize, r.snapStat.LastDuration = lsn, size, d
	r.snapStat.LastTime = r.opts.Clock()
	r.snapStat.LastError = ""
}

// writeFull writes snap as a full snapshot (a new chain's base), throttled
// to Options.SnapshotBaseRate when throttle is set.
func (r *Replica) writeFull(snap *fsm.Snapshot, lsn uint64, throttle bool) (snapshot.Meta, error) {
	sink, err := r.snaps.Create(lsn, r.opts.Clock())
	if err != nil {
		return snapshot.Meta{}, err
	}
	var w io.Writer = sink
	if throttle && r.opts.SnapshotBaseRate > 0 {
		w = newRateWriter(sink, r.opts.SnapshotBaseRate, r.stop)
	}
	if _, err := snap.WriteTo(w); err != nil {
		sink.Cancel()
		return snapshot.Meta{}, err
	}
	return sink.Close()
}

// writeDelta writes the pages of snap changed since the chain's tip as a
// delta on it.
func (r *Replica) writeDelta(snap *fsm.Snapshot, lsn uint64) (snapshot.Meta, error) {
	sink, err := r.snaps.CreateDelta(lsn, r.opts.Clock(), r.chain.tip)
	if err != nil {
		return snapshot.Meta{}, err
	}
	if _, err := snap.WriteDeltaTo(sink, r.chain.mark); err != nil {
		sink.Cancel()
		return snapshot.Meta{}, err
	}
	return sink.Close()
}

// truncateWAL deletes the segments before the newest chain's base and
// before every kept chain's tip, so that falling back to any prefix of the
// newest chain, or to the tip of an older one, still finds its WAL.
func (r *Replica) truncateWAL() error {
	cat, err := r.snaps.Catalog()
	if err != nil || len(cat.Chains) == 0 {
		return err
	}
	oldest := cat.Chains[0].Base.LSN
	for _, c := range cat.Chains {
		oldest = min(oldest, c.Tip().LSN)
	}
	if err := r.wal.TruncateBefore(oldest + 1); err != nil {
		return fmt.Errorf("truncate WAL before %d: %w", oldest+1, err)
	}
	return nil
}

// errSnapshotStopped: a throttled base write was abandoned because the
// replica is closing.
var errSnapshotStopped = errors.New("local replica: closing: base snapshot abandoned")

// rateWriter passes writes on at no more than rate bytes per second on
// average (a token bucket of one second's worth), in chunks of at most
// 256 KiB; it gives up when stop is closed.
type rateWriter struct {
	w      io.Writer
	rate   float64
	tokens float64
	last   time.Time
	stop   <-chan struct{}
}

func newRateWriter(w io.Writer, rate int64, stop <-chan struct{}) *rateWriter {
	return &rateWriter{w: w, rate: float64(rate), last: time.Now(), stop: stop}
}

const rateChunk = 256 << 10

func (w *rateWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := min(len(p), rateChunk)
		now := time.Now()
		w.tokens = min(w.tokens+now.Sub(w.last).Seconds()*w.rate, max(w.rate, rateChunk))
		w.last = now
		if need := float64(chunk) - w.tokens; need > 0 {
			t := time.NewTimer(time.Duration(need / w.rate * float64(time.Second)))
			select {
			case <-w.stop:
				t.Stop()
				return n, errSnapshotStopped
			case <-t.C:
			}
			continue
		}
		k, err := w.w.Write(p[:chunk])
		n += k
		w.tokens -= float64(k)
		if err != nil {
			return n, err
		}
		p = p[chunk:]
	}
	return n, nil
}

// restoreChains restores the newest chain that restores, as far as it
// restores: a base that does not check out falls back to the next older
// chain, a delta that does not check out ends its chain there (the state
// of the previous file). It returns the files used and the snapshot files
// newer than the restore point that had to be skipped, with their errors;
// with no usable chain the machine is left empty (used is empty). Errors
// other than damage are returned as they are.
func (r *Replica) restoreChains(cat snapshot.Catalog) (used []snapshot.Meta, skipped []skippedFile, err error) {
	for _, u := range cat.Unusable {
		skipped = append(skipped, skippedFile{u.Meta, u.Err})
	}
	for _, c := range cat.Chains {
		err := r.restoreFile(c.Base)
		if errors.Is(err, snapshot.ErrCorrupt) {
			skipped = append(skipped, skippedFile{c.Base, err})
			for _, d := range c.Deltas {
				skipped = append(skipped, skippedFile{d, fmt.Errorf("%w: follows the damaged base %s", snapshot.ErrUnlinked, c.Base.Path)})
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		used = []snapshot.Meta{c.Base}
		for i, d := range c.Deltas {
			err := r.restoreFile(d)
			if errors.Is(err, snapshot.ErrCorrupt) {
				skipped = append(skipped, skippedFile{d, err})
				for _, later := range c.Deltas[i+1:] {
					skipped = append(skipped, skippedFile{later, fmt.Errorf("%w: follows the damaged delta %s", snapshot.ErrUnlinked, d.Path)})
				}
				break
			}
			if err != nil {
				return nil, nil, err
			}
			used = append(used, d)
		}
		break
	}
	if len(used) == 0 {
		r.m = fsm.New()
	}
	// Only files at or after the restore point were skipped (a damaged new
	// base at the LSN of the older chain's tip, say); older ones are
	// leftovers that pruning deletes.
	var point uint64
	if len(used) > 0 {
		point = used[len(used)-1].LSN
	}
	var newer []skippedFile
	for _, s := range skipped {
		if s.m.LSN >= point && !slices.ContainsFunc(used, func(u snapshot.Meta) bool { return u.Path == s.m.Path }) {
			newer = append(newer, s)
		}
	}
	return used, newer, nil
}

type skippedFile struct {
	m   snapshot.Meta
	err error
}

// restoreFile restores a full snapshot into r.m, or applies a delta onto
// it. A delta that does not check out (body, framing, or not following
// the state) leaves r.m as it was. Damage is reported wrapping
// snapshot.ErrCorrupt, naming the file.
func (r *Replica) restoreFile(m snapshot.Meta) error {
	body, err := r.snaps.OpenBody(m)
	if err != nil {
		return err
	}
	defer body.Close()
	var d *fsm.Delta
	if m.Kind == snapshot.Full {
		err = r.m.Restore(body)
	} else {
		d, err = r.m.ReadDelta(body)
	}
	if err == nil {
		// the framing's verdict on the body checksum
		_, err = io.Copy(io.Discard, body)
	}
	if err == nil && d != nil {
		err = r.m.ApplyDelta(d)
	}
	if errors.Is(err, fsm.ErrCorrupt) && !errors.Is(err, snapshot.ErrCorrupt) {
		err = fmt.Errorf("%w: %s: %w", snapshot.ErrCorrupt, m.Path, err)
	}
	return err
}
