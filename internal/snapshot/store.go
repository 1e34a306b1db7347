package snapshot

import (
	"cmp"
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

// KeepDefault is the number of complete snapshots a Store keeps when
// Options.Keep is 0.
const KeepDefault = 2

const (
	dirPerm  os.FileMode = 0o700
	filePerm os.FileMode = 0o600
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// FS is the filesystem; nil means vfs.OS.
	FS vfs.FS
	// Keep is how many complete snapshots to keep when pruning, at least 1;
	// 0 means KeepDefault. Negative values are an error.
	Keep int
	// Logger receives warnings (corrupt files skipped or pruned, failed
	// pruning); nil discards them.
	Logger *slog.Logger
}

// Meta describes one snapshot file.
type Meta struct {
	// LSN is the last WAL record the snapshot includes, taken from the file
	// name (OpenBody checks that the header agrees).
	LSN uint64
	// Path is the file's path.
	Path string
	// Size is the file size in bytes: header, body and trailer.
	Size int64
	// CreatedAt is the creation time recorded in the header, as passed to
	// Create; the zero Time if it was zero or if List could not read a
	// valid header.
	CreatedAt time.Time
}

// Store is a directory of snapshot files. Its methods are safe for
// concurrent use; publishing and pruning are serialised. A Store holds no
// open files and no goroutines, so it has no Close. Only one Store (one
// process) may use a directory at a time: the caller holds the data
// directory lock.
type Store struct {
	dir  string
	fs   vfs.FS
	keep int
	log  *slog.Logger

	mu  sync.Mutex // held while renaming a sink into place and pruning
	seq atomic.Uint64
}

// Open opens the snapshot directory dir, creating it (mode 0700) if needed,
// and removes temp files (snap-*.tmp) left by a crash in the middle of
// Create, syncing the directory afterwards. Other files are left alone.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Keep < 0 {
		return nil, fmt.Errorf("snapshot: Options.Keep is %d, want at least 1 (or 0 for the default %d)", opts.Keep, KeepDefault)
	}
	s := &Store{dir: dir, fs: opts.FS, keep: opts.Keep, log: opts.Logger}
	if s.fs == nil {
		s.fs = vfs.OS
	}
	if s.keep == 0 {
		s.keep = KeepDefault
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.fs.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("snapshot: create directory: %w", err)
	}
	// Make the directory's own name durable (it may just have been
	// created): the WAL is truncated behind the snapshots it will hold.
	if err := s.fs.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("snapshot: sync parent of %s: %w", dir, err)
	}
	names, err := s.fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot: list %s: %w", dir, err)
	}
	removed := 0
	for _, name := range names {
		if !isTempName(name) {
			continue
		}
		p := filepath.Join(dir, name)
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshot: remove leftover temp file: %w", err)
		}
		s.log.Info("snapshot: removed leftover temp file", "file", p)
		removed++
	}
	if removed > 0 {
		if err := s.fs.SyncDir(dir); err != nil {
			return nil, fmt.Errorf("snapshot: sync directory %s: %w", dir, err)
		}
	}
	return s, nil
}

// Dir is the directory the store manages.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(lsn uint64) string { return filepath.Join(s.dir, fileName(lsn)) }

// List returns every file in the directory named like a snapshot
// (snap-<20-digit LSN>.snap), newest (highest LSN) first.
//
// It lists damaged files too: a file whose header does not parse is listed
// with a zero CreatedAt, and the damage is reported when the file is opened
// with OpenBody or checked with Verify. Hiding it here would let a restorer
// that finds "no snapshot" start from an empty state while the WAL before
// the damaged snapshot has already been truncated: silent data loss. Temp
// files and foreign files are not listed.
func (s *Store) List() ([]Meta, error) {
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot: list %s: %w", s.dir, err)
	}
	var metas []Meta
	for _, name := range names {
		lsn, ok := parseFileName(name)
		if !ok {
			continue
		}
		m := Meta{LSN: lsn, Path: filepath.Join(s.dir, name)}
		st, err := s.fs.Stat(m.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: stat: %w", err)
		}
		m.Size = st.Size()
		m.CreatedAt = s.readCreatedAt(m.Path, m.Size)
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b Meta) int { return cmp.Compare(b.LSN, a.LSN) })
	return metas, nil
}

