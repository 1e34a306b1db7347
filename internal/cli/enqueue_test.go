package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
)

// writeFile writes content to a file of a new temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var summaryRE = regexp.MustCompile(`^enqueued (\d+) jobs? in \d+\.\d\ds \(\d+ jobs/s\)(, (\d+) duplicates?.*)?\n$`)

func TestEnqueueFile(t *testing.T) {
	const array = `[
  {"type": "a", "payload": {"n": 1}},
  {"type": "b", "queue": "q", "priority": 5},

  {"type": "a", "delay": "1h", "max_attempts": 3, "timeout": "5s"},
  {"type": "u", "unique_key": "k"},
  {"type": "u", "unique_key": "k"}
]
`
	const lines = `{"type": "a", "payload": {"n": 1}}
{"type": "b", "queue": "q", "priority": 5}

{"type": "a", "delay": "1h", "max_attempts": 3, "timeout": "5s"}
   ` + "\r" + `
{"type": "u", "unique_key": "k"}
{"type": "u", "unique_key": "k"}`
	for _, tc := range []struct {
		name, content string
		stdin         bool
	}{
		{"array file", array, false},
		{"lines file", lines, false},
		{"array stdin", array, true},
		{"lines stdin", lines, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, nil)
			args := []string{"enqueue", "--server", s.url, "--batch", "2", "--file"}
			stdin := ""
			if tc.stdin {
				args, stdin = append(args, "-"), tc.content
			} else {
				args = append(args, writeFile(t, "jobs", tc.content))
			}
			r := run(t, stdin, args...).must(t, 0)
			m := summaryRE.FindStringSubmatch(r.stdout)
			if m == nil || m[1] != "5" || m[3] != "1" || r.stderr != "" {
				t.Fatalf("summary %q, stderr %q", r.stdout, r.stderr)
			}
			jobs := s.jobs(t)
			if len(jobs) != 4 {
				t.Fatalf("%d jobs on the server, want 4", len(jobs))
			}
			j := jobs[0]
			if j.Type != "a" || compact(t, j.Payload) != `{"n":1}` || j.State != api.StatePending {
				t.Errorf("job 1: %+v", j)
			}
			if j := jobs[1]; j.Queue != "q" || j.Priority != 5 {
				t.Errorf("job 2: %+v", j)
			}
			if j := jobs[2]; j.State != api.StateScheduled || j.MaxAttempts != 3 || j.Timeout != "5s" {
				t.Errorf("job 3: %+v", j)
			}
		})
	}
}

func TestEnqueueFileIDsAndJSON(t *testing.T) {
	s := newTestServer(t, nil)
	file := writeFile(t, "jobs.jsonl", strings.Repeat(`{"type":"x"}`+"\n", 5))
	r := run(t, "", "enqueue", "--server", s.url, "--batch", "2", "--file", file, "--ids").must(t, 0)
	if r.stdout != "1\n2\n3\n4\n5\n" {
		t.Errorf("--ids: %q", r.stdout)
	}
	r = run(t, "", "enqueue", "--server", s.url, "--batch", "3", "--file", file, "--json").must(t, 0)
	var res api.BatchResponse
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || strings.Join(res.IDs, ",") != "6,7,8,9,10" || len(res.Duplicates) != 5 {
		t.Errorf("--json: %v %q", err, r.stdout)
	}
}

func TestEnqueueFileInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string // lines of stderr
	}{
		{"bad JSON line", "{\"type\":\"a\"}\n\n{\"type\":\"a\",}\n{\"type\":\"a\"}\n", []string{
			`jobs:3: invalid JSON: invalid character '}' looking for beginning of object key string`,
		}},
		{"unknown field", "{\"type\":\"a\"}\n{\"type\":\"a\",\"x\":1}\n", []string{`jobs:2: unknown field "x"`}},
		{"no type", "{\"type\":\"a\"}\n{\"queue\":\"q\"}\n", []string{`jobs:2: type is required`}},
		{"several", "{\"typo\":1}\n{\"type\":\"a\"}\n42\n{\"type\":\"a\",\"priority\":\"high\"}\n{\"type\":\"a\"} {\"type\":\"b\"}\n", []string{
			`jobs:1: unknown field "typo"`,
			`jobs:3: a job must be a JSON object, got a number`,
			`jobs:4: priority: expected a 32-bit integer, got a string`,
			`jobs:5: invalid JSON: data after the job object`,
		}},
		{"checks", strings.Join([]string{
			`{"type":"a","delay":"soon"}`,
			`{"type":"a","timeout":"0s"}`,
			`{"type":"a","queue":"no spaces"}`,
			`{"type":"a","delay":"1m","run_at":"2030-01-01T00:00:00Z"}`,
			`{"type":"a","run_at":"tomorrow"}`,
			`{"type":"a","max_attempts":70000}`,
			`{"type":"a","payload":{"a":}}`,
		}, "\n"), []string{
			`jobs:1: delay: time: invalid duration "soon"`,
			`jobs:2: timeout must be positive, got "0s"`,
			`jobs:3: queue must match [a-zA-Z0-9_.-]{1,128}`,
			`jobs:4: run_at and delay are exclusive: give one of them`,
			`jobs:5: run_at: expected an RFC 3339 time such as 2026-01-02T15:04:05Z: `,
			`jobs:6: max_attempts must be between 1 and 65535`,
			`jobs:7: invalid JSON: invalid character '}' looking for beginning of value`,
		}},
		{"array element", "[\n  {\"type\": \"a\"},\n  {\"type\": \"a\",\n   \"bogus\": true},\n  {\"type\": \"b\"}, {\"queue\": \"q\"}\n]\n", []string{
			`jobs:3: element 1: unknown field "bogus"`,
			`jobs:5: element 3: type is required`,
		}},
		{"array syntax", "[\n  {\"type\": \"a\"},\n  {\"type\": \"a\"}\n  {\"type\": \"b\"}\n]\n", []string{
			`jobs:4: invalid JSON: `,
		}},
		{"array cut", "[\n  {\"type\": \"a\"},\n  {\"type\": \"a\"", []string{
			`jobs:3: invalid JSON: unexpected end of input`,
		}},
		{"after array", "[{\"type\": \"a\"}]\n[]", []string{
			`jobs:2: invalid JSON: data after the end of the array`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, nil)
			file := writeFile(t, "jobs", tc.content)
			r := run(t, "", "enqueue", "--server", s.url, "--file", file).must(t, 1)
			got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(got) != len(tc.want)+1 {
				t.Fatalf("stderr:\n%s\nwant:\n%s", r.stderr, strings.Join(tc.want, "\n"))
			}
			for i, w := range tc.want {
				if w := filepath.Join(filepath.Dir(file), w); !strings.HasPrefix(got[i], w) {
					t.Errorf("line %d: %q, want %q", i, got[i], w)
				}
			}
			last := fmt.Sprintf(": %d invalid job", len(tc.want))
			if !strings.Contains(got[len(got)-1], last) || !strings.HasSuffix(got[len(got)-1], "; nothing was enqueued") {
				t.Errorf("last line %q", got[len(got)-1])
			}
			if n := len(s.jobs(t)); n != 0 {
				t.Fatalf("%d jobs were enqueued", n)
			}
		})
	}
}

func TestEnqueueFileManyProblems(t *testing.T) {
	s := newTestServer(t, nil)
	r := run(t, strings.Repeat("{}\n", 25), "enqueue", "--server", s.url, "--file", "-").must(t, 1)
	want := "stdin:1: type is required\n"
	if !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "stdin:10: type is required\nstdin: and 15 more invalid jobs\nbeaver-raft: stdin: 25 invalid jobs; nothing was enqueued\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	r = run(t, "\n  \n", "enqueue", "--server", s.url, "--file", "-").must(t, 1)
	if r.stderr != "beaver-raft: stdin: no jobs in the file\n" {
		t.Errorf("empty: %q", r.stderr)
	}
	r = run(t, "", "enqueue", "--server", s.url, "--file", filepath.Join(t.TempDir(), "none.json")).must(t, 1)
	if !strings.Contains(r.stderr, "no such file or directory") {
		t.Errorf("missing file: %q", r.stderr)
	}
}

