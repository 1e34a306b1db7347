package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beaver-raft/beaver-raft/client"
)

// recovery: fill a child server process with Jobs pending jobs, SIGKILL
// it, start it again on the same directory and time its recovery.
func (r *run) recovery(ctx context.Context) error {
	bin := r.o.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("bench: finding this executable for the recovery child: %w", err)
		}
	}
	dir, err := os.MkdirTemp(r.o.DataDir, "beaver-bench-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.o.Keep {
		r.res.DataDir = dir
	} else {
		defer os.RemoveAll(dir)
	}
	r.res.Target, r.res.Sync, r.res.Workers, r.res.Batch = "child process", r.o.Sync, r.o.Workers, r.o.Batch
	args := []string{"run", "--data-dir", dir, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--sync", r.o.Sync, "--workers", fmt.Sprint(r.o.Workers), "--log-format", "json"}
	args = append(args, r.o.ChildArgs...)

	// 1. fill
	first, err := startChild(ctx, bin, args)
	if err != nil {
		return err
	}
	defer first.kill()
	if err := first.waitReady(ctx); err != nil {
		return err
	}
	c := client.New(first.api)
	r.t = &target{c: c}
	prog := startProgress(r.o.Progress, "fill", r.o.Jobs, 0)
	start := time.Now()
	n, err := r.enqueueBatches(ctx, newWork(r.o), TypeBench, nil, nil, prog)
	prog.end()
	c.Close()
	if err != nil {
		return err
	}
	fill := time.Since(start)
	r.res.Fill = &Phase{Jobs: n, Elapsed: fill, JobsPerSec: float64(n) / fill.Seconds()}

	// 2. kill -9
	if err := first.kill(); err != nil {
		return err
	}

	// 3. restart, timed until /readyz answers 200
	start = time.Now()
	second, err := startChild(ctx, bin, args)
	if err != nil {
		return err
	}
	defer second.kill()
	if err := second.waitMetrics(ctx); err != nil {
		return err
	}
	if err := pollReady(ctx, second); err != nil {
		return err
	}
	wall := time.Since(start)
	if err := second.waitReady(ctx); err != nil {
		return err
	}
	c = client.New(second.api)
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("bench: status after the restart: %w", err)
	}
	serverDur, err := time.ParseDuration(st.Recovery.Duration)
	if err != nil {
		return fmt.Errorf("bench: status: recovery.duration %q: %w", st.Recovery.Duration, err)
	}
	q := st.Queues[r.queue]
	r.res.Counts = q
	r.res.Recovery = &RecoveryResult{
		Jobs:            q.Pending,
		ServerDuration:  serverDur,
		WallToReady:     wall,
		SnapshotJobs:    st.Recovery.SnapshotJobs,
		RecordsReplayed: st.Recovery.RecordsReplayed,
	}
	r.res.Jobs, r.res.Elapsed = q.Pending, wall
	r.res.JobsPerSec = float64(q.Pending) / wall.Seconds()
	su := &ServerUsage{Source: "proc"}
	if u, err := pidUsage(second.cmd.Process.Pid); err != nil {
		su.Error = err.Error()
	} else {
		// the process is new: all its CPU time went into starting
		su.CPU, su.RSS, su.PeakRSS = u.CPU, u.RSS, u.HWM
		su.CPUCores = u.CPU.Seconds() / wall.Seconds()
	}
	r.res.Server = su
	if q.Pending != n {
		return fmt.Errorf("bench: the restarted server holds %d pending jobs of the %d enqueued (%+v)", q.Pending, n, q)
	}
	if r.o.Keep {
		return second.stop() // SIGTERM: a clean stop leaves a snapshot
	}
	return second.kill()
}

// pollReady polls the child's /readyz until it answers 200.
func pollReady(ctx context.Context, ch *child) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ch.metrics+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-t.C:
		case <-ch.exited:
			return fmt.Errorf("bench: the server exited while recovering:\n%s", ch.logTail())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// child is a beaver-raft server process.
