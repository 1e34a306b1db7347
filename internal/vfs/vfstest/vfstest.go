// Package vfstest is an in-memory vfs.FS that models a disk under a page
// cache, for tests: it loses unsynced data at a power cut, tears the last
// unsynced write at a sector boundary, and fails chosen operations on demand
// (I/O errors, short writes, ENOSPC). It is a normal package so the tests of
// several packages can share it; production code never uses it.
//
// # The model
//
// Every file has a volatile content (the page cache: what reads see) and a
// durable content (the disk). Every directory has volatile entries and
// durable entries. Mutations change the volatile side at once and queue an
// operation that is not yet durable:
//
//   - File.Write, File.Truncate, File.Allocate and O_TRUNC queue a file
//     operation.
//     File.Sync (fdatasync) makes every queued operation of that file
//     durable: its content and its size.
//   - Creating a file (OpenFile with O_CREATE), MkdirAll, Rename and Remove
//     queue a directory operation on the parent directory. SyncDir makes the
//     directory's queued operations durable. A rename is one atomic
//     operation: after a power cut either both names changed or neither.
//     Rename across directories is not modelled and fails with EXDEV.
//   - A file's data and its directory entry are independent: an fdatasynced
//     file whose create was never made durable by SyncDir may vanish; a
//     durable entry may point at a file whose data was never synced (an
//     empty or short file after the cut).
//
// PowerCut simulates a power loss. Every directory keeps its durable entries
// plus a random prefix of its queued operations (possibly none, possibly
// all): unsynced creates vanish or not, unsynced removes come back or not,
// unsynced renames revert or not, always in the order they were made, never
// half a rename. Every file reachable from the surviving entries keeps its
// durable content plus a random prefix of its queued operations, in order;
// the first lost operation, if it is a write, may survive torn: a prefix of
// its bytes ending at a 512-byte sector boundary of the file offset, and
// then, one time in three, the last surviving sector's newly appended bytes
// read as zeros (a sector whose size update reached the disk but whose data
// did not). Bytes that were durable before are never zeroed or changed by a
// lost operation, writes are never reordered, and no byte ever takes a value
// that was not written: the model is ext4 data=ordered with a
// sector-atomic device, not an adversary (no stale blocks, no bit rot, no
// misdirected writes). It is stricter than ext4 in one way: an fsync of one
// file or directory makes nothing else durable (ext4's journal commit would
// carry earlier metadata changes with it), so code must sync every directory
// it changes, as POSIX requires.
//
// Kill simulates the death of the process instead: the volatile state is
// kept (the kernel still has the page cache), queued operations stay queued
// and may still be lost at a later PowerCut.
//
// After PowerCut or Kill the FS is down: every operation fails with
// ErrCrashed until Restart, so the goroutines of the abandoned process wind
// down without changing the post-crash state, and files opened before the
// crash keep failing after Restart. The usual sequence is: PowerCut (or
// PowerCutAfter firing), stop or Close what used the FS, Restart, reopen.
//
// # Faults
//
// Inject arms a Fault: the n-th next matching operation fails with an error
// (a Write optionally after writing half its bytes into the page cache; a
// Sync after a random prefix of the file's queued operations reached the
// disk, the rest staying queued or, with Fault.Lose, being dropped while
// reads still see them, as Linux does after a writeback error). SetCapacity
// makes writes beyond a total size fail with syscall.ENOSPC after writing
// what fits. PowerCutAfter cuts the power at the n-th next mutating
// operation, which puts crash points anywhere: in a WAL batch, in the middle
// of publishing a snapshot, during recovery. A Fault with PowerCut (or Kill)
// set aims the crash at a chosen kind of operation instead, e.g. the n-th
// fdatasync of a segment or the rename that publishes a snapshot.
//
// The FS also implements the optional vfs.StatFS (FreeSpace: the room left
// under the capacity) and its files vfs.Allocator (Allocate).
//
// # Determinism and concurrency
//
// Every random choice comes from a PCG generator seeded by New, so the same
// sequence of calls gives the same result. All methods of FS and File are
// safe for concurrent use: one mutex serialises every operation, so each
// operation is atomic with respect to a power cut.
package vfstest

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// SectorSize is the unit of a torn write: a write cut by a power loss
// survives up to a multiple of SectorSize of the file offset.
const SectorSize = 512

// Unlimited is the capacity of a new FS (see SetCapacity).
const Unlimited = -1

