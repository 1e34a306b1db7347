package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked: another process holds the data directory.
var ErrLocked = errors.New("data directory is in use")

// dirLock is an exclusive flock on <dir>/LOCK, released when the process
// exits (even by SIGKILL), so a stale lock file never blocks a restart.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = " (held by pid " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another beaver-raft process%s; stop it or use another --data-dir", ErrLocked, dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}

// LockDir takes the same exclusive lock on dir as Open, for the other
// owners of a data directory (the cluster replica, offline tools). release
// drops it.
func LockDir(dir string) (release func() error, err error) {
	l, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return l.release, nil
}

// HasState reports whether dir holds single-node state: WAL segments or
// snapshot files.
func HasState(dir string) bool {
	for _, sub := range []string{"wal", "snapshots"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if n := e.Name(); strings.HasSuffix(n, ".wal") || strings.HasSuffix(n, ".snap") {
				return true
			}
		}
	}
	return false
}

// isClusterDir reports whether dir holds a cluster node's raft state: a
// raft log in either store (raft/raft.db, or WAL segments in raft/log/;
// see internal/replica/raftrep).
func isClusterDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "raft", "raft.db")); err == nil {
		return true
	}
	entries, err := os.ReadDir(filepath.Join(dir, "raft", "log"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".wal") {
			return true
		}
	}
	return false
}