// TestEnqueueFileRefusedMidway fills the server (max_queue_depth 3) so that
// it refuses the second batch of 2 with 429: the message says exactly what
// was enqueued, and it is what the server holds.
func TestEnqueueFileRefusedMidway(t *testing.T) {
	for _, tc := range []struct {
		name, content, want, hint string
	}{
		{
			"lines", "{\"type\":\"a\"}\n{\"type\":\"a\"}\n\n{\"type\":\"a\"}\n{\"type\":\"a\"}\n{\"type\":\"a\"}\n",
			"enqueued 2 of 5 jobs (lines 1-2); chunk of lines 4-5 failed: queue_full: queue full: the server holds 2 unfinished jobs and its limit is 3; retry later; nothing after line 2 was enqueued",
			"to enqueue the rest: tail -n +4 ",
		},
		{
			"array", `[{"type":"a"}, {"type":"a"}, {"type":"a"}, {"type":"a"}, {"type":"a"}]`,
			"enqueued 2 of 5 jobs (elements 0-1); chunk of elements 2-3 failed: queue_full: queue full: the server holds 2 unfinished jobs and its limit is 3; retry later; nothing after element 1 was enqueued",
			"to enqueue the rest: jq -c '.[2:]' ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, func(o *httpapi.Options) { o.MaxQueueDepth = 3 })
			file := writeFile(t, "jobs", tc.content)
			r := run(t, "", "enqueue", "--server", s.url, "--batch", "2", "--file", file, "--ids").must(t, 1)
			if r.stdout != "1\n2\n" {
				t.Errorf("ids: %q", r.stdout)
			}
			want := "beaver-raft: " + tc.want + "\n" + tc.hint + file + " | beaver-raft enqueue --file -\n"
			if r.stderr != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
			}
			if st := s.status(t); st.Jobs.Pending != 2 || len(s.jobs(t)) != 2 {
				t.Errorf("the server holds %+v", st.Jobs)
			}
		})
	}
	// Nothing enqueued at all: no line range, no hint.
	s := newTestServer(t, func(o *httpapi.Options) { o.MaxBatch = 1 })
	r := run(t, "", "enqueue", "--server", s.url, "--file", writeFile(t, "jobs", `[{"type":"a"}, {"type":"a"}]`)).must(t, 1)
	want := "beaver-raft: enqueued 0 of 2 jobs; chunk of elements 0-1 failed: payload_too_large: jobs holds 2 jobs, more than the limit of 1 per batch (a smaller --batch may help); nothing was enqueued\n"
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

// TestEnqueueFileConnectionLost drops the connection of the second batch:
// the message says that batch may or may not have been enqueued.
func TestEnqueueFileConnectionLost(t *testing.T) {
	s := newTestServer(t, nil)
	var batches atomic.Int64
	proxy := newProxy(t, s, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/jobs/batch" && batches.Add(1) == 2 {
			panic(http.ErrAbortHandler) // the connection is closed without an answer
		}
		return false
	})
	file := writeFile(t, "jobs", strings.Repeat(`{"type":"a"}`+"\n", 5))
	r := run(t, "", "enqueue", "--server", proxy, "--batch", "2", "--file", file).must(t, 1)
	re := regexp.MustCompile(`^beaver-raft: enqueued 2 of 5 jobs \(lines 1-2\); chunk of lines 3-4 failed: request to http://\S+ failed: .*; no answer came, so that chunk may or may not have been enqueued; nothing after line 4 was sent\n$`)
	if !re.MatchString(r.stderr) {
		t.Errorf("stderr %q", r.stderr)
	}
	if n := len(s.jobs(t)); n != 2 {
		t.Errorf("%d jobs on the server", n)
	}
}

