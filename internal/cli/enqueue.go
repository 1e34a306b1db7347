package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// defaultEnqueueBatch is the default number of jobs per batch request.
const defaultEnqueueBatch = 1000

// maxProblems bounds the invalid jobs reported of one file.
const maxProblems = 10

type enqueueFlags struct {
	cf      clientFlags
	file    string
	batch   int
	ids     bool
	jsonOut bool
	stream  bool

	// One job.
	typ, payload, queue, delay, runAt, uniqueKey, jobTimeout string
	uniqueFor                                                string
	priority                                                 int32
	maxAttempts                                              int
	dependsOn                                                []string
	onDepFailure                                             string
}

// oneJobFlags describe the job enqueued without --file.
var oneJobFlags = []string{"type", "payload", "queue", "priority", "delay", "run-at", "unique-key", "unique-for", "max-attempts", "job-timeout", "depends-on", "on-dependency-failure"}

func newEnqueueCmd(e *env) *cobra.Command {
	f := &enqueueFlags{}
	cmd := &cobra.Command{
		Use:   "enqueue (--type TYPE [flags] | --file FILE)",
		Short: "Enqueue one job, or many from a file",
		Long: `Enqueue one job described by flags, or many jobs from a file.

One job: --type is required, the other job flags are optional. It prints the
job id and its state ("42 pending", with "(duplicate)" when a job holding
the same --unique-key already existed: an unfinished one, or one finished
within its --unique-for window), or only the id with --ids,
or the server's answer with --json.

Many jobs: --file FILE (- for stdin) holds a JSON array of job objects, or
JSON Lines (one job object per line; blank lines are ignored). A job object
has the fields of POST /v1/jobs (docs/api.md): type (required), queue,
payload, priority, run_at, delay, max_attempts, timeout, unique_key,
depends_on, depends_on_index (earlier jobs of the same batch),
on_dependency_failure, unique_for.

The whole file is read and checked first (strict JSON, no unknown fields,
type required, valid durations and names): if any job is bad, every bad one
is reported as FILE:LINE: problem and nothing is sent. The jobs are then sent
in batches of --batch (each batch is one durable write, all or none). If the
server refuses a batch or the connection fails, enqueue stops and says
exactly which lines were enqueued and which were not.

With --stream the jobs go on one enqueue stream (POST /v1/jobs/stream)
instead: each job is its own durable write with its own answer, so a job
the server refuses is reported as FILE:LINE: problem and the others are
still enqueued. depends_on_index needs batches and is refused with --stream.`,
		Example: `  beaver-raft enqueue --type email --payload '{"to":"ada@example.com"}'
  beaver-raft enqueue --type report --queue nightly --delay 1h --unique-key report-2026-11-26
  beaver-raft enqueue --type publish --depends-on 12,13
  beaver-raft enqueue --file examples/jobs.json
  seq 1000 | sed 's/.*/{"type":"noop","payload":&}/' | beaver-raft enqueue --file -
  seq 1000 | sed 's/.*/{"type":"noop","payload":&}/' | beaver-raft enqueue --file - --stream`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.ids && f.jsonOut {
				return usageErrorf("--ids and --json are exclusive")
			}
			if f.stream && f.file == "" {
				return usageErrorf("--stream sends the jobs of --file: give --file")
			}
			if f.file != "" {
				for _, name := range oneJobFlags {
					if cmd.Flags().Changed(name) {
						return usageErrorf("--%s describes one job: it cannot be used with --file", name)
					}
				}
				if f.batch < 1 {
					return usageErrorf("--batch must be at least 1, got %d", f.batch)
				}
				return enqueueFile(cmd.Context(), e, f)
			}
			if f.typ == "" {
				return usageErrorf("give --type for one job, or --file for many (see 'beaver-raft enqueue --help')")
			}
			return enqueueOne(cmd.Context(), e, f)
		},
	}
	usageFlagErrors(cmd)
	fs := cmd.Flags()
	f.cf.bind(fs)
	fs.StringVarP(&f.file, "file", "f", "", "enqueue the jobs of this file: a JSON array or JSON Lines (- for stdin)")
	fs.IntVar(&f.batch, "batch", defaultEnqueueBatch, "jobs per request with --file (at most the server's limits.max_batch)")
	fs.BoolVar(&f.stream, "stream", false, "with --file: send the jobs on one enqueue stream, each with its own answer, instead of in batches")
	fs.BoolVar(&f.ids, "ids", false, "print the ids of the jobs, one per line, instead of a summary")
	fs.BoolVar(&f.jsonOut, "json", false, "print the server's answer as JSON")
	fs.StringVar(&f.typ, "type", "", "type of the job: the handler that runs it (required without --file)")
	fs.StringVar(&f.payload, "payload", "", "payload of the job: JSON text, or @FILE to read it from a file (default null)")
	fs.StringVar(&f.queue, "queue", "", "queue of the job (default: the server's default queue, \"default\")")
	fs.Int32Var(&f.priority, "priority", 0, "priority of the job: higher runs first")
	fs.StringVar(&f.delay, "delay", "", "run the job no sooner than this from now, e.g. 10m")
	fs.StringVar(&f.runAt, "run-at", "", "run the job no sooner than this RFC 3339 time, e.g. 2026-11-26T14:00:00Z")
	fs.StringVar(&f.uniqueKey, "unique-key", "", "while an unfinished job has this key, return it instead of adding a job")
	fs.StringVar(&f.uniqueFor, "unique-for", "", "keep --unique-key reserved this long after the job finished, e.g. 1h")
	fs.IntVar(&f.maxAttempts, "max-attempts", 0, "attempts before the job fails (default: the server's, 25)")
	fs.StringVar(&f.jobTimeout, "job-timeout", "", "time limit of each attempt, e.g. 5m (default: the server's, 30s)")
	fs.StringSliceVar(&f.dependsOn, "depends-on", nil, "ids of jobs this one waits for, e.g. 12,13: it runs once they all completed")
	fs.StringVar(&f.onDepFailure, "on-dependency-failure", "", "cancel (default) or run: what happens when a dependency fails or is canceled")
	return cmd
}

