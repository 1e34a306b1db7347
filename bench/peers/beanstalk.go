package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/beanstalkd/go-beanstalk"
)

// beanstalkdInstall is what to run when beanstalkd is missing.
const beanstalkdInstall = "apt-get install -y beanstalkd"

// beanstalkTTR is the time-to-run of every job: longer than any run, so no
// job goes back to the ready queue while a consumer holds it.
const beanstalkTTR = 10 * time.Minute

// beanstalkd runs the workloads against a beanstalkd process with a binlog
// in a temporary directory, fsyncing at most every fsyncMS milliseconds (0:
// after every write).
func beanstalkd(bin string, fsyncMS int) system {
	s := system{Name: "beanstalkd", Durable: fsyncMS == 0}
	if fsyncMS == 0 {
		s.Setting = "-f 0 (fsync every write)"
	} else {
		s.Setting = fmt.Sprintf("-f %d (fsync at most every %d ms)", fsyncMS, fsyncMS)
	}
	s.run = func(ctx context.Context, sc scenario, p params) (float64, error) {
		srv, err := startBeanstalkd(ctx, bin, p.Dir, fsyncMS)
		if err != nil {
			return 0, err
		}
		defer srv.stop()
		return srv.runScenario(ctx, sc, p)
	}
	return s
}

// beanstalkServer is a beanstalkd process this program started.
type beanstalkServer struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	exited chan error // cmd.Wait's result
	out    *strings.Builder
}

