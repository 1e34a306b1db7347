//go:build !linux

package handlers

import (
	"context"
	"errors"
)

// run refuses: killing a job's whole process tree safely is implemented for
// Linux only.
func run(context.Context, command) (stdout, stderr []byte, err error) {
	return nil, nil, Permanent(errors.New("the exec handler is supported on Linux only"))
}
