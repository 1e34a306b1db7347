package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/internal/bench"
)

// runBench runs the bench command with args and returns its stdout.
func runBench(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}
	cmd := newBenchCmd(e)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestBenchJSON(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	out, err := runBench(t, "enqueue-batch", "-n", "300", "-b", "100", "-c", "2", "--workers", "4", "--json", "--data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if res.Scenario != bench.EnqueueBatch || res.Jobs != 300 || res.Requests != 3 || res.Counts.Pending != 300 || res.Batch != 100 {
		t.Fatalf("%+v", res)
	}
}

func TestBenchNewScenariosText(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for sc, want := range map[string][]string{
		"stream":         {"stream: 100 jobs in", "1 stream (POST /v1/jobs/stream)", "latency  line", "100 pending"},
		"noop-http":      {"noop-http: 100 jobs in", "noop HTTP handler in this process", "100 requests answered by the noop handler"},
		"enqueue-client": {"enqueue-client: 100 jobs in", "calling client.Enqueue on one shared client", "100 pending"},
	} {
		out, err := runBench(t, sc, "-n", "100", "--workers", "4", "--data-dir", t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", sc, err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: missing %q in\n%s", sc, w, out)
			}
		}
	}
}

func TestBenchText(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	out, err := runBench(t, "--scenario", "e2e", "-n", "200", "-b", "50", "--workers", "8", "--data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"e2e: 200 jobs in", "in-process server (sync always, 8 workers)", "latency  enqueue", "200 completed"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestBenchArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "which scenario"},
		{[]string{"enqueue", "--scenario", "e2e"}, "scenario given twice"},
		{[]string{"fast"}, `unknown scenario "fast"`},
		{[]string{"e2e", "--duration", "1s"}, "--duration applies to enqueue"},
		{[]string{"stream", "--duration", "1s"}, "--duration applies to enqueue"},
		{[]string{"noop-http", "--cluster", "3"}, "noop-http measures a handler in this process"},
		{[]string{"enqueue", "e2e"}, "accepts at most 1 arg"},
	} {
		if _, err := runBench(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.want)
		}
	}
}
