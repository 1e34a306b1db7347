//go:build !linux

package vfs

import (
	"errors"
	"fmt"
)

func (osFS) FreeSpace(path string) (uint64, error) {
	return 0, fmt.Errorf("statfs %s: %w", path, errors.ErrUnsupported)
}

func (f osFile) Allocate(size int64) error {
	return fmt.Errorf("fallocate %s: %w", f.Name(), errors.ErrUnsupported)
}
