//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
)

// startCLI runs the command line args until cancel is called; wait waits
// for it to return and returns what it did.
func startCLI(t *testing.T, args ...string) (cancel func(), wait func() result, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var r result
	go func() {
		defer close(ch)
		r = runCtx(ctx, "", args...)
	}()
	wait = func() result {
		<-ch
		return r
	}
	t.Cleanup(func() {
		cancel()
		<-ch
	})
	return cancel, wait, ch
}

func final(state string) bool {
	return state == api.StateCompleted || state == api.StateFailed || state == api.StateCanceled
}

func TestWorkerRunsCommand(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	if _, err := s.c.EnqueueBatch(ctx, api.BatchRequest{Jobs: []api.EnqueueRequest{
		{Type: "echo", Payload: json.RawMessage(`{"x": [1, 2]}`)},
		{Type: "bad", MaxAttempts: 1},
		{Type: "env", Queue: "other"},
		{Type: "text"},
		{Type: "quiet"},
		{Type: "echo", Queue: "ignored"},
	}}); err != nil {
		t.Fatal(err)
	}
	script := `case "$BEAVER_JOB_TYPE" in
  echo) cat; exit 0 ;;
  bad) cat >/dev/null; echo "something went wrong" >&2; echo "really wrong" >&2; exit 3 ;;
  env) echo "$BEAVER_JOB_ID $BEAVER_JOB_QUEUE $BEAVER_JOB_ATTEMPT $(cat)" ;;
  text) printf '  not JSON\n' ;;
  quiet) ;;
esac`
	cancel, wait, done := startCLI(t, "worker", "--server", s.url, "--queue", "default", "--queue", "other",
		"--concurrency", "3", "--name", "w1", "--", "/bin/sh", "-c", script)

	jobs := s.waitJobs(t, "5 final jobs", func(jobs []api.Job) bool {
		n := 0
		for _, j := range jobs {
			if final(j.State) {
				n++
			}
		}
		return n == 5
	})
	select {
	case <-done:
		t.Fatal("the worker returned before it was stopped")
	default:
	}
	cancel()
	r := wait().must(t, 0)

	want := []struct {
		state, result, lastError string
	}{
		{api.StateCompleted, `{"x":[1,2]}`, ""},
		{api.StateFailed, "", "exit status 3: something went wrong\nreally wrong"},
		{api.StateCompleted, `"3 other 1 null"`, ""},
		{api.StateCompleted, `"not JSON"`, ""},
		{api.StateCompleted, "", ""},
		{api.StatePending, "", ""},
	}
	for i, w := range want {
		j := jobs[i]
		res := ""
		if len(j.Result) > 0 {
			res = compact(t, j.Result)
		}
		if j.State != w.state || res != w.result || !strings.HasSuffix(j.LastError, w.lastError) {
			t.Errorf("job %s: state %s, result %s, last_error %q; want %+v", j.ID, j.State, j.Result, j.LastError, w)
		}
		if final(j.State) && j.Worker != "w1" {
			t.Errorf("job %s: worker %q", j.ID, j.Worker)
		}
	}
	for _, line := range []string{
		"job 1 completed in ",
		"job 2 failed in ",
		"(attempt 1 of 1): exec /bin/sh: exit status 3: something went wrong really wrong\n",
		"worker w1 stopped\n",
	} {
		if !strings.Contains(r.stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout: %q", r.stdout)
	}
}

// TestWorkerWaitsForRunningCommands stops the worker while a command runs:
// the worker takes no more jobs, lets the command finish, reports it, and
// returns.
func TestWorkerWaitsForRunningCommands(t *testing.T) {
	s := newTestServer(t, nil)
	dir := t.TempDir()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	for _, p := range []string{started, release} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.c.Enqueue(context.Background(), api.EnqueueRequest{Type: "slow"}); err != nil {
		t.Fatal(err)
	}
	cancel, wait, done := startCLI(t, "worker", "--server", s.url, "--", "/bin/sh", "-c", `echo started > "$0"; cat "$1"`, started, release)

	// Opening a FIFO blocks until the other end opens it too.
	withDeadline(t, "the command to start", func() {
		b, err := os.ReadFile(started)
		if err != nil || string(b) != "started\n" {
			t.Errorf("started: %q %v", b, err)
		}
	})
	cancel() // the worker stops taking jobs
	if _, err := s.c.Enqueue(context.Background(), api.EnqueueRequest{Type: "slow"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("the worker returned while its command was running")
	default:
	}
	withDeadline(t, "the command to read its release", func() {
		if err := os.WriteFile(release, []byte(`{"done": true}`), 0o600); err != nil {
			t.Error(err)
		}
	})
	var r result
	withDeadline(t, "the worker to return", func() { r = wait() })
	r.must(t, 0)
	if !strings.Contains(r.stderr, "stopping: taking no more jobs, waiting for 1 running command\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	jobs := s.jobs(t)
	if jobs[0].State != api.StateCompleted || compact(t, jobs[0].Result) != `{"done":true}` {
		t.Errorf("job 1: %+v", jobs[0])
	}
	if jobs[1].State != api.StatePending {
		t.Errorf("job 2 was taken after the stop: %+v", jobs[1])
	}
}

// withDeadline runs f, failing the test if it takes more than 30s.
func withDeadline(t *testing.T, what string, f func()) {
	t.Helper()
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		f()
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestWorkerJobTimeout kills a command (and what it started) at the job's
// timeout: the attempt fails.
func TestWorkerJobTimeout(t *testing.T) {
	s := newTestServer(t, nil)
	if _, err := s.c.Enqueue(context.Background(), api.EnqueueRequest{Type: "hang", Timeout: "100ms", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	cancel, wait, _ := startCLI(t, "worker", "--server", s.url, "--", "/bin/sh", "-c", "sleep 60 & sleep 60; wait")
	jobs := s.waitJobs(t, "the job to fail", func(jobs []api.Job) bool { return final(jobs[0].State) })
	cancel()
	r := wait().must(t, 0)
	if j := jobs[0]; j.State != api.StateFailed || !strings.Contains(j.LastError, "timeout after 100ms") {
		t.Errorf("job: %+v", j)
	}
	if !strings.Contains(r.stderr, "job 1 stopped after ") || !strings.Contains(r.stderr, "job timeout") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestWorkerRefused(t *testing.T) {
	s := newTestServer(t, func(o *httpapi.Options) { o.Tokens = []string{"s3cret"} })
	t.Setenv(envToken, "wrong")
	r := run(t, "", "worker", "--server", s.url, "--", "cat").must(t, 1)
	if !strings.Contains(r.stderr, "beaver-raft: worker stopped: unauthorized: invalid bearer token (give the server's token with --token or BEAVER_TOKEN)\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// With the token from the environment, it works until stopped.
	t.Setenv(envToken, "s3cret")
	if _, err := s.c.Enqueue(context.Background(), api.EnqueueRequest{Type: "t", Payload: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	cancel, wait, _ := startCLI(t, "worker", "--server", s.url, "--", "cat")
	s.waitJobs(t, "the job to complete", func(jobs []api.Job) bool { return jobs[0].State == api.StateCompleted })
	cancel()
	wait().must(t, 0)
}

func TestCommandResult(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		" \n":             "",
		`{"a": 1}` + "\n": `{"a": 1}`,
		"42":              "42",
		"hello\n":         `"hello"`,
		"a\x00\xffb":      `"a\u0000\ufffdb"`,
	} {
		if got := string(commandResult([]byte(in))); got != want {
			t.Errorf("commandResult(%q) = %s, want %s", in, got, want)
		}
	}
}
