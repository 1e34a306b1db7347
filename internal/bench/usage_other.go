//go:build !unix

package bench

import (
	"errors"
	"time"
)

func selfCPU() (time.Duration, error) {
	return 0, errors.New("the CPU time of this process is not known on this system")
}
