package vfstest

import (
	"io"
	"os"
	"slices"
	"syscall"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// File is an open file of an FS. It refers to the file, not the name: a
// rename or remove does not affect it. After the FS crashes every method
// fails with ErrCrashed, except Close, which returns nil.
type File struct {
	fs     *FS
	n      *node
	name   string
	gen    uint64
	read   bool
	write  bool
	append bool
	off    int64
	closed bool
}

var _ vfs.File = (*File)(nil)

// usable checks, with fs.mu held, that the file may be used for op.
func (f *File) usable(op string, wantRead, wantWrite bool) error {
	var err error
	switch {
	case f.fs.down || f.gen != f.fs.gen:
		err = ErrCrashed
	case f.closed:
		err = os.ErrClosed
	case wantRead && !f.read, wantWrite && !f.write:
		err = syscall.EBADF
	default:
		return nil
	}
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

// Name is the path the file was opened with.
func (f *File) Name() string { return f.name }

// Read reads from the current offset.
func (f *File) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.usable("read", true, false); err != nil {
		return 0, err
	}
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads at off; it returns io.EOF if fewer than len(p) bytes remain.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.usable("read", true, false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	return f.readAt(p, off)
}

func (f *File) readAt(p []byte, off int64) (int, error) {
	if off >= int64(len(f.n.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write writes at the current offset (at the end with O_APPEND) into the
// page cache and queues the write for Sync.
func (f *File) Write(p []byte) (int, error) {
	fs := f.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := f.usable("write", false, true); err != nil {
		return 0, err
	}
	if f.append {
		f.off = int64(len(f.n.data))
	}
	flt, err := fs.begin(OpWrite, f.name)
	if err != nil {
		return 0, &os.PathError{Op: "write", Path: f.name, Err: err}
	}
	if flt != nil {
		n := 0
		if flt.Partial {
			n, _ = f.writeAt(p[:len(p)/2])
		}
		return n, &os.PathError{Op: "write", Path: f.name, Err: flt.err()}
	}
	return f.writeAt(p)
}

// writeAt writes p at f.off, as much as the capacity allows.
func (f *File) writeAt(p []byte) (int, error) {
	fs, n := f.fs, f.n
	end := f.off + int64(len(p))
	fit := fs.room(n, end)
	k := int(max(fit-f.off, 0))
	if k > 0 {
		old := int64(len(n.data))
		op := fileOp{off: f.off, data: slices.Clone(p[:k])}
		n.data = op.apply(n.data)
		n.pending = append(n.pending, op)
		if n.linked {
			fs.used += int64(len(n.data)) - old
		}
		f.off += int64(k)
	}
	if k < len(p) {
		return k, &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	return k, nil
}

// Sync makes the file's content and size durable (fdatasync). If an
// injected fault fails it, see Fault.Lose.
func (f *File) Sync() error {
	fs := f.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := f.usable("sync", false, false); err != nil {
		return err
	}
	flt, err := fs.begin(OpSync, f.name)
	if err != nil {
		return &os.PathError{Op: "sync", Path: f.name, Err: err}
	}
	if flt != nil {
		var rest []fileOp
		f.n.durable, rest = fs.settleFile(f.n)
		f.n.pending = nil
		if !flt.Lose {
			f.n.pending = rest
		}
		return &os.PathError{Op: "sync", Path: f.name, Err: flt.err()}
	}
	f.n.syncData()
	return nil
}

// Truncate changes the size of the file (queued for Sync like a write).
func (f *File) Truncate(size int64) error {
	fs := f.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := f.usable("truncate", false, true); err != nil {
		return err
	}
	if size < 0 {
		return &os.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	flt, err := fs.begin(OpTruncate, f.name)
	if err == nil && flt != nil {
		err = flt.err()
	}
	if err == nil && fs.room(f.n, size) < size {
		err = syscall.ENOSPC
	}
	if err != nil {
		return &os.PathError{Op: "truncate", Path: f.name, Err: err}
	}
	fs.truncate(f.n, size)
	return nil
}

// Allocate extends the file to size with zeros if it is shorter, as
// fallocate does (vfs.Allocator): all or nothing, failing with
// syscall.ENOSPC beyond the capacity. It is queued for Sync like a Truncate
// and counts as an OpTruncate for faults.
func (f *File) Allocate(size int64) error {
	fs := f.fs
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := f.usable("fallocate", false, true); err != nil {
		return err
	}
	if size < 0 {
		return &os.PathError{Op: "fallocate", Path: f.name, Err: syscall.EINVAL}
	}
	flt, err := fs.begin(OpTruncate, f.name)
	if err == nil && flt != nil {
		err = flt.err()
	}
	if err == nil && fs.room(f.n, size) < size {
		err = syscall.ENOSPC
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.name, Err: err}
	}
	if size > int64(len(f.n.data)) {
		fs.truncate(f.n, size)
	}
	return nil
}

func (fs *FS) truncate(n *node, size int64) {
	old := int64(len(n.data))
	op := fileOp{trunc: true, off: size}
	n.data = op.apply(n.data)
	n.pending = append(n.pending, op)
	if n.linked {
		fs.used += size - old
	}
}

// Seek sets the offset for the next Read or Write.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.usable("seek", false, false); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += int64(len(f.n.data))
	default:
		offset = -1
	}
	if offset < 0 {
		return 0, &os.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	f.off = offset
	return offset, nil
}

// Size reports the current (volatile) size of the file.
func (f *File) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.usable("stat", false, false); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

// Close closes the file. Closing does not sync. It returns nil for a file
// of a crashed FS (the process that held it is gone).
func (f *File) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	f.closed = true
	return nil
}
