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
	// ReadOnly opens the directory for inspection (List, Catalog, OpenBody,
	// Verify) without changing anything: Open neither creates the directory
	// nor removes temp files, and Create, CreateDelta and Prune fail. For
	// offline checks of a stopped server's directory.
	ReadOnly bool
}

// ErrReadOnly is returned by the writing methods of a read-only Store.
var ErrReadOnly = errors.New("snapshot: store opened read-only")

// Meta describes one snapshot file.
type Meta struct {
	// LSN is the last WAL record the snapshot includes, taken from the file
	// name (OpenBody checks that the header agrees).
	LSN uint64
	// Kind is Full or Delta, taken from the file name (snap-<LSN>.snap or
	// snap-<LSN>.delta; OpenBody checks that the header agrees).
	Kind Kind
	// Path is the file's path.
	Path string
	// Size is the file size in bytes: header, body and trailer.
	Size int64
	// CreatedAt is the creation time recorded in the header, as passed to
	// Create; the zero Time if it was zero or if List could not read a
	// valid header.
	CreatedAt time.Time
	// BodyCRC is the body checksum from the trailer: with LSN, what a
	// delta's link names. Zero when List found the file incomplete.
	BodyCRC uint32
	// Parent and Base are, for a delta, the snapshots it follows and its
	// chain's full base; zero for a full snapshot or an incomplete file.
	Parent, Base Link
}

// Link is the name a delta child uses for m.
func (m Meta) Link() Link { return Link{LSN: m.LSN, BodyCRC: m.BodyCRC} }

// BaseLink is the base of the chain m belongs to: m itself for a full
// snapshot, m.Base for a delta.
func (m Meta) BaseLink() Link {
	if m.Kind == Full {
		return m.Link()
	}
	return m.Base
}

