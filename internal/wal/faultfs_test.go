package wal

import (
	"errors"
	"os"
	"strings"
	"sync/atomic"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

var (
	errInjectedSync   = errors.New("injected fdatasync failure")
	errInjectedWrite  = errors.New("injected write failure")
	errInjectedCreate = errors.New("injected create failure")
)

// faultFS wraps vfs.OS and fails operations on segment files on demand.
// Test-only.
type faultFS struct {
	vfs.FS
	failSync   atomic.Bool // Sync of a .wal file fails (without syncing)
	failWrite  atomic.Bool // Write to a .wal file writes half, then fails
	failCreate atomic.Bool // creating a .wal file fails
	syncs      atomic.Int64
}

var _ vfs.FS = (*faultFS)(nil)

func newFaultFS() *faultFS { return &faultFS{FS: vfs.OS} }

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	isSeg := strings.HasSuffix(name, segmentSuffix)
	if isSeg && flag&os.O_CREATE != 0 && fs.failCreate.Load() {
		return nil, &os.PathError{Op: "open", Path: name, Err: errInjectedCreate}
	}
	f, err := fs.FS.OpenFile(name, flag, perm)
	if err != nil || !isSeg {
		return f, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

type faultFile struct {
	vfs.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.failWrite.Load() {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, errInjectedWrite
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	f.fs.syncs.Add(1)
	if f.fs.failSync.Load() {
		return errInjectedSync
	}
	return f.File.Sync()
}