// Errors of the FS. Operations wrap them in *os.PathError (or
// *os.LinkError for Rename), so errors.Is works through the wrapping.
var (
	// ErrCrashed is returned by every operation while the FS is down
	// (after PowerCut or Kill, until Restart) and, for ever, by files
	// opened before the crash.
	ErrCrashed = errors.New("vfstest: crashed (power cut or process kill)")
	// ErrInjected is the default error of an injected fault.
	ErrInjected = errors.New("vfstest: injected fault")
)

// FS is the in-memory file system. Create it with New.
type FS struct {
	mu      sync.Mutex
	rng     *rand.Rand
	root    *node
	gen     uint64 // bumped by every crash; files carry the gen they were opened in
	down    bool
	crashed chan struct{} // closed when the FS goes down

	ops      int64 // mutating operations attempted so far
	cutAt    int64 // PowerCutAfter: cut when ops reaches this; 0 = not armed
	faults   []*faultState
	fired    int
	capacity int64 // Unlimited or the most bytes all files may hold
	used     int64 // bytes of all linked files (volatile sizes)
	cuts     int
}

var _ vfs.FS = (*FS)(nil)

// node is a file or a directory.
type node struct {
	dir    bool
	mode   os.FileMode
	linked bool // has a name in the volatile tree (counts towards used)

	// files
	data    []byte   // volatile content
	durable []byte   // durable content
	pending []fileOp // queued since the last Sync, in order

	// directories
	ents     map[string]*node // volatile entries
	dents    map[string]*node // durable entries
	dpending []dirOp          // queued since the last SyncDir, in order
}

// fileOp is an unsynced Write (data at off) or Truncate (to size).
type fileOp struct {
	trunc bool
	off   int64 // write offset, or new size
	data  []byte
}

// dirOp is an unsynced directory change, applied atomically: one entry for a
// create, mkdir or remove, two for a rename.
type dirOp []entChange

// entChange sets name to n, or removes name if n is nil.
type entChange struct {
	name string
	n    *node
}

// New returns an empty FS (just the root directory, durable) whose random
// choices derive from seed.
func New(seed uint64) *FS {
	root := &node{dir: true, mode: os.ModeDir | 0o755, linked: true,
		ents: map[string]*node{}, dents: map[string]*node{}}
	return &FS{
		rng:      rand.New(rand.NewPCG(seed, 0x7f4a7c15)),
		root:     root,
		crashed:  make(chan struct{}),
		capacity: Unlimited,
	}
}

// ---- crashes ----

// PowerCut simulates a power loss (see the package documentation for what
// survives). The FS is then down: every operation fails with ErrCrashed
// until Restart. PowerCut while the FS is already down (after Kill) applies
// the loss to the state the kill left.
func (fs *FS) PowerCut() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.powerCutLocked()
}

// PowerCutAfter arms a power cut at the n-th next mutating operation (n >= 1):
// that operation does not happen and fails with ErrCrashed, as though the
// power went just as it started. Mutating operations are Write, Truncate,
// Sync, creating a file, each directory MkdirAll creates, Rename, Remove and
// SyncDir, by any goroutine. A crash disarms it; n <= 0 disarms it.
func (fs *FS) PowerCutAfter(n int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.cutAt = 0
	if n > 0 {
		fs.cutAt = fs.ops + int64(n)
	}
}

// Kill simulates the death of the process that uses the FS: the page cache
// survives (reads after Restart see everything written, and what was not
// synced is still at risk of a later PowerCut), but the FS is down until
// Restart and files opened before stay dead.
func (fs *FS) Kill() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.goDown()
}

// Restart brings a crashed FS back up: operations work again on the state
// the crash left. Files opened before the crash keep failing with
// ErrCrashed. Restart on an FS that is up does nothing. Injected faults and
// the capacity stay as they were.
func (fs *FS) Restart() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.down {
		return
	}
	fs.down = false
	fs.crashed = make(chan struct{})
}

// Crashed returns a channel that is closed when the FS goes down (PowerCut,
// a PowerCutAfter firing, Kill). After Restart it returns a new channel.
func (fs *FS) Crashed() <-chan struct{} {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.crashed
}

// Down reports whether the FS is down (crashed and not restarted).
func (fs *FS) Down() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.down
}

// Cuts reports how many power cuts happened (PowerCut calls and
// PowerCutAfter firings).
func (fs *FS) Cuts() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cuts
}

// Ops reports how many mutating operations (see PowerCutAfter) have been
// attempted so far, including failed ones.
func (fs *FS) Ops() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.ops
}