// startBeanstalkd starts `beanstalkd -l 127.0.0.1 -p PORT -b DIR -f MS` and
// waits until it accepts connections.
func startBeanstalkd(ctx context.Context, bin, parent string, fsyncMS int) (*beanstalkServer, error) {
	dir, err := os.MkdirTemp(parent, "beanstalkd-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &beanstalkServer{
		cmd:    exec.Command(bin, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-b", dir, "-f", strconv.Itoa(fsyncMS)),
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    dir,
		exited: make(chan error, 1),
		out:    &strings.Builder{},
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("beanstalkd: %w (install it with: %s)", err, beanstalkdInstall)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	// it gives no sign that it listens: poll
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-t.C:
			continue
		case err := <-s.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("beanstalkd exited: %v\n%s", err, s.out.String())
		case <-deadline.C:
			err = fmt.Errorf("beanstalkd did not listen on %s within 10s", s.addr)
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.stop()
		return nil, err
	}
}

// stop kills the process, waits for it and removes its binlog.
func (s *beanstalkServer) stop() {
	s.cmd.Process.Kill()
	<-s.exited
	os.RemoveAll(s.dir)
}

func (s *beanstalkServer) dial() (*beanstalk.Conn, error) {
	return beanstalk.DialTimeout("tcp", s.addr, 5*time.Second)
}

func (s *beanstalkServer) runScenario(ctx context.Context, sc scenario, p params) (float64, error) {
	switch sc {
	case enqueue:
		w := &work{total: int64(p.Jobs)}
		start := time.Now()
		err := group(ctx, p.Clients, func(ctx context.Context, _ int) error {
			c, err := s.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			for w.take(1) == 1 && ctx.Err() == nil {
				if _, err := c.Put(p.payload, 0, 0, beanstalkTTR); err != nil {
					return fmt.Errorf("beanstalkd put: %w", err)
				}
			}
			return ctx.Err()
		})
		return rate(p.Jobs, time.Since(start)), err
	case enqueueClient:
		// a beanstalk connection carries one command at a time and its
		// client is not safe for concurrent use: no shared client
		return 0, errUnsupported
	case stream:
		start := time.Now()
		err := s.putStream(ctx, p)
		return rate(p.Jobs, time.Since(start)), err
	case enqueueBatch:
		start := time.Now()
		err := s.putBatches(ctx, p)
		return rate(p.Jobs, time.Since(start)), err
	case e2e:
		fin := newFinish(p.Jobs)
		start := time.Now()
		err := group(ctx, 2, func(ctx context.Context, i int) error {
			if i == 0 {
				return s.putBatches(ctx, p)
			}
			return s.consume(ctx, p, fin, time.Second)
		})
		if err != nil {
			return 0, err
		}
		return rate(p.Jobs, fin.at.Sub(start)), nil
	case remote:
		if err := s.putBatches(ctx, p); err != nil {
			return 0, err
		}
		fin := newFinish(p.Jobs)
		start := time.Now()
		if err := s.consume(ctx, p, fin, 0); err != nil {
			return 0, err
		}
		d := time.Since(start)
		if n := int(fin.done.Load()); n != p.Jobs {
			return 0, errCount("beanstalkd reserve+delete", n, p.Jobs)
		}
		return rate(p.Jobs, d), nil
	}
	return 0, fmt.Errorf("unknown scenario %q", sc)
}

// putBatches puts p.Jobs jobs from p.BatchClients connections, pipelining
// p.Batch puts at a time (beanstalkd has no batch put).
func (s *beanstalkServer) putBatches(ctx context.Context, p params) error {
	w := &work{total: int64(p.Jobs)}
	put := fmt.Appendf(nil, "put 0 0 %d %d\r\n%s\r\n", int(beanstalkTTR.Seconds()), len(p.payload), p.payload)
	return group(ctx, p.BatchClients, func(ctx context.Context, _ int) error {
		conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
		defer stop()
		r := bufio.NewReader(conn)
		for {
			n := w.take(p.Batch)
			if n == 0 {
				return nil
			}
			// write in a goroutine while reading, so that neither side's
			// buffers can fill up and block the other
			wrote := make(chan error, 1)
			go func() {
				bw := bufio.NewWriterSize(conn, 64<<10)
				for range n {
					if _, err := bw.Write(put); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- bw.Flush()
			}()
			var rerr error
			for range n {
				line, err := r.ReadString('\n')
				if err != nil {
					rerr = err
					break
				}
				if !strings.HasPrefix(line, "INSERTED ") {
					rerr = fmt.Errorf("beanstalkd put: %q", strings.TrimSpace(line))
					break
				}
			}
			if rerr != nil {
				conn.SetDeadline(time.Now()) // unblock the writer
			}
			if werr := <-wrote; rerr == nil && werr != nil {
				rerr = werr
			}
			if rerr != nil {
				return fmt.Errorf("beanstalkd pipelined put: %w", rerr)
			}
		}
	})
}

// putStream puts p.Jobs jobs from p.Streams connections, each writing
// puts without pause while up to p.Window wait for their INSERTED, which
// another goroutine reads (beanstalkd answers a connection's commands in
// order).
func (s *beanstalkServer) putStream(ctx context.Context, p params) error {
	w := &work{total: int64(p.Jobs)}
	put := fmt.Appendf(nil, "put 0 0 %d %d\r\n%s\r\n", int(beanstalkTTR.Seconds()), len(p.payload), p.payload)
	return group(ctx, p.Streams, func(ctx context.Context, _ int) error {
		conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
		defer stop()
		// a token per put in flight; sent counts the puts written
		tokens := make(chan struct{}, p.Window)
		sent := make(chan int, 1)
		return group(ctx, 2, func(ctx context.Context, i int) error {
			if i == 0 {
				bw := bufio.NewWriterSize(conn, 64<<10)
				n := 0
				defer func() { sent <- n }()
				for w.take(1) == 1 {
					select {
					case tokens <- struct{}{}:
					default:
						// the window is full: what is written must reach
						// the server before waiting for room
						if err := bw.Flush(); err != nil {
							return fmt.Errorf("beanstalkd pipelined put: %w", err)
						}
						select {
						case tokens <- struct{}{}:
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					if _, err := bw.Write(put); err != nil {
						return fmt.Errorf("beanstalkd pipelined put: %w", err)
					}
					n++
					if len(tokens) == 1 {
						// nothing waits behind the first put of a window
						if err := bw.Flush(); err != nil {
							return fmt.Errorf("beanstalkd pipelined put: %w", err)
						}
					}
				}
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("beanstalkd pipelined put: %w", err)
				}
				return nil
			}
			r := bufio.NewReader(conn)
			for read, total := 0, -1; total < 0 || read < total; {
				select {
				case total = <-sent:
					continue
				case <-tokens:
				case <-ctx.Done():
					return ctx.Err()
				}
				line, err := r.ReadString('\n')
				if err != nil {
					return fmt.Errorf("beanstalkd pipelined put: %w", err)
				}
				if !strings.HasPrefix(line, "INSERTED ") {
					return fmt.Errorf("beanstalkd put: %q", strings.TrimSpace(line))
				}
				read++
			}
			return nil
		})
	})
}

// consume reserves and deletes jobs from p.Consumers connections until fin
// is done. With wait 0 a consumer stops at the first reserve that finds no
// job (the queue was filled before); otherwise it waits up to wait per
// reserve and goes on until fin is done.
func (s *beanstalkServer) consume(ctx context.Context, p params, fin *finish, wait time.Duration) error {
	return group(ctx, p.Consumers, func(ctx context.Context, _ int) error {
		c, err := s.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		for !fin.isDone() && ctx.Err() == nil {
			id, _, err := c.Reserve(wait)
			if errors.Is(err, beanstalk.ErrTimeout) {
				if wait == 0 {
					return nil
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("beanstalkd reserve: %w", err)
			}
			if err := c.Delete(id); err != nil {
				return fmt.Errorf("beanstalkd delete: %w", err)
			}
			fin.add(1)
		}
		return ctx.Err()
	})
}
