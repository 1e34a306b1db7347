package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
)

func TestPeriodicCommands(t *testing.T) {
	s := newTestServer(t, nil)
	r := run(t, "", "periodic", "put", "nightly", "--server", s.url, "--cron", "0 3 * * *", "--type", "report", "--queue", "reports",
		"--payload", `{"kind":"daily"}`, "--catch-up", "all").must(t, 0)
	var p api.Periodic
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.Name != "nightly" || p.CatchUp != "all" || !strings.Contains(string(p.Job.Payload), `"daily"`) {
		t.Fatalf("put printed %q (%v)", r.stdout, err)
	}
	run(t, `{"every":"30s","job":{"type":"ping"}}`, "periodic", "put", "hb", "--server", s.url, "--file", "-").must(t, 0)
	r = run(t, "", "periodic", "list", "--server", s.url).must(t, 0)
	for _, want := range []string{"NAME", "NEXT_RUN", "nightly", "0 3 * * *", "hb", "every 30s", "ping", "api"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, "", "periodic", "get", "hb", "--server", s.url).must(t, 0)
	if !strings.Contains(r.stdout, `"every": "30s"`) {
		t.Fatalf("get printed %s", r.stdout)
	}
	run(t, "", "periodic", "delete", "hb", "--server", s.url).must(t, 0)
	r = run(t, "", "periodic", "get", "hb", "--server", s.url)
	if r.code == 0 || !strings.Contains(r.stderr, "no schedule named hb") {
		t.Fatalf("get after delete: %d %s", r.code, r.stderr)
	}
	// bad input: usage errors before anything is sent, or the server's 400 naming the field
	for _, args := range [][]string{
		{"periodic", "put", "x", "--type", "t"},
		{"periodic", "put", "x", "--every", "soon", "--type", "t"},
		{"periodic", "put", "x", "--every", "1m"},
	} {
		if r := run(t, "", append(args, "--server", s.url)...); r.code != 2 {
			t.Errorf("%v: exit %d, %s", args, r.code, r.stderr)
		}
	}
	if r := run(t, "", "periodic", "put", "x", "--server", s.url, "--cron", "99 * * * *", "--type", "t"); r.code == 0 || !strings.Contains(r.stderr, "cron") {
		t.Errorf("bad cron: %d %s", r.code, r.stderr)
	}
}

func TestEnqueueDependsOn(t *testing.T) {
	s := newTestServer(t, nil)
	run(t, "", "enqueue", "--server", s.url, "--type", "a").must(t, 0)
	r := run(t, "", "enqueue", "--server", s.url, "--type", "b", "--depends-on", "1", "--on-dependency-failure", "run").must(t, 0)
	if !strings.Contains(r.stdout, "2 blocked") {
		t.Fatalf("enqueue printed %q", r.stdout)
	}
	jobs := s.jobs(t)
	if len(jobs) != 2 || jobs[1].State != api.StateBlocked || jobs[1].WaitingFor[0] != "1" || jobs[1].OnDependencyFailure != "run" {
		t.Fatalf("jobs %+v", jobs)
	}
	if r := run(t, "", "enqueue", "--server", s.url, "--type", "b", "--depends-on", "x"); r.code != 2 {
		t.Fatalf("bad id: %d %s", r.code, r.stderr)
	}
	if r := run(t, "", "enqueue", "--server", s.url, "--type", "b", "--depends-on", "7"); r.code == 0 || !strings.Contains(r.stderr, "depends_on[0] names job 7") {
		t.Fatalf("missing dependency: %d %s", r.code, r.stderr)
	}
	if r := run(t, "", "jobs", "list", "--server", s.url, "--state", "blocked").must(t, 0); !strings.Contains(r.stdout, "blocked") {
		t.Fatalf("jobs list --state blocked: %s", r.stdout)
	}
}
