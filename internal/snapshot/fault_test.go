package snapshot

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// faultFS wraps an FS and fails chosen operations once armed. Test-only.
type faultFS struct {
	vfs.FS

	mu sync.Mutex
	// fail maps an operation to the error it returns: "create" (OpenFile
	// with O_CREATE), "write", "sync", "close" (of a file opened for
	// writing), "rename", "syncdir", "remove".
	fail map[string]error
	// skip is how many calls of an armed operation succeed before it fails.
	skip map[string]int
	// writeBudget is how many bytes "write" lets through before failing.
	writeBudget int64
}

var _ vfs.FS = (*faultFS)(nil)

func newFaultFS() *faultFS {
	return &faultFS{FS: vfs.OS, fail: map[string]error{}, skip: map[string]int{}}
}

// arm makes op fail with err after skip more successful calls; a nil err
// disarms it.
func (f *faultFS) arm(op string, err error, skip int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = err
	f.skip[op] = skip
}

// check returns the error op should fail with, if any.
func (f *faultFS) check(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[op] == nil {
		return nil
	}
	if f.skip[op] > 0 {
		f.skip[op]--
		return nil
	}
	return f.fail[op]
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := f.check("create"); err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return file, nil
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.check("rename"); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return f.FS.Rename(oldpath, newpath)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.check("syncdir"); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return f.FS.SyncDir(dir)
}

func (f *faultFS) Remove(name string) error {
	if err := f.check("remove"); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return f.FS.Remove(name)
}

type faultFile struct {
	vfs.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	err := f.fs.fail["write"]
	n := len(p)
	if err != nil {
		if int64(n) > f.fs.writeBudget {
			n = int(f.fs.writeBudget)
		} else {
			err = nil
		}
		f.fs.writeBudget -= int64(n)
	}
	f.fs.mu.Unlock()
	w, werr := f.File.Write(p[:n])
	if werr != nil {
		return w, werr
	}
	if err != nil {
		return w, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return w, nil
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync"); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	cerr := f.File.Close() // always release the descriptor
	if err := f.fs.check("close"); err != nil {
		return &os.PathError{Op: "close", Path: f.Name(), Err: err}
	}
	return cerr
}

// TestCloseFaults fails each step of Close in turn: Close returns the
// error, no new file (final or temp) is left, the earlier snapshot is
// untouched, and the store works again once the fault is gone.
func TestCloseFaults(t *testing.T) {
	for _, op := range []string{"write", "sync", "close", "rename", "syncdir"} {
		t.Run(op, func(t *testing.T) {
			ffs := newFaultFS()
			s := openStore(t, Options{FS: ffs, Keep: 1})
			old := publish(t, s, 10, []byte("the previous snapshot"))

			injected := syscall.EIO
			if op == "write" {
				injected = syscall.ENOSPC
				ffs.writeBudget = 1<<20 + 12345 // fail in the middle of the body
			}
			ffs.arm(op, injected, 0)
			k, err := s.Create(20, testTime)
			if err != nil {
				t.Fatal(err)
			}
			body := randomBytes(3<<20, 20)
			var werr error
			for off := 0; off < len(body) && werr == nil; off += 64 << 10 {
				_, werr = k.Write(body[off : off+64<<10])
			}
			if op == "write" && !errors.Is(werr, injected) {
				t.Fatalf("Write: %v, want %v", werr, injected)
			}
			_, err = k.Close()
			if !errors.Is(err, injected) {
				t.Fatalf("Close: %v, want an error wrapping %v", err, injected)
			}
			if !strings.Contains(err.Error(), fileName(20, Full)) {
				t.Fatalf("Close error %q does not name the snapshot", err)
			}
			if names := dirNames(t, s.Dir()); !slices.Equal(names, []string{fileName(10, Full)}) {
				t.Fatalf("after a failed Close the directory holds %v", names)
			}
			if err := s.Verify(old); err != nil {
				t.Fatalf("previous snapshot: %v", err)
			}
			if err := k.Cancel(); err != nil {
				t.Fatalf("Cancel after failed Close: %v", err)
			}

			ffs.arm(op, nil, 0)
			m := publish(t, s, 30, body)
			if list, _ := s.List(); !slices.Equal(lsns(list), []uint64{30}) {
				t.Fatalf("List() = %v", lsns(list))
			}
			if err := s.Verify(m); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCreateFaults(t *testing.T) {
	ffs := newFaultFS()
	s := openStore(t, Options{FS: ffs})
	ffs.arm("create", syscall.ENOSPC, 0)
	if _, err := s.Create(1, testTime); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create: %v", err)
	}
	ffs.arm("create", nil, 0)
	ffs.arm("write", syscall.ENOSPC, 0) // budget 0: the header write fails
	if _, err := s.Create(1, testTime); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create: %v", err)
	}
	if names := dirNames(t, s.Dir()); len(names) != 0 {
		t.Fatalf("directory holds %v", names)
	}
}

// TestPruneFaults: the snapshot is published even if pruning fails; the
// failure is logged and Prune retries it.
func TestPruneFaults(t *testing.T) {
	for _, op := range []string{"remove", "syncdir"} {
		t.Run(op, func(t *testing.T) {
			ffs := newFaultFS()
			var logs bytes.Buffer
			s, err := Open(t.TempDir(), Options{FS: ffs, Keep: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			publish(t, s, 1, []byte("one"))
			k, err := s.Create(2, testTime)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Write([]byte("two")); err != nil {
				t.Fatal(err)
			}
			// Let the publishing directory sync through; fail pruning's.
			skip := 0
			if op == "syncdir" {
				skip = 1
			}
			ffs.arm(op, syscall.EIO, skip)
			m, err := k.Close()
			if err != nil || m.LSN != 2 {
				t.Fatalf("Close = %+v, %v; a pruning failure must not fail the publish", m, err)
			}
			if !strings.Contains(logs.String(), "prune") {
				t.Fatalf("pruning failure not logged:\n%s", logs.String())
			}
			ffs.arm(op, nil, 0)
			if err := s.Prune(); err != nil {
				t.Fatal(err)
			}
			if list, _ := s.List(); !slices.Equal(lsns(list), []uint64{2}) {
				t.Fatalf("List() = %v", lsns(list))
			}
		})
	}
}