// SyncAll makes everything durable, like sync(2): every file's content and
// every directory's entries. It is a set-up helper: it is not a mutating
// operation, faults do not apply, and it works while the FS is down.
func (fs *FS) SyncAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var walk func(n *node)
	walk = func(n *node) {
		if !n.dir {
			n.syncData()
			return
		}
		n.syncEntries()
		for _, name := range sortedNames(n.ents) {
			walk(n.ents[name])
		}
	}
	walk(fs.root)
}

// ReadFile returns a copy of the volatile content of the file name (what a
// read sees). It works while the FS is down, for inspecting the state a
// crash left.
func (fs *FS) ReadFile(name string) ([]byte, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.lookup(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if n.dir {
		return nil, &os.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	return slices.Clone(n.data), nil
}

func (fs *FS) goDown() {
	fs.gen++
	fs.cutAt = 0
	if !fs.down {
		fs.down = true
		close(fs.crashed)
	}
}

// powerCutLocked replaces the tree by what survives a power loss and takes
// the FS down. fs.mu is held.
func (fs *FS) powerCutLocked() {
	memo := map[*node]*node{}
	var rebuild func(n *node) *node
	rebuild = func(n *node) *node {
		if m, ok := memo[n]; ok {
			return m
		}
		if !n.dir {
			content, _ := fs.settleFile(n)
			m := &node{mode: n.mode, linked: true, data: content, durable: slices.Clone(content)}
			memo[n] = m
			return m
		}
		ents, _ := fs.settleDir(n)
		m := &node{dir: true, mode: n.mode, linked: true, ents: make(map[string]*node, len(ents)), dents: make(map[string]*node, len(ents))}
		memo[n] = m
		for _, name := range sortedNames(ents) { // sorted: the rng draws in a fixed order
			c := rebuild(ents[name])
			m.ents[name], m.dents[name] = c, c
		}
		return m
	}
	fs.root = rebuild(fs.root)
	fs.used = 0
	for _, n := range memo {
		if !n.dir {
			fs.used += int64(len(n.data))
		}
	}
	fs.cuts++
	fs.goDown()
}

// pick chooses how many of n queued operations survive: none, all, or a
// uniform draw, each a third of the time in the long run.
func (fs *FS) pick(n int) int {
	if n == 0 {
		return 0
	}
	switch fs.rng.IntN(3) {
	case 0:
		return 0
	case 1:
		return n
	}
	return fs.rng.IntN(n + 1)
}

// settleFile decides which of n's queued operations reach the disk: a
// random prefix, the first lost write possibly torn. It returns the
// resulting durable content (a new slice) and the operations, or remainder
// of one, that did not reach the disk.
func (fs *FS) settleFile(n *node) ([]byte, []fileOp) {
	d := slices.Clone(n.durable)
	p := n.pending
	k := fs.pick(len(p))
	for _, op := range p[:k] {
		d = op.apply(d)
	}
	if k == len(p) {
		return d, nil
	}
	rest := slices.Clone(p[k:])
	op := p[k]
	if op.trunc || fs.rng.IntN(2) == 0 {
		return d, rest
	}
	// Tear op: keep a prefix ending at a sector boundary strictly inside it.
	end := op.off + int64(len(op.data))
	first := (op.off/SectorSize + 1) * SectorSize // first boundary after off
	last := ((end - 1) / SectorSize) * SectorSize // last boundary before end
	if first > last {
		return d, rest // the write lies within one sector: it survives whole or not at all
	}
	c := first + int64(fs.rng.IntN(int((last-first)/SectorSize)+1))*SectorSize
	oldSize := int64(len(d))
	d = fileOp{off: op.off, data: op.data[:c-op.off]}.apply(d)
	from := c
	if fs.rng.IntN(3) == 0 {
		// The last surviving sector's new bytes read as zeros; bytes that
		// were durable before stay as they were.
		zs := max(c-SectorSize, op.off, oldSize)
		if zs < c {
			clear(d[zs:c])
			from = zs
		}
	}
	rest[0] = fileOp{off: from, data: op.data[from-op.off:]}
	return d, rest
}

// settleDir decides which of n's queued directory operations reach the
// disk: a random prefix. It returns the resulting durable entries (a new
// map) and the operations that did not.
func (fs *FS) settleDir(n *node) (map[string]*node, []dirOp) {
	ents := make(map[string]*node, len(n.dents))
	for k, v := range n.dents {
		ents[k] = v
	}
	k := fs.pick(len(n.dpending))
	for _, op := range n.dpending[:k] {
		op.apply(ents)
	}
	return ents, slices.Clone(n.dpending[k:])
}

func (op fileOp) apply(d []byte) []byte {
	if op.trunc {
		return resize(d, op.off)
	}
	end := op.off + int64(len(op.data))
	if int64(len(d)) < end {
		d = resize(d, end)
	}
	copy(d[op.off:], op.data)
	return d
}

func (op dirOp) apply(ents map[string]*node) {
	for _, c := range op {
		if c.n == nil {
			delete(ents, c.name)
		} else {
			ents[c.name] = c.n
		}
	}
}

// resize returns d cut or zero-extended to size.
func resize(d []byte, size int64) []byte {
	if int64(len(d)) >= size {
		return d[:size]
	}
	if int64(cap(d)) >= size {
		old := len(d)
		d = d[:size]
		clear(d[old:])
		return d
	}
	return append(d, make([]byte, size-int64(len(d)))...)
}

func (n *node) syncData() {
	for _, op := range n.pending {
		n.durable = op.apply(n.durable)
	}
	n.pending = nil
}

func (n *node) syncEntries() {
	for _, op := range n.dpending {
		op.apply(n.dents)
	}
	n.dpending = nil
}

func sortedNames(m map[string]*node) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// ---- paths ----

// components splits a path into its names; the root has none. Relative
// paths are taken from the root.
func components(name string) []string {
	p := filepath.ToSlash(filepath.Clean("/" + name))
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// lookup finds the node at name in the volatile tree.
func (fs *FS) lookup(name string) (*node, error) {
	n := fs.root
	for _, c := range components(name) {
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		next, ok := n.ents[c]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = next
	}
	return n, nil
}

// parent finds the directory that holds name, and name's last component.
func (fs *FS) parent(name string) (*node, string, error) {
	cs := components(name)
	if len(cs) == 0 {
		return nil, "", syscall.EINVAL // the root has no parent
	}
	dir, err := fs.lookup(strings.Join(cs[:len(cs)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !dir.dir {
		return nil, "", syscall.ENOTDIR
	}
	return dir, cs[len(cs)-1], nil
}

func (fs *FS) link(dir *node, name string, n *node) {
	if old := dir.ents[name]; old != nil {
		fs.unlink(old)
	}
	dir.ents[name] = n
	n.linked = true
	fs.used += int64(len(n.data))
}

func (fs *FS) unlink(n *node) {
	if n.linked {
		n.linked = false
		fs.used -= int64(len(n.data))
	}
}

// ---- vfs.FS ----

// OpenFile opens name with os.OpenFile semantics for the flags O_RDONLY,
// O_WRONLY, O_RDWR, O_CREATE, O_EXCL, O_TRUNC and O_APPEND. Directories
// cannot be opened (SyncDir and ReadDir take a path).
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	perr := func(err error) error { return &os.PathError{Op: "open", Path: name, Err: err} }
	if fs.down {
		return nil, perr(ErrCrashed)
	}
	dir, base, err := fs.parent(name)
	if err != nil {
		return nil, perr(err)
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	writable := acc == os.O_WRONLY || acc == os.O_RDWR
	n := dir.ents[base]
	switch {
	case n == nil:
		if flag&os.O_CREATE == 0 {
			return nil, perr(syscall.ENOENT)
		}
		if err := fs.start(OpCreate, name); err != nil {
			return nil, perr(err)
		}
		n = &node{mode: perm.Perm()}
		fs.link(dir, base, n)
		dir.dpending = append(dir.dpending, dirOp{{name: base, n: n}})
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, perr(syscall.EEXIST)
	case n.dir:
		return nil, perr(syscall.EISDIR)
	case flag&os.O_TRUNC != 0 && writable && len(n.data) > 0:
		if err := fs.start(OpTruncate, name); err != nil {
			return nil, perr(err)
		}
		fs.truncate(n, 0)
	}
	return &File{fs: fs, n: n, name: name, gen: fs.gen,
		read: acc == os.O_RDONLY || acc == os.O_RDWR, write: writable,
		append: flag&os.O_APPEND != 0}, nil
}

// ReadDir lists the names of the entries of dir, sorted.
func (fs *FS) ReadDir(dir string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.down {
		return nil, &os.PathError{Op: "readdir", Path: dir, Err: ErrCrashed}
	}
	n, err := fs.lookup(dir)
	if err == nil && !n.dir {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return nil, &os.PathError{Op: "readdir", Path: dir, Err: err}
	}
	return sortedNames(n.ents), nil
}

// MkdirAll creates dir and its missing parents. Each directory it creates
// is a queued operation on its parent (durable after SyncDir of the
// parent) and counts as one mutating operation.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	perr := func(err error) error { return &os.PathError{Op: "mkdir", Path: dir, Err: err} }
	if fs.down {
		return perr(ErrCrashed)
	}
	n := fs.root
	cs := components(dir)
	for i, c := range cs {
		next, ok := n.ents[c]
		if !ok {
			if err := fs.start(OpMkdir, "/"+strings.Join(cs[:i+1], "/")); err != nil {
				return perr(err)
			}
			next = &node{dir: true, mode: os.ModeDir | perm.Perm(), ents: map[string]*node{}, dents: map[string]*node{}}
			fs.link(n, c, next)
			n.dpending = append(n.dpending, dirOp{{name: c, n: next}})
		} else if !next.dir {
			return perr(syscall.ENOTDIR)
		}
		n = next
	}
	return nil
}

// Remove deletes a file or an empty directory.
func (fs *FS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	perr := func(err error) error { return &os.PathError{Op: "remove", Path: name, Err: err} }
	if fs.down {
		return perr(ErrCrashed)
	}
	dir, base, err := fs.parent(name)
	if err != nil {
		return perr(err)
	}
	n := dir.ents[base]
	if n == nil {
		return perr(syscall.ENOENT)
	}
	if n.dir && len(n.ents) > 0 {
		return perr(syscall.ENOTEMPTY)
	}
	if err := fs.start(OpRemove, name); err != nil {
		return perr(err)
	}
	delete(dir.ents, base)
	fs.unlink(n)
	dir.dpending = append(dir.dpending, dirOp{{name: base}})
	return nil
}

// Rename atomically replaces newpath with the file oldpath. Both must be in
// the same directory (otherwise EXDEV: moves between directories are not
// modelled) and oldpath must be a file.
func (fs *FS) Rename(oldpath, newpath string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	lerr := func(err error) error { return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err} }
	if fs.down {
		return lerr(ErrCrashed)
	}
	odir, obase, err := fs.parent(oldpath)
	if err != nil {
		return lerr(err)
	}
	ndir, nbase, err := fs.parent(newpath)
	if err != nil {
		return lerr(err)
	}
	n := odir.ents[obase]
	switch {
	case n == nil:
		return lerr(syscall.ENOENT)
	case n.dir:
		return lerr(syscall.EISDIR)
	case odir != ndir:
		return lerr(syscall.EXDEV)
	case obase == nbase:
		return nil
	}
	if t := ndir.ents[nbase]; t != nil && t.dir {
		return lerr(syscall.EISDIR)
	}
	if err := fs.start(OpRename, oldpath); err != nil {
		return lerr(err)
	}
	delete(odir.ents, obase)
	n.linked = false
	fs.used -= int64(len(n.data))
	fs.link(ndir, nbase, n)
	odir.dpending = append(odir.dpending, dirOp{{name: nbase, n: n}, {name: obase}})
	return nil
}

// SyncDir makes the queued operations on dir's entries durable. If an
// injected fault fails it, a random prefix of them became durable and the
// rest stay queued.
func (fs *FS) SyncDir(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	perr := func(err error) error { return &os.PathError{Op: "fsync", Path: dir, Err: err} }
	if fs.down {
		return perr(ErrCrashed)
	}
	n, err := fs.lookup(dir)
	if err == nil && !n.dir {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return perr(err)
	}
	f, err := fs.begin(OpSyncDir, dir)
	if err != nil {
		return perr(err)
	}
	if f != nil {
		n.dents, n.dpending = fs.settleDir(n)
		return perr(f.err())
	}
	n.syncEntries()
	return nil
}

// Stat reports on name.
func (fs *FS) Stat(name string) (os.FileInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.down {
		return nil, &os.PathError{Op: "stat", Path: name, Err: ErrCrashed}
	}
	n, err := fs.lookup(name)
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	cs := components(name)
	base := "/"
	if len(cs) > 0 {
		base = cs[len(cs)-1]
	}
	return fileInfo{name: base, size: int64(len(n.data)), mode: n.mode}, nil
}

type fileInfo struct {
	name string
	size int64
	mode os.FileMode
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() os.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return time.Time{} }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

var _ fs.FileInfo = fileInfo{}