// readCreatedAt reads the header's creation time, or returns the zero Time
// if the header cannot be read or does not check out.
func (s *Store) readCreatedAt(path string, size int64) time.Time {
	if size < headerSize {
		return time.Time{}
	}
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	var hb [headerSize]byte
	if err := readFullAt(path, f, hb[:], 0); err != nil {
		return time.Time{}
	}
	h, err := decodeHeader(path, hb[:])
	if err != nil {
		return time.Time{}
	}
	return decodeTime(h.createdAt)
}

// OpenBody opens the snapshot m (m.Path, or the file for m.LSN when Path is
// empty) for reading its body. It checks the header (magic, checksum,
// version, and that its LSN matches the file name) and the trailer (magic,
// checksum, and that the body length matches the file size) before
// returning, so a truncated or half-written file fails here, with an error
// wrapping ErrCorrupt.
//
// The returned reader hashes the body as it streams. The Read that delivers
// the last body byte, and every Read after it, returns io.EOF if the body
// checksum matches the trailer, or a *CorruptionError (wrapping ErrCorrupt)
// if not. A caller that stops reading at its own end marker has not seen
// that verdict: it must read on until a Read returns an error (for example
// io.Copy(io.Discard, r)), as RestoreNewest does. The reader is not safe for
// concurrent use; Close it when done.
//
// A missing file is reported with an error wrapping both ErrNoSnapshot and
// fs.ErrNotExist.
func (s *Store) OpenBody(m Meta) (io.ReadCloser, error) {
	path := m.Path
	if path == "" {
		path = s.path(m.LSN)
	}
	f, t, err := s.openChecked(path)
	if err != nil {
		return nil, err
	}
	return newBodyReader(path, f, f, t), nil
}

// Verify reads the whole snapshot m and checks header, trailer, length and
// body checksum. It returns nil, an error wrapping ErrCorrupt, or an I/O
// error.
func (s *Store) Verify(m Meta) error {
	rc, err := s.OpenBody(m)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// RestoreNewest feeds the newest usable snapshot to restore and returns its
// Meta. It tries the snapshots newest first; when one turns out corrupt (its
// header or trailer when opened, its body checksum after restore has read
// it, or restore itself returns an error wrapping ErrCorrupt) it logs a
// warning and tries the next older one. restore must therefore replace the
// whole state each time it is called, like raft.FSM.Restore, so a failed
// attempt leaves nothing behind. After restore returns nil, RestoreNewest
// reads the body to its end, so the trailer checksum is always checked.
//
// It returns an error wrapping ErrNoSnapshot if the directory holds no
// snapshot at all (start from an empty state), an error wrapping ErrCorrupt
// if there were snapshots but every one is corrupt (refuse to start: the WAL
// no longer holds what they covered), and any other error (I/O, or from
// restore) as it is, without trying older snapshots.
func (s *Store) RestoreNewest(restore func(m Meta, body io.Reader) error) (Meta, error) {
	metas, err := s.List()
	if err != nil {
		return Meta{}, err
	}
	if len(metas) == 0 {
		return Meta{}, fmt.Errorf("%w in %s", ErrNoSnapshot, s.dir)
	}
	var corrupt []error
	for _, m := range metas {
		err := s.restoreOne(m, restore)
		if err == nil {
			if len(corrupt) > 0 {
				s.log.Warn("snapshot: restored from an older snapshot", "file", m.Path, "lsn", m.LSN, "skipped", len(corrupt))
			}
			return m, nil
		}
		if !errors.Is(err, ErrCorrupt) {
			return Meta{}, err
		}
		s.log.Error("snapshot: corrupt snapshot, falling back to an older one", "file", m.Path, "lsn", m.LSN, "err", err)
		corrupt = append(corrupt, err)
	}
	return Meta{}, fmt.Errorf("snapshot: all %d snapshots in %s are corrupt: %w", len(metas), s.dir, errors.Join(corrupt...))
}

func (s *Store) restoreOne(m Meta, restore func(Meta, io.Reader) error) error {
	rc, err := s.OpenBody(m)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := restore(m, rc); err != nil {
		return err
	}
	// Drain what restore left, to reach the checksum verdict.
	_, err = io.Copy(io.Discard, rc)
	return err
}

// Prune deletes complete snapshots beyond the newest Keep, and damaged
// snapshot files superseded by a newer complete one. Sink.Close prunes after
// publishing; call Prune to retry after a pruning failure or a change of
// Keep.
func (s *Store) Prune() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune("")
}