// enqueueOne enqueues the job described by the flags.
func enqueueOne(ctx context.Context, e *env, f *enqueueFlags) error {
	req := api.EnqueueRequest{
		Queue: f.queue, Type: f.typ, Priority: f.priority, Delay: f.delay,
		MaxAttempts: f.maxAttempts, Timeout: f.jobTimeout, UniqueKey: f.uniqueKey, UniqueFor: f.uniqueFor,
		DependsOn: f.dependsOn, OnDependencyFailure: f.onDepFailure,
	}
	if f.uniqueFor != "" {
		if _, err := time.ParseDuration(f.uniqueFor); err != nil {
			return usageErrorf("--unique-for: %v", err)
		}
	}
	for _, id := range f.dependsOn {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return usageErrorf("--depends-on: %q is not a job id", id)
		}
	}
	switch f.onDepFailure {
	case "", "cancel", "run":
	default:
		return usageErrorf("--on-dependency-failure must be cancel or run, got %q", f.onDepFailure)
	}
	if f.payload != "" {
		p, err := readPayload(e, f.payload)
		if err != nil {
			return err
		}
		req.Payload = p
	}
	if f.delay != "" {
		if _, err := time.ParseDuration(f.delay); err != nil {
			return usageErrorf("--delay: %v", err)
		}
	}
	if f.jobTimeout != "" {
		if _, err := time.ParseDuration(f.jobTimeout); err != nil {
			return usageErrorf("--job-timeout: %v", err)
		}
	}
	if f.runAt != "" {
		t, err := time.Parse(time.RFC3339Nano, f.runAt)
		if err != nil {
			return usageErrorf("--run-at: expected an RFC 3339 time such as 2026-11-26T14:00:00Z: %v", err)
		}
		req.RunAt = t
	}
	c, err := f.cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	var res api.EnqueueResponse
	err = f.cf.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.Enqueue(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case f.jsonOut:
		return writeJSONLine(e.stdout, res)
	case f.ids:
		fmt.Fprintln(e.stdout, res.ID)
	default:
		dup := ""
		if res.Duplicate {
			dup = " (duplicate)"
		}
		fmt.Fprintf(e.stdout, "%s %s%s\n", res.ID, res.State, dup)
	}
	return nil
}

