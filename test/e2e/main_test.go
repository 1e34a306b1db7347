// Package e2e tests the real beaver-raft binary: it is built once, then
// started as a child process on temporary data directories and free ports.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/client"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "beaver-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "beaver-raft")
	// The server binary is built without the race detector, even when the
	// tests run with it: the kill loop starts it a hundred times and a race
	// build starts ten times slower. The packages it is made of run their
	// own tests under -race. BEAVER_E2E_RACE=1 builds it with -race.
	args := []string{"build", "-o", binary}
	if os.Getenv("BEAVER_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../../cmd/beaver-raft")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running server.
type proc struct {
	cmd     *exec.Cmd
	api     string // http://127.0.0.1:port
	metrics string
	logMu   sync.Mutex
	log     strings.Builder
	exited  chan struct{}
	logged  chan struct{} // signalled (cap 1) after each log line
	err     error
}

var readyRe = regexp.MustCompile(`msg=ready .*api=(http://[0-9.:]+) metrics=(http://[0-9.:]+)/metrics`)

// startServer runs `beaver-raft run` with args and waits until it is ready.
func startServer(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	p, err := tryStart(dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	return p
}

func tryStart(dataDir string, args ...string) (*proc, error) {
	return launch(append([]string{"run", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, args...))
}

// launch runs the binary with the full argument list (a `run` command) and
// waits until the server logs that it is ready.
func launch(full []string) (*proc, error) {
	p := &proc{cmd: exec.Command(binary, full...), exited: make(chan struct{}), logged: make(chan struct{}, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.log.WriteString(line + "\n")
			p.logMu.Unlock()
			select {
			case p.logged <- struct{}{}:
			default:
			}
			if m := readyRe.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-ready:
		p.api, p.metrics = a[0], a[1]
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("server exited before ready: %v\n%s", p.err, p.logs())
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, fmt.Errorf("server not ready after 60s:\n%s", p.logs())
	}
}

func (p *proc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits; it returns the exit error.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	return p.err
}

func (p *proc) client(opts ...client.Option) *client.Client {
	return client.New(p.api, opts...)
}

// runCLI runs the binary with args and returns its stdout, stderr and error.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), errb.String(), err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v timed out", args)
		return "", "", nil
	}
}