// prune implements Prune; s.mu is held. The file protect (the snapshot just
// published) is never deleted.
//
// A file is complete if its header and trailer check out and agree with its
// size (inspect); the body checksum is not read, which would cost a full
// read of every snapshot at every publish. Going newest first, the first
// Keep complete files are kept, plus protect; the other complete files are
// deleted. A damaged file is deleted if a kept complete file has a higher
// LSN (it can never be the restore candidate again) and kept otherwise, so
// the restorer meets it, reports it and falls back.
func (s *Store) prune(protect string) error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	kept := 0 // complete files kept so far, all newer than the current one
	type victim struct {
		m      Meta
		reason error // nil for a complete file beyond Keep
	}
	var victims []victim
	// Complete/damaged verdicts in LSN-descending order.
	for _, m := range metas {
		f, _, err := s.openChecked(m.Path)
		if err == nil {
			f.Close()
		}
		if errors.Is(err, ErrNoSnapshot) {
			continue // deleted since List
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return err
		}
		switch {
		case m.Path == protect || (err == nil && kept < s.keep):
			if err == nil {
				kept++
			}
		case err == nil:
			victims = append(victims, victim{m: m})
		case kept > 0:
			victims = append(victims, victim{m: m, reason: err})
		default:
			s.log.Warn("snapshot: keeping damaged snapshot newer than every complete one", "file", m.Path, "err", err)
		}
	}
	if len(victims) == 0 {
		return nil
	}
	var errs []error
	for _, v := range victims {
		if v.reason != nil {
			s.log.Warn("snapshot: deleting damaged snapshot superseded by a newer complete one", "file", v.m.Path, "err", v.reason)
		}
		if err := s.fs.Remove(v.m.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("snapshot: prune: %w", err))
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("snapshot: sync directory %s after pruning: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// openChecked opens the snapshot file at path and checks its header and
// trailer (inspect) and that the header's LSN matches the file name. On
// success the caller owns the returned file.
func (s *Store) openChecked(path string) (vfs.File, trailer, error) {
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, trailer{}, fmt.Errorf("%w: %w", ErrNoSnapshot, err)
		}
		return nil, trailer{}, fmt.Errorf("snapshot: open: %w", err)
	}
	t, err := checkOpened(path, f)
	if err != nil {
		f.Close()
		return nil, trailer{}, err
	}
	return f, t, nil
}

func checkOpened(path string, f vfs.File) (trailer, error) {
	size, err := f.Size()
	if err != nil {
		return trailer{}, fmt.Errorf("snapshot: size of %s: %w", path, err)
	}
	h, t, err := inspect(path, f, size)
	if err != nil {
		return trailer{}, err
	}
	if lsn, ok := parseFileName(filepath.Base(path)); ok && lsn != h.lsn {
		return trailer{}, corruptf(path, hOffLSN, "header LSN %d does not match the file name (LSN %d)", h.lsn, lsn)
	}
	return t, nil
}
