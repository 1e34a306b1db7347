package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
)

func TestQueuesCommands(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	srv := []string{"--server", s.url}
	if r := run(t, "", append([]string{"queues", "list"}, srv...)...).must(t, 0); r.stdout != "" || !strings.Contains(r.stderr, "no queues") {
		t.Fatalf("list of an empty server: %+v", r)
	}
	r := run(t, "", append([]string{"queues", "pause", "emails", "reports"}, srv...)...).must(t, 0)
	if r.stdout != "emails paused, concurrency -, rate -\nreports paused, concurrency -, rate -\n" {
		t.Fatalf("pause: %q", r.stdout)
	}
	if _, err := s.c.Enqueue(ctx, api.EnqueueRequest{Queue: "emails", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", append([]string{"queues", "set", "emails", "--concurrency", "5", "--rate", "100/1s"}, srv...)...).must(t, 0)
	if r.stdout != "emails paused, concurrency 5, rate 100/1s\n" {
		t.Fatalf("set: %q", r.stdout)
	}
	r = run(t, "", append([]string{"queues", "list"}, srv...)...).must(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "QUEUE") || strings.Join(strings.Fields(lines[1]), " ") != "emails yes 5 100/1s 1 0 0 paused" {
		t.Fatalf("list:\n%s", r.stdout)
	}
	r = run(t, "", append([]string{"status"}, srv...)...).must(t, 0)
	if !strings.Contains(r.stdout, "Paused queues: emails, reports") {
		t.Fatalf("status does not show the paused queues:\n%s", r.stdout)
	}
	run(t, "", append([]string{"queues", "resume", "emails"}, srv...)...).must(t, 0)
	r = run(t, "", append([]string{"queues", "set", "emails", "--rate", "0", "--concurrency", "0"}, srv...)...).must(t, 0)
	if r.stdout != "emails running, concurrency -, rate -\n" {
		t.Fatalf("clearing the limits: %q", r.stdout)
	}
	r = run(t, "", append([]string{"queues", "get", "reports"}, srv...)...).must(t, 0)
	if !strings.Contains(r.stdout, `"paused": true`) {
		t.Fatalf("get: %s", r.stdout)
	}
	r = run(t, "", append([]string{"queues", "list", "--json"}, srv...)...).must(t, 0)
	if n := strings.Count(r.stdout, "\n"); n != 2 || !strings.Contains(r.stdout, `"name":"reports","paused":true`) {
		t.Fatalf("list --json:\n%s", r.stdout)
	}
	// the server's refusal names the field
	r = run(t, "", append([]string{"queues", "set", "emails", "--rate", "5/100us"}, srv...)...).must(t, 1)
	if !strings.Contains(r.stderr, "invalid_argument: rate.period") {
		t.Fatalf("bad rate: %q", r.stderr)
	}
}

func TestQueuesUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"queues", "bogus"},
		{"queues", "pause"},
		{"queues", "get"},
		{"queues", "set", "q"},
		{"queues", "set", "q", "--rate", "fast"},
		{"queues", "set", "q", "--concurrency", "-1"},
		{"queues", "set", "q", "--paused=maybe"},
		{"enqueue", "--type", "a", "--unique-key", "k", "--unique-for", "soon"},
	} {
		r := run(t, "", append(args, "--server", "http://127.0.0.1:1")...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "beaver-raft: ") || r.stdout != "" {
			t.Errorf("%q: exit status %d, stdout %q, stderr %q; want 2 and an error", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, cmd := range [][]string{{"queues"}, {"queues", "list"}, {"queues", "pause"}, {"queues", "resume"}, {"queues", "set"}, {"queues", "get"}} {
		r := run(t, "", append(cmd, "--help")...).must(t, 0)
		if !strings.Contains(r.stdout, "Examples:\n  beaver-raft queues") {
			t.Errorf("%v --help has no example:\n%s", cmd, r.stdout)
		}
	}
}

func TestEnqueueUniqueFor(t *testing.T) {
	s := newTestServer(t, nil)
	r := run(t, "", "enqueue", "--server", s.url, "--type", "t", "--unique-key", "k", "--unique-for", "1h").must(t, 0)
	if r.stdout != "1 pending\n" {
		t.Fatalf("enqueue: %q", r.stdout)
	}
	if j, err := s.c.Get(context.Background(), "1"); err != nil || j.UniqueFor != "1h0m0s" {
		t.Fatalf("job %+v, %v", j, err)
	}
	r = run(t, `{"type":"t","unique_key":"k2","unique_for":"30m"}`+"\n"+`{"type":"t","unique_for":"1h"}`+"\n", "enqueue", "--server", s.url, "--file", "-").must(t, 1)
	if !strings.Contains(r.stderr, "unique_for needs a unique_key") {
		t.Fatalf("file with a bad unique_for: %q", r.stderr)
	}
}