// newProxy serves s's API behind intercept, which handles a request by
// itself when it returns true.
func newProxy(t *testing.T, s *testServer, intercept func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	rp.Transport = tr
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestEnqueueOne(t *testing.T) {
	s := newTestServer(t, nil)
	srv := []string{"--server", s.url}
	r := run(t, "", append([]string{"enqueue", "--type", "email", "--payload", `{"to":"ada@example.com"}`, "--queue", "emails",
		"--priority", "7", "--max-attempts", "3", "--job-timeout", "1m", "--unique-key", "welcome-ada"}, srv...)...).must(t, 0)
	if r.stdout != "1 pending\n" {
		t.Errorf("enqueue: %q", r.stdout)
	}
	r = run(t, "", append([]string{"enqueue", "--type", "email", "--unique-key", "welcome-ada", "--queue", "emails"}, srv...)...).must(t, 0)
	if r.stdout != "1 pending (duplicate)\n" {
		t.Errorf("duplicate: %q", r.stdout)
	}
	r = run(t, "", append([]string{"enqueue", "--type", "later", "--delay", "1h", "--json"}, srv...)...).must(t, 0)
	var res api.EnqueueResponse
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.ID != "2" || res.State != api.StateScheduled || res.Duplicate {
		t.Errorf("--json: %v %q", err, r.stdout)
	}
	runAt := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if r = run(t, "", append([]string{"enqueue", "--type", "at", "--run-at", runAt, "--ids"}, srv...)...).must(t, 0); r.stdout != "3\n" {
		t.Errorf("--ids: %q", r.stdout)
	}
	payload := writeFile(t, "p.json", `["from", "a", "file"]`)
	run(t, "", append([]string{"enqueue", "--type", "f", "--payload", "@" + payload}, srv...)...).must(t, 0)
	run(t, `{"from":"stdin"}`, append([]string{"enqueue", "--type", "f", "--payload", "@-"}, srv...)...).must(t, 0)

	jobs := s.jobs(t)
	if len(jobs) != 5 {
		t.Fatalf("%d jobs", len(jobs))
	}
	j := jobs[0]
	if j.Type != "email" || j.Queue != "emails" || j.Priority != 7 || j.MaxAttempts != 3 || j.Timeout != "1m0s" || j.UniqueKey != "welcome-ada" || compact(t, j.Payload) != `{"to":"ada@example.com"}` {
		t.Errorf("job 1: %+v", j)
	}
	if j := jobs[2]; j.State != api.StateScheduled || j.RunAt.UTC().Format(time.RFC3339) != runAt {
		t.Errorf("job 3: %+v", j)
	}
	if compact(t, jobs[3].Payload) != `["from","a","file"]` || compact(t, jobs[4].Payload) != `{"from":"stdin"}` {
		t.Errorf("payloads %s %s", jobs[3].Payload, jobs[4].Payload)
	}

	// The server's refusal: its code and message.
	r = run(t, "", append([]string{"enqueue", "--type", "bad type"}, srv...)...).must(t, 1)
	if r.stderr != "beaver-raft: invalid_argument: type must match [a-zA-Z0-9_.:/-]{1,128}\n" {
		t.Errorf("refused: %q", r.stderr)
	}
}

func TestProgressBar(t *testing.T) {
	var b strings.Builder
	p := &progressBar{w: &b, total: 10}
	p.show(0)
	p.show(5)
	p.show(10)
	p.clear()
	want := "\r[" + strings.Repeat(" ", 30) + "] 0/10 jobs" +
		"\r[" + strings.Repeat("=", 14) + ">" + strings.Repeat(" ", 15) + "] 5/10 jobs" +
		"\r[" + strings.Repeat("=", 30) + "] 10/10 jobs\r\033[K"
	if b.String() != want {
		t.Errorf("bar %q\nwant %q", b.String(), want)
	}
	var nilBar *progressBar
	nilBar.show(1)
	nilBar.clear()
}

// --stream sends the jobs of a file on one enqueue stream and prints their
// ids in the file's order; a job the server refuses is reported by its line and the others
// are enqueued.
func TestEnqueueFileStream(t *testing.T) {
	s := newTestServer(t, nil)
	file := writeFile(t, "jobs.jsonl", strings.Repeat(`{"type":"x"}`+"\n", 3)+`{"type":"x","payload":{"n":4}}`+"\n")
	r := run(t, "", "enqueue", "--server", s.url, "--file", file, "--stream", "--ids").must(t, 0)
	ids := strings.Fields(r.stdout)
	if len(ids) != 4 {
		t.Fatalf("--ids: %q", r.stdout)
	}
	jobs := s.jobs(t)
	if len(jobs) != 4 {
		t.Fatalf("jobs on the server: %+v", jobs)
	}
	for _, j := range jobs {
		if j.ID == ids[3] && compact(t, j.Payload) != `{"n":4}` {
			t.Fatalf("the id printed for line 4 is job %+v", j)
		}
	}
	// a dependency on a job that does not exist passes the file's checks;
	// the server refuses it
	bad := writeFile(t, "bad.jsonl", `{"type":"x"}`+"\n"+`{"type":"x","depends_on":["999"]}`+"\n"+`{"type":"y"}`+"\n")
	r = run(t, "", "enqueue", "--server", s.url, "--file", bad, "--stream")
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Base(bad)+":2: invalid_argument") || !strings.Contains(r.stderr, "enqueued 2 of 3 jobs") {
		t.Fatalf("a refused line: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if jobs := s.jobs(t); len(jobs) != 6 || jobs[5].Type != "y" {
		t.Fatalf("jobs after a refused line: %d", len(jobs))
	}
	if r := run(t, "", "enqueue", "--server", s.url, "--type", "x", "--stream"); r.code != 2 || !strings.Contains(r.stderr, "--stream") {
		t.Fatalf("--stream without --file: code %d, stderr %q", r.code, r.stderr)
	}
	dep := writeFile(t, "dep.jsonl", `{"type":"x"}`+"\n"+`{"type":"x","depends_on_index":[0]}`+"\n")
	r = run(t, "", "enqueue", "--server", s.url, "--file", dep, "--stream")
	if r.code != 2 || !strings.Contains(r.stderr, "depends_on_index") {
		t.Fatalf("depends_on_index with --stream: code %d, stderr %q", r.code, r.stderr)
	}
}
