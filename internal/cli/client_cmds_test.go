package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is the HTTP API over a local replica in a temporary directory.
type testServer struct {
	url string
	rep *local.Replica
	c   *client.Client // a client of it (with the first token, if any)
}

func newTestServer(t *testing.T, mod func(o *httpapi.Options)) *testServer {
	t.Helper()
	rep, err := local.Open(local.Options{Dir: t.TempDir(), NoSnapshotOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	o := httpapi.Options{Retry: backoff.Policy{Base: time.Millisecond, Max: time.Millisecond}}
	if mod != nil {
		mod(&o)
	}
	a := httpapi.New(o)
	a.SetReplica(rep)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	var opts []client.Option
	if len(o.Tokens) > 0 {
		opts = append(opts, client.WithToken(o.Tokens[0]))
	}
	c := client.New(srv.URL, opts...)
	t.Cleanup(c.Close)
	return &testServer{url: srv.URL, rep: rep, c: c}
}

// jobs returns every job of the server, in id order.
func (s *testServer) jobs(t *testing.T) []api.Job {
	t.Helper()
	var all []api.Job
	opts := client.ListOptions{Limit: 1000}
	for {
		page, err := s.c.List(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Jobs...)
		if page.NextCursor == "" {
			return all
		}
		opts.Cursor = page.NextCursor
	}
}

// waitJobs waits until cond holds for the server's jobs and returns them.
// It wakes up on each change that may matter (enqueues and reports), never
// by polling.
func (s *testServer) waitJobs(t *testing.T, what string, cond func(jobs []api.Job) bool) []api.Job {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		changed := s.rep.Changed()
		jobs := s.jobs(t)
		if cond(jobs) {
			return jobs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; jobs: %+v", what, jobs)
		}
	}
}

// status returns the server's status.
func (s *testServer) status(t *testing.T) api.Status {
	t.Helper()
	st, err := s.c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// result is what one command line did.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line args in-process with stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCtx(t.Context(), stdin, args...)
}

func runCtx(ctx context.Context, stdin string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := Run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// must fails the test unless the command exited with code.
func (r result) must(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func TestStatus(t *testing.T) {
	s := newTestServer(t, func(o *httpapi.Options) { o.Version = "v9.9.9" })
	ctx := context.Background()
	if _, err := s.c.EnqueueBatch(ctx, api.BatchRequest{Jobs: []api.EnqueueRequest{
		{Type: "a"}, {Type: "a"}, {Type: "b", Queue: "emails", Delay: "1h"}, {Type: "c", Queue: "emails"},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Cancel(ctx, "4"); err != nil {
		t.Fatal(err)
	}

	r := run(t, "", "status", "--server", s.url).must(t, 0)
	for _, want := range []string{
		"Server:", s.url, "Role:", "single", "Version:", "v9.9.9", "Applied LSN:",
		"WAL:", "Snapshots:", "Recovery:", "no torn tail",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	// QUEUE PENDING SCHEDULED IN_FLIGHT BLOCKED COMPLETED FAILED CANCELED TOTAL
	for _, row := range []string{
		`(?m)^\s*QUEUE\s+PENDING\s+SCHEDULED\s+IN_FLIGHT\s+BLOCKED\s+COMPLETED\s+FAILED\s+CANCELED\s+TOTAL$`,
		`(?m)^\s*\(all\)\s+2\s+1\s+0\s+0\s+0\s+0\s+1\s+4$`,
		`(?m)^\s*default\s+2\s+0\s+0\s+0\s+0\s+0\s+0\s+2$`,
		`(?m)^\s*emails\s+0\s+1\s+0\s+0\s+0\s+0\s+1\s+2$`,
	} {
		if !regexp.MustCompile(row).MatchString(r.stdout) {
			t.Errorf("status lacks a row matching %s:\n%s", row, r.stdout)
		}
	}

	r = run(t, "", "status", "--server", s.url, "--json").must(t, 0)
	if strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("status --json is not one line: %q", r.stdout)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Role != "single" || st.Jobs.Pending != 2 || st.Jobs.Canceled != 1 || st.Queues["emails"].Scheduled != 1 || st.Version != "v9.9.9" {
		t.Fatalf("status --json: %+v", st)
	}
}

func TestJobsCommands(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	if _, err := s.c.EnqueueBatch(ctx, api.BatchRequest{Jobs: []api.EnqueueRequest{
		{Type: "a", Payload: json.RawMessage(`{"n":1}`)}, {Type: "b"}, {Type: "a", Queue: "q"}, {Type: "a", Delay: "1h"}, {Type: "c"},
	}}); err != nil {
		t.Fatal(err)
	}
	srv := []string{"--server", s.url}

	// A table with a header and a row per job.
	r := run(t, "", append([]string{"jobs", "list"}, srv...)...).must(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 || !regexp.MustCompile(`^ID\s+QUEUE\s+TYPE\s+STATE\s+ATTEMPT\s+RUN_AT/FINISHED_AT\s+LAST_ERROR$`).MatchString(lines[0]) {
		t.Fatalf("jobs list:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`^4\s+default\s+a\s+scheduled\s+0/25\s+\d{4}-\d\d-\d\dT`).MatchString(lines[4]) {
		t.Errorf("row of job 4: %q", lines[4])
	}

	// Filters, and JSON lines.
	r = run(t, "", append([]string{"jobs", "list", "--type", "a", "--state", "pending", "--json"}, srv...)...).must(t, 0)
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var j api.Job
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		ids = append(ids, j.ID)
	}
	if strings.Join(ids, ",") != "1,3" {
		t.Errorf("list --type a --state pending: %v", ids)
	}

	// One page, then every page.
	r = run(t, "", append([]string{"jobs", "list", "--limit", "2", "--json"}, srv...)...).must(t, 0)
	if n := strings.Count(r.stdout, "\n"); n != 2 || !strings.Contains(r.stderr, "more jobs: add --all, or --cursor ") {
		t.Errorf("list --limit 2: %d jobs, stderr %q", n, r.stderr)
	}
	r = run(t, "", append([]string{"jobs", "list", "--limit", "2", "--all", "--queue", "default"}, srv...)...).must(t, 0)
	if n := strings.Count(r.stdout, "\n"); n != 5 || r.stderr != "" {
		t.Errorf("list --all: %d lines, stderr %q:\n%s", n, r.stderr, r.stdout)
	}
	r = run(t, "", append([]string{"jobs", "list", "--queue", "none"}, srv...)...).must(t, 0)
	if r.stdout != "" || r.stderr != "no jobs\n" {
		t.Errorf("empty list: %q %q", r.stdout, r.stderr)
	}

	// get: pretty JSON.
	r = run(t, "", append([]string{"jobs", "get", "1"}, srv...)...).must(t, 0)
	var j api.Job
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.ID != "1" || compact(t, j.Payload) != `{"n":1}` {
		t.Fatalf("get: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stdout, "\n  \"state\": \"pending\",\n") {
		t.Errorf("get is not indented:\n%s", r.stdout)
	}
	r = run(t, "", append([]string{"jobs", "get", "99"}, srv...)...).must(t, 1)
	if r.stderr != "beaver-raft: not_found: job 99 not found\n" {
		t.Errorf("get 99: %q", r.stderr)
	}

	// cancel and retry print the new state.
	if r = run(t, "", append([]string{"jobs", "cancel", "2"}, srv...)...).must(t, 0); r.stdout != "2 canceled\n" {
		t.Errorf("cancel: %q", r.stdout)
	}
	r = run(t, "", append([]string{"jobs", "cancel", "2"}, srv...)...).must(t, 1)
	if !strings.HasPrefix(r.stderr, "beaver-raft: conflict: ") {
		t.Errorf("cancel twice: %q", r.stderr)
	}
	if r = run(t, "", append([]string{"jobs", "retry", "2"}, srv...)...).must(t, 0); r.stdout != "2 pending\n" {
		t.Errorf("retry: %q", r.stdout)
	}
	if r = run(t, "", append([]string{"jobs", "retry", "4", "--json"}, srv...)...).must(t, 0); !strings.Contains(r.stdout, `"state":"pending"`) {
		t.Errorf("retry --json: %q", r.stdout)
	}
	// Many ids: each is tried, the failures are reported.
	r = run(t, "", append([]string{"jobs", "cancel", "3", "2", "99", "5"}, srv...)...).must(t, 1)
	if r.stdout != "3 canceled\n2 canceled\n5 canceled\n" || !strings.Contains(r.stderr, "not_found: job 99 not found") ||
		!strings.Contains(r.stderr, "could not cancel 1 of 4 jobs") {
		t.Errorf("cancel many: %q %q", r.stdout, r.stderr)
	}
	if st := s.status(t); st.Jobs.Canceled != 3 || st.Jobs.Pending != 2 {
		t.Errorf("counts after cancel and retry: %+v", st.Jobs)
	}
}

func TestAuthToken(t *testing.T) {
	s := newTestServer(t, func(o *httpapi.Options) { o.Tokens = []string{"s3cret"} })
	t.Setenv(envToken, "")
	t.Setenv(envServer, "")

	r := run(t, "", "status", "--server", s.url).must(t, 1)
	want := "beaver-raft: unauthorized: missing bearer token: send Authorization: Bearer <token> (give the server's token with --token or BEAVER_TOKEN)\n"
	if r.stderr != want {
		t.Errorf("no token: %q, want %q", r.stderr, want)
	}
	r = run(t, "", "status", "--server", s.url, "--token", "wrong").must(t, 1)
	if !strings.Contains(r.stderr, "unauthorized: invalid bearer token") {
		t.Errorf("wrong token: %q", r.stderr)
	}
	run(t, "", "status", "--server", s.url, "--token", "s3cret").must(t, 0)
	run(t, "", "enqueue", "--server", s.url, "--token", "s3cret", "--type", "a").must(t, 0)

	// From the environment, server and token both.
	t.Setenv(envToken, "s3cret")
	t.Setenv(envServer, s.url)
	run(t, "", "status").must(t, 0)
	run(t, "", "jobs", "list").must(t, 0)
	if r := run(t, "", "enqueue", "--type", "b", "--ids"); r.code != 0 || r.stdout != "2\n" {
		t.Errorf("enqueue with the env token: %+v", r)
	}
	// A given --token wins over the environment, even empty.
	run(t, "", "status", "--token", "").must(t, 1)
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	r := run(t, "", "status", "--server", url).must(t, 1)
	if !strings.HasPrefix(r.stderr, "beaver-raft: cannot reach the server at "+url+" (see --server or BEAVER_SERVER): dial tcp") {
		t.Errorf("unreachable: %q", r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--bogus"},
		{"status", "extra"},
		{"status", "--timeout", "0s"},
		{"enqueue"},
		{"enqueue", "--type", "a", "--payload", "{bad"},
		{"enqueue", "--type", "a", "--delay", "soon"},
		{"enqueue", "--type", "a", "--job-timeout", "x"},
		{"enqueue", "--type", "a", "--run-at", "tomorrow"},
		{"enqueue", "--file", "x.json", "--type", "a"},
		{"enqueue", "--file", "x.json", "--batch", "0"},
		{"enqueue", "--type", "a", "--ids", "--json"},
		{"jobs", "bogus"},
		{"jobs", "get"},
		{"jobs", "get", "1", "2"},
		{"jobs", "cancel"},
		{"jobs", "list", "--state", "done"},
		{"jobs", "list", "--limit", "0"},
		{"jobs", "list", "--limit", "1001"},
		{"jobs", "list", "--bogus"},
		{"worker"},
		{"worker", "--concurrency", "0", "--", "true"},
		{"worker", "--", "/no/such/command"},
	} {
		r := run(t, "", append(args, "--server", "http://127.0.0.1:1")...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "beaver-raft: ") || r.stdout != "" {
			t.Errorf("%q: exit status %d, stdout %q, stderr %q; want 2 and an error", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, cmd := range [][]string{{"enqueue"}, {"status"}, {"jobs"}, {"jobs", "list"}, {"jobs", "get"}, {"jobs", "cancel"}, {"jobs", "retry"}, {"worker"}} {
		r := run(t, "", append(cmd, "--help")...).must(t, 0)
		if !strings.Contains(r.stdout, "Examples:\n  beaver-raft "+cmd[0]) {
			t.Errorf("%v --help has no example:\n%s", cmd, r.stdout)
		}
	}
}

// compact is raw JSON without white space.
func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return b.String()
}
