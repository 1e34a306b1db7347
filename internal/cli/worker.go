package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
)

// Limits of what the worker keeps of a command's output.
const (
	// workerMaxResult is how much of stdout becomes the job's result.
	workerMaxResult = 64 << 10
	// workerWait is the long poll of each lease call.
	workerWait = 30 * time.Second
	// workerLogError bounds the error quoted in a log line.
	workerLogError = 300
)

type workerFlags struct {
	cf           clientFlags
	queues       []string
	types        []string
	concurrency  int
	lease        time.Duration
	name         string
	drainTimeout time.Duration
}

func newWorkerCmd(e *env) *cobra.Command {
	f := &workerFlags{}
	cmd := &cobra.Command{
		Use:   "worker [flags] -- COMMAND [ARGS...]",
		Short: "Run a command for each job: a remote worker in any language",
		Long: `Lease jobs from the server and run COMMAND with ARGS for each (directly, no
shell), up to --concurrency at a time.

The command gets:
  stdin                the job's payload (JSON; null when it has none)
  BEAVER_JOB_ID        the job id
  BEAVER_JOB_TYPE      its type
  BEAVER_JOB_QUEUE     its queue
  BEAVER_JOB_ATTEMPT   this attempt, from 1
and the worker's own environment.

Exit status 0 completes the job with stdout as its result: stored as JSON if
it is valid JSON, else as a JSON string (surrounding white space trimmed);
only the first 64 KiB of stdout are kept. Any other exit status fails the
attempt with the last 1 KiB of stderr as the error; the server retries it
with backoff until its max_attempts. The command runs in a process group of
its own: when the job's timeout passes (or the job is canceled), the whole
group is killed.

The worker heartbeats running jobs, so a job may run longer than --lease.
It logs one line per job on stderr. On SIGINT or SIGTERM it stops taking
jobs and waits for the running commands to finish (at most --drain-timeout
if set, after which they are killed and their jobs run again elsewhere).`,
		Example: `  beaver-raft worker --queue images --concurrency 4 -- ./resize.sh
  beaver-raft worker --type email -- python3 send_email.py
  beaver-raft worker -- /bin/sh -c 'jq -r .url | xargs curl -fsS'`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWorker(cmd.Context(), e, f, args)
		},
	}
	usageFlagErrors(cmd)
	fs := cmd.Flags()
	fs.SetInterspersed(false) // everything after COMMAND is its own
	f.cf.bind(fs)
	fs.StringArrayVar(&f.queues, "queue", []string{"default"}, "queue to take jobs from (repeatable)")
	fs.StringArrayVar(&f.types, "type", nil, "take only jobs of this type (repeatable; default: every type)")
	fs.IntVar(&f.concurrency, "concurrency", 1, "most commands run at once")
	fs.DurationVar(&f.lease, "lease", client.DefaultWorkerLease, "how long a job is held between heartbeats before the server gives it to another worker")
	fs.StringVar(&f.name, "name", "", "name of the worker, shown in the jobs it takes (default HOSTNAME-PID)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 0, "on SIGINT/SIGTERM, kill the commands still running after this long (default: wait for them)")
	return cmd
}

