// Package vfs is the narrow filesystem seam under the WAL and the snapshot store.
//
// Everything Beaver-Raft writes durably goes through an FS, so tests can inject
// faults (lost unsynced writes, torn writes, failed fsyncs, ENOSPC) without
// touching the code that relies on the guarantees. The OS implementation is the
// only one used in production.
package vfs

import (
	"io"
	"os"
	"path/filepath"
	"sort"
)

// File is an open file. Implementations need not be safe for concurrent use
// except that ReadAt may be called concurrently with itself.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes everything written so far durable (fdatasync on Linux).
	// After an error the file's durable content is unknown: callers must
	// not retry and report success.
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Seek sets the offset for the next Read or Write.
	Seek(offset int64, whence int) (int64, error)
	// Size reports the current size of the file.
	Size() (int64, error)
	// Name is the path the file was opened with.
	Name() string
}

// FS is the set of filesystem operations the storage layers use.
type FS interface {
	// OpenFile opens name with os.OpenFile semantics.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// ReadDir lists the names (not paths) of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and its parents with mode perm.
	MkdirAll(dir string, perm os.FileMode) error
	// Remove deletes a file.
	Remove(name string) error
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// SyncDir makes the directory's entries (creates, renames, removes)
	// durable.
	SyncDir(dir string) error
	// Stat reports whether name exists and its size.
	Stat(name string) (os.FileInfo, error)
}

// OS is the FS of the operating system.
var OS FS = osFS{}

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) Sync() error { return fdatasync(f.File) }

func (f osFile) Size() (int64, error) {
	st, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error        { return os.Rename(oldpath, newpath) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
