//go:build linux

package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// execPayloadJSON encodes an exec payload.
func execPayloadJSON(t *testing.T, p execPayload) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExecSuccess(t *testing.T) {
	h := Exec(ExecOptions{Allow: []string{"/bin/echo", "cat", "sh"}})
	stdin := "from the stdin field"
	for _, tc := range []struct {
		name    string
		payload execPayload
		want    string // "" means the payload itself
	}{
		{"absolute path", execPayload{Argv: []string{"/bin/echo", "hello", "world"}}, "hello world\n"},
		{"bare name through PATH, payload on stdin", execPayload{Argv: []string{"cat"}}, ""},
		{"stdin field", execPayload{Argv: []string{"cat"}, Stdin: &stdin}, stdin},
		{"env", execPayload{Argv: []string{"sh", "-c", `printf %s "$GREETING-$HOME"`}, Env: map[string]string{"GREETING": "hi"}},
			"hi-" + os.Getenv("HOME")},
		{"no shell: arguments are not expanded", execPayload{Argv: []string{"/bin/echo", "$HOME", "*", "a;b"}}, "$HOME * a;b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := execPayloadJSON(t, tc.payload)
			want := tc.want
			if want == "" {
				want = payload
			}
			res, err := handle(t.Context(), h, "exec", payload)
			if err != nil || string(res) != want {
				t.Errorf("Handle = %q, %v; want %q", res, err, want)
			}
		})
	}
}

func TestExecNoOutputIsNilResult(t *testing.T) {
	res, err := handle(t.Context(), Exec(ExecOptions{Allow: []string{"true"}}), "exec", `{"argv":["true"]}`)
	if res != nil || err != nil {
		t.Errorf("Handle = %q, %v; want nil, nil", res, err)
	}
}

func TestExecTruncatesStdout(t *testing.T) {
	// 1 MiB of output: more than a pipe buffer, so the child blocks unless
	// the rest is read and discarded.
	h := Exec(ExecOptions{Allow: []string{"sh"}, MaxResult: 5})
	res, err := handle(t.Context(), h, "exec", `{"argv":["sh","-c","head -c 1048576 /dev/zero | tr '\\0' x"]}`)
	if err != nil || string(res) != "xxxxx" {
		t.Errorf("Handle = %q, %v; want 5 bytes", res, err)
	}
}

func TestExecNotAllowed(t *testing.T) {
	for _, tc := range []struct {
		allow []string
		argv0 string
	}{
		{nil, "/bin/echo"},
		{[]string{"/bin/echo"}, "echo"},       // a path allows only that path
		{[]string{"/bin/echo"}, "/bin//echo"}, // matched as written
		{[]string{"echo"}, "/bin/echo"},       // a bare name allows only the bare name
		{[]string{"echo"}, "/tmp/evil/echo"},  // ... not any file of that name
		{[]string{"echo"}, "./echo"},
		{[]string{"/bin/echo"}, "/bin/echo2"},
		{[]string{"echo"}, "Echo"},
	} {
		h := Exec(ExecOptions{Allow: tc.allow})
		_, err := handle(t.Context(), h, "exec", `{"argv":["`+tc.argv0+`","hi"]}`)
		if !errors.Is(err, ErrNotAllowed) || !IsPermanent(err) {
			t.Errorf("allow %q, argv[0] %q: %v; want a permanent ErrNotAllowed", tc.allow, tc.argv0, err)
		}
	}
}

func TestExecBadPayload(t *testing.T) {
	h := Exec(ExecOptions{Allow: []string{"/bin/echo"}})
	for _, payload := range []string{
		``, `[]`, `{}`, `{"argv":[]}`, `{"argv":[""]}`, `{"argv":"/bin/echo hi"}`,
		`{"argv":["/bin/echo","a\u0000b"]}`,
		`{"argv":["/bin/echo"],"env":{"A=B":"c"}}`,
		`{"argv":["/bin/echo"],"env":{"":"c"}}`,
		`{"argv":["/bin/echo"],"stdin":5}`,
		`{"argv":["/bin/echo"],"args":["x"]}`,
	} {
		if _, err := handle(t.Context(), h, "exec", payload); !IsPermanent(err) {
			t.Errorf("Handle(%s) = %v, want a permanent error", payload, err)
		}
	}
}

