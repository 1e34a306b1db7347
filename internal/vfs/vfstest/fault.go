package vfstest

import (
	"os"
	"strings"
)

// Op is a kind of mutating operation, for faults. Values can be or-ed.
type Op uint16

const (
	OpWrite    Op = 1 << iota // File.Write
	OpTruncate                // File.Truncate, File.Allocate, OpenFile with O_TRUNC
	OpSync                    // File.Sync
	OpCreate                  // OpenFile creating a file
	OpMkdir                   // a directory created by MkdirAll
	OpRename                  // FS.Rename
	OpRemove                  // FS.Remove
	OpSyncDir                 // FS.SyncDir

	OpAll = OpWrite | OpTruncate | OpSync | OpCreate | OpMkdir | OpRename | OpRemove | OpSyncDir
)

var opNames = [...]string{"write", "truncate", "sync", "create", "mkdir", "rename", "remove", "syncdir"}

func (o Op) String() string {
	var names []string
	for i, name := range opNames {
		if o&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Fault makes a chosen operation fail. See FS.Inject.
type Fault struct {
	// Op is the operations the fault applies to (several may be or-ed).
	Op Op
	// Match, if set, restricts the fault to paths for which it returns
	// true (for Rename, the old path). It is called with the FS locked and
	// must not call the FS.
	Match func(path string) bool
	// After: the After-th matching operation from now fails (0 or 1: the
	// next one).
	After int
	// Err is the error the operation returns, wrapped in *os.PathError
	// (*os.LinkError for Rename). Default ErrInjected.
	Err error
	// Partial: a failing Write first writes the first half of its bytes
	// into the page cache (and returns that count with the error), as a
	// short write does.
	Partial bool
	// Lose: a failing Sync drops the queued writes that did not reach the
	// disk: reads still see them but no later Sync writes them, as Linux
	// (>= 4.13) does after a writeback error. Without Lose they stay queued
	// and a later Sync or a power cut may still persist them. In both cases
	// a random prefix of them reached the disk before the failure.
	Lose bool
	// Sticky: every matching operation after the After-th fails too, as
	// on a dying disk.
	Sticky bool
	// PowerCut: instead of failing with Err, the fault cuts the power as
	// the operation starts (see FS.PowerCutAfter), which aims a crash at a
	// chosen kind of operation, e.g. the rename that publishes a snapshot.
	PowerCut bool
	// Kill: instead of failing with Err, the process dies as the operation
	// starts (see FS.Kill): what it wrote before stays in the page cache,
	// unsynced.
	Kill bool
	// OnFire, if set, is called each time the fault fails an operation,
	// with the operation and its path, before the operation returns. It is
	// called with the FS locked and must not call the FS.
	OnFire func(op Op, path string)
}

type faultState struct {
	Fault
	seen int
	done bool
}

func (f *faultState) err() error {
	if f.Err != nil {
		return f.Err
	}
	return ErrInjected
}

// Inject arms a fault. Several faults may be armed; the first armed one
// that fires decides an operation's failure. A fault that fired is spent
// unless Sticky. A failed operation changes nothing, except as Fault.Partial
// (Write) and Fault.Lose (Sync) say, and except that a failed Sync or
// SyncDir may have made a random prefix of the queued operations durable.
func (fs *FS) Inject(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = append(fs.faults, &faultState{Fault: f})
}

// FailAfter makes the n-th next operation of kind op fail with err (nil:
// ErrInjected); n <= 1 means the next one.
func (fs *FS) FailAfter(op Op, n int, err error) {
	fs.Inject(Fault{Op: op, After: n, Err: err})
}

// ClearFaults disarms every fault.
func (fs *FS) ClearFaults() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = nil
}

// FaultsFired reports how many operations injected faults have failed.
func (fs *FS) FaultsFired() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.fired
}

// SetCapacity bounds the total size of all files (their volatile sizes,
// counting the files that have a name): a Write or Truncate that would grow
// the total beyond bytes writes what fits and fails with syscall.ENOSPC.
// Removing or truncating files frees space. Unlimited (-1) lifts the bound.
func (fs *FS) SetCapacity(bytes int64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.capacity = bytes
}

// Used reports the total size of all files with a name.
func (fs *FS) Used() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.used
}

// begin is called with fs.mu held before every mutating operation on path.
// It counts the operation, fires an armed power cut (the operation then
// fails with ErrCrashed and does not happen), and returns the fault that
// fails the operation, if any.
func (fs *FS) begin(op Op, path string) (*faultState, error) {
	if fs.down {
		return nil, ErrCrashed
	}
	fs.ops++
	if fs.cutAt != 0 && fs.ops >= fs.cutAt {
		fs.powerCutLocked()
		return nil, ErrCrashed
	}
	for _, f := range fs.faults {
		if f.done || f.Op&op == 0 || (f.Match != nil && !f.Match(path)) {
			continue
		}
		f.seen++
		if f.seen < max(f.After, 1) {
			continue
		}
		if !f.Sticky {
			f.done = true
		}
		fs.fired++
		if f.OnFire != nil {
			f.OnFire(op, path)
		}
		switch {
		case f.PowerCut:
			fs.powerCutLocked()
			return nil, ErrCrashed
		case f.Kill:
			fs.goDown()
			return nil, ErrCrashed
		}
		return f, nil
	}
	return nil, nil
}

// start is begin for operations that a fault simply fails.
func (fs *FS) start(op Op, path string) error {
	f, err := fs.begin(op, path)
	if err == nil && f != nil {
		err = f.err()
	}
	return err
}

// room reports how many bytes a file of size size may grow to end without
// exceeding the capacity, as the new end (at most end).
func (fs *FS) room(n *node, end int64) int64 {
	size := int64(len(n.data))
	if fs.capacity < 0 || end <= size || !n.linked {
		return end
	}
	return min(end, size+max(fs.capacity-fs.used, 0))
}

// FreeSpace reports the room left under the capacity, as vfs.StatFS does:
// capacity minus the size of all files, or 1 TiB when the capacity is
// Unlimited.
func (fs *FS) FreeSpace(path string) (uint64, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.down {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: ErrCrashed}
	}
	if fs.capacity < 0 {
		return 1 << 40, nil
	}
	return uint64(max(fs.capacity-fs.used, 0)), nil
}