type child struct {
	cmd *exec.Cmd
	// api and metrics are the base URLs read from its log: metrics from
	// the "starting" line, api from the "ready" line.
	api, metrics string
	starting     chan struct{} // closed when metrics is known
	ready        chan struct{} // closed when api is known
	exited       chan struct{} // closed when its log ended: it exited
	waitErr      error         // cmd.Wait's error, after exited

	mu   sync.Mutex
	tail []string // its last log lines, for error messages
	once sync.Once
}

// childStartTimeout bounds the wait for a child's "starting" and "ready"
// log lines.
const childStartTimeout = 2 * time.Minute

// startChild starts bin with args; its stderr is read for the addresses.
func startChild(ctx context.Context, bin string, args []string) (*child, error) {
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s: %w", bin, err)
	}
	ch := &child{cmd: cmd, starting: make(chan struct{}), ready: make(chan struct{}), exited: make(chan struct{})}
	go ch.readLog(stderr)
	return ch, nil
}

// readLog reads the child's JSON log until it exits, then waits for it.
func (ch *child) readLog(stderr io.Reader) {
	defer close(ch.exited)
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var startingSeen, readySeen bool
	for sc.Scan() {
		line := sc.Text()
		ch.mu.Lock()
		ch.tail = append(ch.tail, line)
		if len(ch.tail) > 20 {
			ch.tail = ch.tail[1:]
		}
		ch.mu.Unlock()
		var rec struct {
			Msg           string `json:"msg"`
			MetricsListen string `json:"metrics_listen"`
			API           string `json:"api"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case rec.Msg == "starting" && rec.MetricsListen != "" && !startingSeen:
			startingSeen = true
			ch.metrics = "http://" + rec.MetricsListen
			close(ch.starting)
		case rec.Msg == "ready" && rec.API != "" && !readySeen:
			readySeen = true
			ch.api = rec.API
			close(ch.ready)
		}
	}
	io.Copy(io.Discard, stderr)
	ch.waitErr = ch.cmd.Wait()
}

func (ch *child) logTail() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return strings.Join(ch.tail, "\n")
}

// waitMetrics waits for the "starting" log line (the metrics address).
func (ch *child) waitMetrics(ctx context.Context) error {
	return ch.waitFor(ctx, ch.starting, "starting")
}

// waitReady waits for the "ready" log line (the API address).
func (ch *child) waitReady(ctx context.Context) error { return ch.waitFor(ctx, ch.ready, "ready") }

func (ch *child) waitFor(ctx context.Context, c <-chan struct{}, what string) error {
	t := time.NewTimer(childStartTimeout)
	defer t.Stop()
	select {
	case <-c:
		return nil
	case <-ch.exited:
		select {
		case <-c: // the line came just before the end
			return nil
		default:
		}
		return fmt.Errorf("bench: the server exited (%v) before it logged %q:\n%s", ch.waitErr, what, ch.logTail())
	case <-t.C:
		return fmt.Errorf("bench: the server logged no %q within %s:\n%s", what, childStartTimeout, ch.logTail())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kill sends SIGKILL and waits for the process to end. Calling it again
// does nothing.
func (ch *child) kill() error { return ch.end(os.Kill) }

// stop sends SIGTERM (a clean shutdown) and waits for the process to end.
func (ch *child) stop() error { return ch.end(sigterm) }

func (ch *child) end(sig os.Signal) error {
	var err error
	ch.once.Do(func() {
		if serr := ch.cmd.Process.Signal(sig); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
			err = fmt.Errorf("bench: signaling the server: %w", serr)
		}
		<-ch.exited
		if sig != os.Kill && ch.waitErr != nil {
			err = fmt.Errorf("bench: the server's exit: %w\n%s", ch.waitErr, ch.logTail())
		}
	})
	return err
}

// sigterm asks a server for a clean shutdown.
var sigterm os.Signal = syscall.SIGTERM