func TestExecFailure(t *testing.T) {
	h := Exec(ExecOptions{Allow: []string{"sh"}})
	res, err := handle(t.Context(), h, "exec", `{"argv":["sh","-c","echo partial; echo first >&2; echo oops >&2; exit 3"]}`)
	var ee *exec.ExitError
	if res != nil || !errors.As(err, &ee) || ee.ExitCode() != 3 || IsPermanent(err) {
		t.Fatalf("Handle = %q, %v; want a retryable exit error with code 3", res, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "exit status 3") || !strings.HasSuffix(msg, "first\noops") {
		t.Errorf("error %q should name the exit status and end with stderr", msg)
	}

	// Only the tail of a long stderr is quoted.
	_, err = handle(t.Context(), h, "exec", `{"argv":["sh","-c","head -c 100000 /dev/zero | tr '\\0' e >&2; echo END >&2; exit 1"]}`)
	if msg := err.Error(); len(msg) > stderrTail+100 || !strings.HasSuffix(msg, "eeeEND") {
		t.Errorf("error of %d bytes, ending %q; want about %d bytes ending with END", len(msg), msg[max(0, len(msg)-20):], stderrTail)
	}

	// A command that is allowed but missing is retried: it may be installed.
	_, err = handle(t.Context(), Exec(ExecOptions{Allow: []string{"/nonexistent/cmd"}}), "exec", `{"argv":["/nonexistent/cmd"]}`)
	if err == nil || IsPermanent(err) {
		t.Errorf("missing command: %v, want a retryable error", err)
	}
}

// makeSubreaper makes this test process adopt orphaned descendants, so the
// test can reap (and so observe the death of) a grandchild whose parent was
// killed.
func makeSubreaper(t *testing.T) {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
}

// reap waits for the adopted orphan pid to end and returns how it ended.
func reap(t *testing.T, pid int) syscall.WaitStatus {
	t.Helper()
	done := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
		done <- ws
	}()
	select {
	case ws := <-done:
		return ws
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
		t.Fatalf("process %d still running 10s after Handle returned", pid)
		return 0
	}
}

// runReportingPID runs script (with "$1" a FIFO) through an allowed sh; the
// script writes a background child's pid into the FIFO and must not exit by
// itself. It returns that pid and the channel of Handle's error.
func runReportingPID(t *testing.T, ctx context.Context, script string) (int, <-chan error) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	payload := execPayloadJSON(t, execPayload{Argv: []string{"sh", "-c", script, "sh", fifo}})
	done := make(chan error, 1)
	go func() {
		_, err := handle(ctx, Exec(ExecOptions{Allow: []string{"sh"}}), "exec", payload)
		done <- err
	}()
	read := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo) // blocks until the script wrote and closed it
		read <- string(b)
	}()
	select {
	case s := <-read:
		pid, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("pid %q: %v", s, err)
		}
		return pid, done
	case err := <-done:
		if w, werr := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); werr == nil { // release the reader
			_ = w.Close()
		}
		<-read
		t.Fatalf("Handle returned before the script reported its child: %v", err)
		return 0, nil
	}
}

func TestExecCancelKillsProcessGroup(t *testing.T) {
	makeSubreaper(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pid, done := runReportingPID(t, ctx, `sleep 100 & echo $! > "$1"; wait`)

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || IsPermanent(err) {
			t.Errorf("Handle after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(drainDelay):
		t.Fatal("Handle did not return promptly after cancel")
	}
	t.Logf("returned %v after cancel", time.Since(start))
	if ws := reap(t, pid); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("grandchild %d ended with %v, want killed by SIGKILL", pid, ws)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) = %v, want ESRCH", pid, err)
	}
}

// A child that exits leaves nothing running: its background processes are
// killed with it, and they do not hold Handle up.
func TestExecKillsLeftoversAfterExit(t *testing.T) {
	makeSubreaper(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	payload := execPayloadJSON(t, execPayload{Argv: []string{"sh", "-c", `sleep 100 & echo $! > "$1"; echo done`, "sh", pidFile}})
	start := time.Now()
	res, err := handle(t.Context(), Exec(ExecOptions{Allow: []string{"sh"}}), "exec", payload)
	if err != nil || string(res) != "done\n" {
		t.Fatalf("Handle = %q, %v", res, err)
	}
	if took := time.Since(start); took >= drainDelay {
		t.Errorf("Handle took %v: the background child held it up", took)
	}
	b, err := os.ReadFile(pidFile) // written before sh exited
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if ws := reap(t, pid); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("background child %d ended with %v, want killed by SIGKILL", pid, ws)
	}
}

func TestExecTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := handle(ctx, Exec(ExecOptions{Allow: []string{"sleep"}}), "exec", `{"argv":["sleep","100"]}`)
	if !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) {
		t.Errorf("Handle = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > drainDelay {
		t.Errorf("Handle took %v after a 100ms timeout", took)
	}
}
