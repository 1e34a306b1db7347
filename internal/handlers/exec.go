package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// ErrNotAllowed is the (permanent) error of an exec job whose argv[0] is not
// in the allow-list.
var ErrNotAllowed = errors.New("handlers: command not in the exec allow-list")

// stderrTail is how much of the end of stderr an exec error quotes.
const stderrTail = 1 << 10

// ExecOptions configures the exec handler.
type ExecOptions struct {
	// Allow lists the commands a job may run, matched against argv[0]
	// exactly. An entry with a slash is an absolute path run as is. An
	// entry without one is a bare name, allowing exactly that bare
	// argv[0], which is looked up in the server's PATH; it does not allow
	// some other path with that base name ("echo" allows ["echo", ...],
	// not ["/tmp/x/echo", ...]). An empty list allows nothing.
	Allow []string
	// MaxResult is the most bytes of stdout kept as the job result; the
	// rest is read and discarded. 0 means DefaultMaxResult.
	MaxResult int
}

// Exec returns the exec handler, which runs a command directly (no shell).
// Its payload is
//
//	{"argv": ["gzip", "-c"], "stdin": "optional text", "env": {"LANG": "C"}}
//
// argv[0] must be in opts.Allow; otherwise the error is permanent and wraps
// ErrNotAllowed. The child gets the server's environment plus env, and on
// stdin the stdin string or, without one, the job's whole payload. Its stdout,
// cut to MaxResult bytes, is the result. A non-zero exit fails the attempt
// with an error quoting the exit status and the tail of stderr.
//
// The child runs in a process group of its own. When ctx ends, the whole
// group is killed with SIGKILL and Handle returns ctx.Err() (wrapped) once
// the child is reaped. When the child exits by itself, whatever it left
// running in its group is killed too: no process of the job outlives Handle,
// except one that left the group on purpose (setsid), whose hold on the
// output pipes is cut after a short delay.
//
// The process-group handling needs Linux; elsewhere every exec job fails
// permanently.
func Exec(opts ExecOptions) Handler {
	h := &execHandler{allow: slices.Clone(opts.Allow), maxResult: opts.MaxResult}
	if h.maxResult <= 0 {
		h.maxResult = DefaultMaxResult
	}
	return h
}

type execHandler struct {
	allow     []string
	maxResult int
}

type execPayload struct {
	Argv  []string          `json:"argv"`
	Stdin *string           `json:"stdin"`
	Env   map[string]string `json:"env"`
}

// command is one process to run.
type command struct {
	path   string   // the executable
	argv   []string // argv[0] as the job gave it
	env    []string
	stdin  []byte
	maxOut int
}

func (h *execHandler) Handle(ctx context.Context, job *Job) ([]byte, error) {
	var p execPayload
	if err := decodePayload(job, &p); err != nil {
		return nil, err
	}
	if len(p.Argv) == 0 || p.Argv[0] == "" {
		return nil, badPayload(job, errors.New(`"argv" must name a command`))
	}
	if slices.ContainsFunc(p.Argv, func(a string) bool { return strings.ContainsRune(a, 0) }) {
		return nil, badPayload(job, errors.New(`"argv" must not contain NUL bytes`))
	}
	name := p.Argv[0]
	if !slices.Contains(h.allow, name) {
		return nil, Permanent(fmt.Errorf("%s: %w: %q", job.Type, ErrNotAllowed, name))
	}
	c := command{path: name, argv: p.Argv, env: os.Environ(), stdin: job.Payload, maxOut: h.maxResult}
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		v := p.Env[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, badPayload(job, fmt.Errorf(`"env": invalid variable %q`, k))
		}
		c.env = append(c.env, k+"="+v)
	}
	if p.Stdin != nil {
		c.stdin = []byte(*p.Stdin)
	}
	if !strings.Contains(name, "/") {
		path, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("exec %s: %w", name, err)
		}
		c.path = path
	}

	stdout, stderr, err := run(ctx, c)
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("exec %s: %w", name, ctx.Err())
	case err != nil:
		if tail := strings.TrimSpace(strings.ToValidUTF8(string(stderr), "\uFFFD")); tail != "" {
			return nil, fmt.Errorf("exec %s: %w: %s", name, err, tail)
		}
		return nil, fmt.Errorf("exec %s: %w", name, err)
	case len(stdout) == 0:
		return nil, nil
	}
	return stdout, nil
}

// headBuffer keeps the first max bytes written to it and discards the rest,
// never blocking the writer.
type headBuffer struct {
	max int
	buf []byte
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}
