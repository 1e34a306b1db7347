//go:build linux

package handlers

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// drainDelay bounds how long the output pipes are read after the process
// group was killed; only a process that left the group can hold them open.
const drainDelay = 2 * time.Second

// run runs c in a new process group and returns its stdout (cut to c.maxOut),
// the tail of its stderr and the error of its Wait.
//
// Order matters: wait for the leader to exit without reaping it (so its pid,
// which is the group id, cannot be reused), kill the group (SIGKILL to
// -pgid: on ctx done the leader too, otherwise what it left behind), then
// reap the leader and drain the pipes.
func run(ctx context.Context, c command) (stdout, stderr []byte, err error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outW.Close()
		return nil, nil, err
	}
	defer errR.Close()
	cmd := &exec.Cmd{
		Path:        c.path,
		Args:        c.argv,
		Env:         c.env,
		Stdin:       bytes.NewReader(c.stdin),
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   drainDelay, // bounds the stdin copy after exit
	}
	err = cmd.Start()
	_ = outW.Close() // the child has its copies
	_ = errW.Close()
	if err != nil {
		return nil, nil, err
	}
	head := &headBuffer{max: c.maxOut}
	tail := &tailBuffer{max: stderrTail}
	var readers sync.WaitGroup
	readers.Go(func() { _, _ = io.Copy(head, outR) })
	readers.Go(func() { _, _ = io.Copy(tail, errR) })

	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pgid)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	err = cmd.Wait()

	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	timer := time.NewTimer(drainDelay)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
	}
	_ = outR.Close() // unblocks the readers if a process outside the group holds the pipes
	_ = errR.Close()
	<-drained
	return head.buf, tail.buf, err
}

// waitExited blocks until process pid has exited, leaving it unreaped
// (waitid with WNOWAIT), or until waiting fails.
func waitExited(pid int) {
	const pPID = 1     // idtype_t P_PID
	var info [128]byte // siginfo_t, unread
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}