// Store is a directory of snapshot files. Its methods are safe for
// concurrent use; publishing and pruning are serialised. A Store holds no
// open files and no goroutines, so it has no Close. Only one Store (one
// process) may use a directory at a time: the caller holds the data
// directory lock.
type Store struct {
	dir      string
	fs       vfs.FS
	keep     int
	log      *slog.Logger
	readOnly bool

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
	s := &Store{dir: dir, fs: opts.FS, keep: opts.Keep, log: opts.Logger, readOnly: opts.ReadOnly}
	if s.fs == nil {
		s.fs = vfs.OS
	}
	if s.keep == 0 {
		s.keep = KeepDefault
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.readOnly {
		return s, nil
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

func (s *Store) path(lsn uint64, kind Kind) string {
	return filepath.Join(s.dir, fileName(lsn, kind))
}

// List returns every file in the directory named like a snapshot
// (snap-<20-digit LSN>.snap, or .delta for a delta), newest (highest LSN)
// first; at equal LSNs a full snapshot comes before a delta (it starts the
// newer chain).
//
// It lists damaged files too: a file whose header or trailer does not check
// out is listed with a zero CreatedAt, BodyCRC and links, and the damage is
// reported when the file is opened with OpenBody or checked with Verify or
// Catalog. Hiding it here would let a restorer that finds "no snapshot"
// start from an empty state while the WAL before the damaged snapshot has
// already been truncated: silent data loss. Temp files and foreign files
// are not listed.
func (s *Store) List() ([]Meta, error) {
	names, err := s.fs.ReadDir(s.dir)
	if s.readOnly && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: list %s: %w", s.dir, err)
	}
	var metas []Meta
	for _, name := range names {
		lsn, kind, ok := parseFileName(name)
		if !ok {
			continue
		}
		m := Meta{LSN: lsn, Kind: kind, Path: filepath.Join(s.dir, name)}
		st, err := s.fs.Stat(m.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: stat: %w", err)
		}
		m.Size = st.Size()
		s.readInfo(&m)
		metas = append(metas, m)
	}
	sortMetas(metas)
	return metas, nil
}

func sortMetas(metas []Meta) {
	slices.SortFunc(metas, func(a, b Meta) int {
		if c := cmp.Compare(b.LSN, a.LSN); c != 0 {
			return c
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
}

// readInfo fills in m's creation time from the header (if it checks out)
// and its body CRC and links (if header and trailer check out).
func (s *Store) readInfo(m *Meta) {
	if m.Size < headerSize {
		return
	}
	f, err := s.fs.OpenFile(m.Path, os.O_RDONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	var hb [headerSize]byte
	if err := readFullAt(m.Path, f, hb[:], 0); err != nil {
		return
	}
	h, err := decodeHeader(m.Path, hb[:])
	if err != nil {
		return
	}
	m.CreatedAt = decodeTime(h.createdAt)
	h, t, err := inspect(m.Path, f, m.Size)
	if err != nil || h.kind != m.Kind || h.lsn != m.LSN {
		return
	}
	m.BodyCRC, m.Parent, m.Base = t.bodyCRC, h.parent, h.base
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
		path = s.path(m.LSN, m.Kind)
	}
	f, h, t, err := s.openChecked(path)
	if err != nil {
		return nil, err
	}
	return newBodyReader(path, f, f, h.bodyStart(), t), nil
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

// RestoreNewest feeds the newest usable full snapshot to restore and
// returns its Meta; delta files are not considered (the single-node
// replica restores chains through Catalog). It tries the snapshots newest first; when one turns out corrupt (its
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
	all, err := s.List()
	if err != nil {
		return Meta{}, err
	}
	var metas []Meta
	for _, m := range all {
		if m.Kind == Full {
			metas = append(metas, m)
		}
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

// Prune deletes the chains beyond the newest Keep complete ones, and
// damaged or unlinked files older than the newest kept chain's tip.
// Sink.Close prunes after publishing; call Prune to retry after a pruning
// failure or a change of Keep.
func (s *Store) Prune() error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prune("")
}

// prune implements Prune; s.mu is held. The file protect (the snapshot just
// published) and its chain are never deleted.
//
// A file is complete if its header, link block and trailer check out and
// agree with its size and name (inspect); the body checksum is not read,
// which would cost a full read of every snapshot at every publish. Chains
// are built from the complete files (Catalog). Going newest first, the
// first Keep chains are kept, plus the chain of protect; the files of the
// other chains are deleted, each chain's newest delta first (a crash part
// way leaves a shorter chain, still valid). A damaged file, or a delta that
// links to no chain, is deleted if a kept chain's tip is newer (it can never
// be the restore candidate again) and kept otherwise, so the restorer meets
// it, reports it and falls back.
func (s *Store) prune(protect string) error {
	cat, err := s.Catalog()
	if err != nil {
		return err
	}
	var victims []Meta
	var reasons []error
	kept := 0
	var newestTip uint64
	for _, c := range cat.Chains {
		if kept < s.keep || c.holds(protect) {
			newestTip = max(newestTip, c.Tip().LSN)
			kept++
			continue
		}
		for i := len(c.Deltas) - 1; i >= 0; i-- {
			victims = append(victims, c.Deltas[i])
			reasons = append(reasons, nil)
		}
		victims = append(victims, c.Base)
		reasons = append(reasons, nil)
	}
	for _, u := range cat.Unusable {
		switch {
		case u.Meta.Path == protect:
		case kept > 0 && u.Meta.LSN < newestTip:
			victims = append(victims, u.Meta)
			reasons = append(reasons, u.Err)
		default:
			s.log.Warn("snapshot: keeping a damaged or unlinked snapshot newer than every complete chain", "file", u.Meta.Path, "err", u.Err)
		}
	}
	if len(victims) == 0 {
		return nil
	}
	var errs []error
	for i, v := range victims {
		if reasons[i] != nil {
			s.log.Warn("snapshot: deleting a damaged or unlinked snapshot superseded by a newer chain", "file", v.Path, "err", reasons[i])
		}
		if err := s.fs.Remove(v.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("snapshot: prune: %w", err))
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("snapshot: sync directory %s after pruning: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// openChecked opens the snapshot file at path and checks its header, link
// block and trailer (inspect) and that the header's LSN and kind match the
// file name. On success the caller owns the returned file.
func (s *Store) openChecked(path string) (vfs.File, header, trailer, error) {
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, header{}, trailer{}, fmt.Errorf("%w: %w", ErrNoSnapshot, err)
		}
		return nil, header{}, trailer{}, fmt.Errorf("snapshot: open: %w", err)
	}
	h, t, err := checkOpened(path, f)
	if err != nil {
		f.Close()
		return nil, header{}, trailer{}, err
	}
	return f, h, t, nil
}

func checkOpened(path string, f vfs.File) (header, trailer, error) {
	size, err := f.Size()
	if err != nil {
		return header{}, trailer{}, fmt.Errorf("snapshot: size of %s: %w", path, err)
	}
	h, t, err := inspect(path, f, size)
	if err != nil {
		return header{}, trailer{}, err
	}
	if lsn, kind, ok := parseFileName(filepath.Base(path)); ok {
		if lsn != h.lsn {
			return header{}, trailer{}, corruptf(path, hOffLSN, "header LSN %d does not match the file name (LSN %d)", h.lsn, lsn)
		}
		if kind != h.kind {
			return header{}, trailer{}, corruptf(path, hOffKind, "header says a %s snapshot, the file name a %s", h.kind, kind)
		}
	}
	return h, t, nil
}