func runWorker(ctx context.Context, e *env, f *workerFlags, argv []string) error {
	switch {
	case f.concurrency < 1:
		return usageErrorf("--concurrency must be at least 1, got %d", f.concurrency)
	case f.lease < time.Second:
		return usageErrorf("--lease must be at least 1s, got %v", f.lease)
	case f.drainTimeout < 0:
		return usageErrorf("--drain-timeout must not be negative, got %v", f.drainTimeout)
	case argv[0] == "":
		return usageErrorf("COMMAND is empty")
	case runtime.GOOS != "linux":
		return fmt.Errorf("worker: running commands is supported on Linux only (it kills each job's process group)")
	}
	if err := f.cf.check(); err != nil {
		return err
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return usageErrorf("worker: %v", err)
	}
	name := f.name
	if name == "" {
		host, _ := os.Hostname()
		name = host + "-" + strconv.Itoa(os.Getpid())
	}

	// Each call is bounded by --timeout beyond the long poll of the lease
	// calls; the transport is tuned like client.New's.
	tr, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		tr = tr.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, IdleConnTimeout: 90 * time.Second}
	}
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = client.MaxIdleConns, client.MaxIdleConns
	hc := &http.Client{Transport: tr, Timeout: workerWait + f.cf.timeout}
	defer hc.CloseIdleConnections()
	c := client.New(f.cf.server, client.WithToken(f.cf.resolvedToken()), client.WithHTTPClient(hc))

	log := &lineWriter{w: e.stderr}
	wr := &commandWorker{
		argv: argv,
		exec: handlers.Exec(handlers.ExecOptions{Allow: []string{argv[0]}, MaxResult: workerMaxResult}),
		log:  log,
	}
	w := &client.Worker{
		Client:       c,
		Queues:       f.queues,
		Types:        f.types,
		Concurrency:  f.concurrency,
		Lease:        f.lease,
		Wait:         workerWait,
		Handler:      wr.handle,
		Name:         name,
		DrainTimeout: f.drainTimeout,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})),
	}
	what := "queue " + strings.Join(f.queues, ", ")
	if len(f.types) > 0 {
		what += ", types " + strings.Join(f.types, ", ")
	}
	log.printf("worker %s: running %s for jobs of %s on %s (concurrency %d)", name, quoteArgs(argv), what, f.cf.server, f.concurrency)
	logged := make(chan struct{})
	stopLog := context.AfterFunc(ctx, func() {
		defer close(logged)
		log.printf("stopping: taking no more jobs, waiting for %s", plural(int(wr.running.Load()), "running command", "running commands"))
	})
	err := w.Run(ctx)
	if !stopLog() {
		<-logged // nothing is written after Run returns
	}
	if err != nil {
		return fmt.Errorf("worker stopped: %w", f.cf.callErr(err))
	}
	log.printf("worker %s stopped", name)
	return nil
}

// commandWorker runs the command of the worker for a job. It runs it through
// the exec handler of package handlers (the one the server's exec job type
// uses), which owns the delicate part: a process group per job, SIGKILL of
// the whole group on ctx done and after the command exits, the first bytes
// of stdout and the last KiB of stderr. The job becomes an exec payload
// with the worker's argv, the job's payload as stdin, and BEAVER_JOB_*.
type commandWorker struct {
	argv    []string
	exec    handlers.Handler // the exec handler, allowed argv[0] only
	log     *lineWriter
	running atomic.Int64
}

// execPayload is the payload the exec handler takes.
type execPayload struct {
	Argv  []string          `json:"argv"`
	Stdin string            `json:"stdin"`
	Env   map[string]string `json:"env"`
}

// handle is the client.HandlerFunc of the worker.
func (wr *commandWorker) handle(ctx context.Context, job api.Job) (json.RawMessage, error) {
	wr.running.Add(1)
	defer wr.running.Add(-1)
	start := time.Now()
	payload := job.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	p, err := json.Marshal(execPayload{
		Argv:  wr.argv,
		Stdin: string(payload),
		Env: map[string]string{
			"BEAVER_JOB_ID":      job.ID,
			"BEAVER_JOB_TYPE":    job.Type,
			"BEAVER_JOB_QUEUE":   job.Queue,
			"BEAVER_JOB_ATTEMPT": strconv.Itoa(job.Attempt),
		},
	})
	if err != nil {
		return nil, err
	}
	out, err := wr.exec.Handle(ctx, &handlers.Job{
		ID: job.ID, Queue: job.Queue, Type: job.Type, Payload: p,
		Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
	})
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case ctx.Err() != nil:
		wr.log.printf("job %s stopped after %v (attempt %d of %d): %v", job.ID, took, job.Attempt, job.MaxAttempts, context.Cause(ctx))
		return nil, err
	case err != nil:
		wr.log.printf("job %s failed in %v (attempt %d of %d): %s", job.ID, took, job.Attempt, job.MaxAttempts, oneLine(err.Error(), workerLogError))
		return nil, err
	}
	wr.log.printf("job %s completed in %v", job.ID, took)
	return commandResult(out), nil
}

// commandResult is the job result of a command's stdout: the JSON value it
// holds, or else a JSON string of it; nil when it is empty.
func commandResult(out []byte) json.RawMessage {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil
	}
	if json.Valid(out) {
		return out
	}
	s, err := json.Marshal(string(out)) // invalid UTF-8 becomes U+FFFD
	if err != nil {
		return nil
	}
	return s
}

// quoteArgs shows argv as a shell would take it.
func quoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// lineWriter serializes the lines that many goroutines write to w.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lineWriter) printf(format string, args ...any) {
	fmt.Fprintf(l, format+"\n", args...)
}