// readPayload reads --payload: JSON text, or @FILE (@- for stdin).
func readPayload(e *env, p string) (json.RawMessage, error) {
	text := []byte(p)
	if name, ok := strings.CutPrefix(p, "@"); ok {
		var err error
		if name == "-" {
			text, err = io.ReadAll(e.stdin)
		} else {
			text, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, usageErrorf("--payload: %v", err)
		}
	}
	var raw json.RawMessage
	if err := json.Unmarshal(text, &raw); err != nil {
		return nil, usageErrorf("--payload is not valid JSON (%v); quote a string, e.g. --payload '\"text\"'", err)
	}
	return raw, nil
}

// enqueueFile enqueues the jobs of --file.
func enqueueFile(ctx context.Context, e *env, f *enqueueFlags) error {
	jf := &jobFile{name: f.file, path: f.file}
	var data []byte
	var err error
	if f.file == "-" {
		jf.name, jf.path = "stdin", ""
		data, err = io.ReadAll(e.stdin)
	} else {
		data, err = os.ReadFile(f.file)
	}
	if err != nil {
		return err
	}
	jobs, array, problems := parseJobs(data)
	if n := len(problems); n > 0 {
		for _, p := range problems[:min(n, maxProblems)] {
			fmt.Fprintf(e.stderr, "%s:%d: %s\n", jf.name, p.line, p.msg)
		}
		if n > maxProblems {
			fmt.Fprintf(e.stderr, "%s: and %d more invalid jobs\n", jf.name, n-maxProblems)
		}
		return fmt.Errorf("%s: %s; nothing was enqueued", jf.name, plural(n, "invalid job", "invalid jobs"))
	}
	if len(jobs) == 0 {
		return fmt.Errorf("%s: no jobs in the file", jf.name)
	}
	jf.array, jf.jobs = array, jobs
	if f.stream {
		return enqueueStream(ctx, e, f, jf)
	}

	c, err := f.cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	var bar *progressBar
	if isTerminal(e.stderr) {
		bar = &progressBar{w: e.stderr, total: len(jobs)}
		bar.show(0)
		defer bar.clear()
	}
	var all api.BatchResponse
	dups := 0
	start := time.Now()
	reqs := make([]api.EnqueueRequest, 0, min(f.batch, len(jobs)))
	for done := 0; done < len(jobs); {
		end := min(done+f.batch, len(jobs))
		reqs = reqs[:0]
		for _, j := range jobs[done:end] {
			reqs = append(reqs, j.req)
		}
		var res api.BatchResponse
		err := f.cf.call(ctx, func(ctx context.Context) (err error) {
			res, err = c.EnqueueBatch(ctx, api.BatchRequest{Jobs: reqs})
			return err
		})
		if err == nil && len(res.IDs) != end-done {
			err = fmt.Errorf("the server answered %d ids for %d jobs", len(res.IDs), end-done)
		}
		if err != nil {
			bar.clear()
			return jf.partial(done, end, err)
		}
		for _, d := range res.Duplicates {
			if d {
				dups++
			}
		}
		if f.ids {
			bar.clear()
			for _, id := range res.IDs {
				fmt.Fprintln(e.stdout, id)
			}
		}
		if f.jsonOut {
			all.IDs = append(all.IDs, res.IDs...)
			all.Duplicates = append(all.Duplicates, res.Duplicates...)
		}
		done = end
		bar.show(done)
	}
	elapsed := time.Since(start)
	bar.clear()
	switch {
	case f.jsonOut:
		return writeJSONLine(e.stdout, all)
	case f.ids:
		return nil
	}
	msg := fmt.Sprintf("enqueued %s in %.2fs (%.0f jobs/s)", plural(len(jobs), "job", "jobs"), elapsed.Seconds(), float64(len(jobs))/max(elapsed.Seconds(), 1e-9))
	if dups > 0 {
		msg += fmt.Sprintf(", %s (a job holding the same unique_key existed)", plural(dups, "duplicate", "duplicates"))
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

// span names jobs[i:j] of the file: "lines 3001-4000" (JSON Lines) or
// "elements 3000-3999" (an array, indexed from 0).
func (f *jobFile) span(i, j int) string {
	if f.array {
		if j-i == 1 {
			return fmt.Sprintf("element %d", i)
		}
		return fmt.Sprintf("elements %d-%d", i, j-1)
	}
	a, b := f.jobs[i].line, f.jobs[j-1].line
	if a == b {
		return fmt.Sprintf("line %d", a)
	}
	return fmt.Sprintf("lines %d-%d", a, b)
}

// position names job i of the file: "line 3000" or "element 2999".
func (f *jobFile) position(i int) string {
	if f.array {
		return fmt.Sprintf("element %d", i)
	}
	return fmt.Sprintf("line %d", f.jobs[i].line)
}

// partial is the error of a send that stopped: jobs[:done] are enqueued,
// the batch jobs[done:end] failed with err, nothing after it was sent.
//
// When the server answered with an error, the batch was refused as a whole
// (batches are all or none). When it did not answer (the connection failed,
// the time limit passed), the batch may have been enqueued or not, and the
// message says so.
func (f *jobFile) partial(done, end int, err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "enqueued %d of %d jobs", done, len(f.jobs))
	if done > 0 {
		fmt.Fprintf(&b, " (%s)", f.span(0, done))
	}
	fmt.Fprintf(&b, "; chunk of %s failed: %v", f.span(done, end), err)
	var ce *client.Error
	if !errors.As(err, &ce) {
		fmt.Fprintf(&b, "; no answer came, so that chunk may or may not have been enqueued; nothing after %s was sent", f.position(end-1))
		return &requestError{msg: b.String(), err: err}
	}
	if ce.Code == api.CodePayloadTooLarge && end-done > 1 {
		b.WriteString(" (a smaller --batch may help)")
	}
	if done > 0 {
		fmt.Fprintf(&b, "; nothing after %s was enqueued", f.position(done-1))
	} else {
		b.WriteString("; nothing was enqueued")
	}
	if f.path != "" && done > 0 {
		if f.array {
			fmt.Fprintf(&b, "\nto enqueue the rest: jq -c '.[%d:]' %s | beaver-raft enqueue --file -", done, shellQuote(f.path))
		} else {
			fmt.Fprintf(&b, "\nto enqueue the rest: tail -n +%d %s | beaver-raft enqueue --file -", f.jobs[done].line, shellQuote(f.path))
		}
	}
	return &requestError{msg: b.String(), err: err}
}

var shellSafe = regexp.MustCompile(`^[a-zA-Z0-9_./+:=@%-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// plural is "1 job" or "5 jobs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws "[=====>    ] 3000/5000 jobs" on one terminal line. A
// nil *progressBar draws nothing.
type progressBar struct {
	w     io.Writer
	total int
	drawn bool
}

const progressWidth = 30

func (p *progressBar) show(n int) {
	if p == nil {
		return
	}
	filled := n * progressWidth / max(p.total, 1)
	bar := strings.Repeat("=", filled)
	if filled < progressWidth {
		if filled > 0 {
			bar = bar[:filled-1] + ">"
		}
		bar += strings.Repeat(" ", progressWidth-filled)
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d jobs", bar, n, p.total)
	p.drawn = true
}

// clear erases the bar's line, to write something else.
func (p *progressBar) clear() {
	if p == nil || !p.drawn {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	p.drawn = false
}
