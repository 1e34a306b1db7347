//go:build linux

package vfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func (osFS) FreeSpace(path string) (uint64, error) {
	var st syscall.Statfs_t
	for {
		err := syscall.Statfs(path, &st)
		if err == nil {
			return uint64(st.Bavail) * uint64(st.Bsize), nil
		}
		if err != syscall.EINTR {
			return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
		}
	}
}

func (f osFile) Allocate(size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch err {
		case nil:
			return nil
		case syscall.EINTR:
			continue
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			return fmt.Errorf("fallocate %s: %w (%w)", f.Name(), errors.ErrUnsupported, err)
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
}
