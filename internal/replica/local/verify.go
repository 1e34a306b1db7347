package local

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/snapshot"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

// VerifyReport is what Verify found in a data directory.
type VerifyReport struct {
	// WAL is the WAL's check (wal.Verify); WALErr is non-nil when the WAL
	// is damaged beyond a torn tail (Open would refuse).
	WAL    wal.Report
	WALErr error
	// Files lists every snapshot file with its verdict: chain by chain
	// (newest chain first, base first), then the files in no chain.
	Files []FileCheck
	// Chains is the number of complete chains (header, links and trailer
	// check out; the bodies may still be damaged, see Files).
	Chains int
	// Restore lists the snapshot files Open would restore, base first
	// (empty: it would start from an empty state and replay the WAL from
	// LSN 1), and RestoreLSN the LSN they reach.
	Restore    []snapshot.Meta
	RestoreLSN uint64
	// Skipped are the snapshot files at or after the restore point that
	// Open would skip (damaged, or after a damaged file in their chain).
	Skipped []string
	// Refusal is why Open would refuse to start (nil: it would open). Open
	// refuses only when an acknowledged record would be missing.
	Refusal error
}

// FileCheck is the verdict on one snapshot file.
type FileCheck struct {
	Meta snapshot.Meta
	// Role: "base of chain N", "delta K of chain N" (chains counted from
	// the newest, from 1), or "in no chain".
	Role string
	// Err is nil for a file whose framing, body and state machine encoding
	// check out and (for a delta) that applies onto the file before it.
	Err error
}

// Opens reports whether Open would open the directory.
func (v VerifyReport) Opens() bool { return v.Refusal == nil }

// Damaged reports whether anything in the directory is damaged: the WAL
// (beyond a torn tail) or any snapshot file.
func (v VerifyReport) Damaged() bool {
	if v.WALErr != nil {
		return true
	}
	for _, f := range v.Files {
		if f.Err != nil {
			return true
		}
	}
	return false
}

// Verify checks the data directory dir of a stopped server without changing
// anything: the WAL as Open does, and every snapshot file in full (framing,
// body checksum, the state machine's decoding, and that each delta applies
// onto the file before it in its chain). It then works out what Open would
// do: which chain it would restore, what it would skip, and whether it would
// refuse. The error is for failures to read (I/O), not for damage, which is
// in the report. fsys nil means vfs.OS.
func Verify(dir string, fsys vfs.FS) (VerifyReport, error) {
	if fsys == nil {
		fsys = vfs.OS
	}
	var rep VerifyReport
	if isClusterDir(dir) {
		return rep, fmt.Errorf("%s holds a cluster node's state (raft/): verify checks single-node data directories", dir)
	}
	store, err := snapshot.Open(filepath.Join(dir, "snapshots"), snapshot.Options{FS: fsys, ReadOnly: true})
	if err != nil {
		return rep, err
	}
	cat, err := store.Catalog()
	if err != nil {
		return rep, err
	}
	rep.Chains = len(cat.Chains)
	r := &Replica{snaps: store, m: fsm.New()}

	// Every chain, as far as it restores: every file is checked.
	for ci, c := range cat.Chains {
		err := r.restoreFile(c.Base)
		if err != nil && !errors.Is(err, snapshot.ErrCorrupt) {
			return rep, err
		}
		rep.Files = append(rep.Files, FileCheck{Meta: c.Base, Role: fmt.Sprintf("base of chain %d", ci+1), Err: err})
		broken, brokenPath := err, c.Base.Path
		for di, d := range c.Deltas {
			fc := FileCheck{Meta: d, Role: fmt.Sprintf("delta %d of chain %d", di+1, ci+1)}
			if broken != nil {
				// the state it applies onto is unknown: check the file alone
				fc.Err = checkDeltaAlone(store, d)
				if fc.Err == nil {
					fc.Err = fmt.Errorf("%w: follows the damaged %s", snapshot.ErrUnlinked, brokenPath)
				}
			} else if fc.Err = r.restoreFile(d); fc.Err != nil {
				if !errors.Is(fc.Err, snapshot.ErrCorrupt) {
					return rep, fc.Err
				}
				broken, brokenPath = fc.Err, d.Path
			}
			rep.Files = append(rep.Files, fc)
		}
	}
	for _, u := range cat.Unusable {
		rep.Files = append(rep.Files, FileCheck{Meta: u.Meta, Role: "in no chain", Err: u.Err})
	}

	// What Open would restore.
	r.m = fsm.New()
	used, skipped, err := r.restoreChains(cat)
	if err != nil {
		return rep, err
	}
	rep.Restore = used
	if len(used) > 0 {
		rep.RestoreLSN = used[len(used)-1].LSN
	}
	for _, s := range skipped {
		rep.Skipped = append(rep.Skipped, s.m.Path)
	}

	rep.WAL, rep.WALErr = wal.Verify(filepath.Join(dir, "wal"), fsys)
	var ce *wal.CorruptionError
	if rep.WALErr != nil && !errors.As(rep.WALErr, &ce) {
		return rep, rep.WALErr
	}
	switch {
	case rep.WALErr != nil:
		rep.Refusal = rep.WALErr
	case len(rep.WAL.Segments) == 0:
		// Open would start a new WAL after the restore point.
		rep.Refusal = coverage(rep.RestoreLSN, 0, rep.RestoreLSN, skipped)
	default:
		rep.Refusal = coverage(rep.RestoreLSN, rep.WAL.FirstLSN, rep.WAL.LastLSN, skipped)
	}
	return rep, nil
}

// checkDeltaAlone checks a delta's framing and encoding without a parent
// state to apply it onto.
func checkDeltaAlone(store *snapshot.Store, m snapshot.Meta) error {
	r := &Replica{snaps: store, m: fsm.New()}
	body, err := store.OpenBody(m)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err = r.m.ReadDelta(body); err == nil {
		_, err = io.Copy(io.Discard, body)
	}
	if errors.Is(err, fsm.ErrCorrupt) && !errors.Is(err, snapshot.ErrCorrupt) {
		err = fmt.Errorf("%w: %s: %w", snapshot.ErrCorrupt, m.Path, err)
	}
	return err
}
