package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tiny are the options of a small run against an in-process server.
func tiny(t *testing.T, sc Scenario) Options {
	return Options{Scenario: sc, Jobs: 200, Clients: 3, Batch: 30, LeaseMax: 25, Workers: 8, DataDir: t.TempDir()}
}

func runOK(t *testing.T, o Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.JobsPerSec <= 0 || res.Elapsed <= 0 {
		t.Errorf("jobs/s %v in %v", res.JobsPerSec, res.Elapsed)
	}
	if res.Server == nil || res.Server.Error != "" || res.Server.RSS <= 0 {
		t.Errorf("server usage: %+v", res.Server)
	}
	return res
}

func TestEnqueue(t *testing.T) {
	res := runOK(t, tiny(t, Enqueue))
	if res.Jobs != 200 || res.Requests != 200 || res.Counts.Pending != 200 {
		t.Fatalf("jobs %d, requests %d, counts %+v", res.Jobs, res.Requests, res.Counts)
	}
	if l := res.Latency[0]; l.Name != "request" || l.Count != 200 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Fatalf("latency %+v", l)
	}
	if res.Server.Source != "self" || res.Target != "in-process" {
		t.Fatalf("target %q, usage %+v", res.Target, res.Server)
	}
	// 200 records, each in one fdatasync or sharing one
	if w := res.WAL; w == nil || w.Fsyncs < 1 || w.Fsyncs > 200 || w.RecordsPerFsync < 1 || w.FsyncAvg <= 0 {
		t.Fatalf("wal %+v", res.WAL)
	}
}

func TestEnqueueBatch(t *testing.T) {
	res := runOK(t, tiny(t, EnqueueBatch))
	// 200 jobs in batches of 30: 6 full and one of 20
	if res.Jobs != 200 || res.Requests != 7 || res.Counts.Pending != 200 {
		t.Fatalf("jobs %d, requests %d, counts %+v", res.Jobs, res.Requests, res.Counts)
	}
	if len(res.Latency) != 2 || res.Latency[1].Name != "job" || res.Latency[1].Max > res.Latency[0].Max {
		t.Fatalf("latency %+v", res.Latency)
	}
}

func TestNoopHTTP(t *testing.T) {
	res := runOK(t, tiny(t, NoopHTTP))
	if res.Jobs != 200 || res.Requests != 200 || res.Answered != 200 {
		t.Fatalf("jobs %d, requests %d, answered %d", res.Jobs, res.Requests, res.Answered)
	}
	if l := res.Latency[0]; l.Name != "request" || l.Count != 200 || l.P50 <= 0 {
		t.Fatalf("latency %+v", l)
	}
	if res.Server.Source != "self" || !strings.HasPrefix(res.Target, "noop HTTP handler") || res.WAL != nil || res.Counts.Pending != 0 {
		t.Fatalf("target %q, usage %+v, wal %+v, counts %+v", res.Target, res.Server, res.WAL, res.Counts)
	}
}

func TestEnqueueClient(t *testing.T) {
	res := runOK(t, tiny(t, EnqueueClient))
	if res.Jobs != 200 || res.Requests != 200 || res.Counts.Pending != 200 {
		t.Fatalf("jobs %d, requests %d, counts %+v", res.Jobs, res.Requests, res.Counts)
	}
}

func TestStream(t *testing.T) {
	for _, clients := range []int{1, 3} {
		t.Run(fmt.Sprint(clients), func(t *testing.T) {
			o := tiny(t, Stream)
			o.Clients = clients
			res := runOK(t, o)
			if res.Jobs != 200 || res.Requests != clients || res.Counts.Pending != 200 {
				t.Fatalf("jobs %d, requests %d, counts %+v", res.Jobs, res.Requests, res.Counts)
			}
			if l := res.Latency[0]; l.Name != "line" || l.Count != 200 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
				t.Fatalf("latency %+v", l)
			}
		})
	}
}

// A stream's error answer fails the run and says which line and why.
func TestStreamErrorAnswer(t *testing.T) {
	o := tiny(t, Stream)
	o.Jobs = 2
	o.PayloadSize = int(config.MaxPayloadDefault) + 1
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "line 1 answered payload_too_large") {
		t.Fatalf("err %v, want line 1's payload_too_large", err)
	}
}

func TestCheckAnswer(t *testing.T) {
	for _, tc := range []struct {
		answer, want string
	}{
		{`{"id":"12","state":"pending","duplicate":false}` + "\n", ""},
		{`{"state":"pending","id":"12"}`, ""},
		{`{"error":{"code":"queue_full","message":"line 7: full","line":7}}`, "line 7 answered queue_full: line 7: full"},
		{`{"error":{"code":"unavailable","message":"shutting down"}}`, "the server ended the stream: unavailable"},
		{`{"state":"pending"}`, "without an id"},
		{`nope`, "not JSON"},
	} {
		err := checkAnswer([]byte(tc.answer))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err %v, want %q", tc.answer, err, tc.want)
		}
	}
}

func TestEnqueueForDuration(t *testing.T) {
	o := tiny(t, Enqueue)
	o.Duration = 100 * time.Millisecond
	res := runOK(t, o)
	if res.Jobs == 0 || res.Counts.Pending != res.Jobs {
		t.Fatalf("jobs %d, counts %+v", res.Jobs, res.Counts)
	}
}

func TestE2E(t *testing.T) {
	res := runOK(t, tiny(t, E2E))
	if res.Jobs != 200 || res.Counts.Completed != 200 || res.Counts.Pending+res.Counts.InFlight != 0 {
		t.Fatalf("jobs %d, counts %+v", res.Jobs, res.Counts)
	}
}

func TestRemote(t *testing.T) {
	for _, mode := range []RemoteMode{RemoteLean, RemoteWorker} {
		t.Run(string(mode), func(t *testing.T) {
			o := tiny(t, Remote)
			o.RemoteMode = mode
			res := runOK(t, o)
			if res.Jobs != 200 || res.Counts.Completed != 200 || res.Fill == nil || res.Fill.Jobs != 200 {
				t.Fatalf("jobs %d, counts %+v, fill %+v", res.Jobs, res.Counts, res.Fill)
			}
			if mode == RemoteLean && (len(res.Latency) != 2 || res.Latency[0].Name != "lease" || res.Latency[1].Name != "ack") {
				t.Fatalf("latency %+v", res.Latency)
			}
		})
	}
}

// TestRunningServer drives a server through its URL, reading its usage from
// its metrics and waiting for completions by polling its status.
func TestRunningServer(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.Tokens = []string{"s3cret"}
	s, err := server.New(server.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	for _, sc := range []Scenario{Enqueue, EnqueueClient, Stream, E2E} {
		t.Run(string(sc), func(t *testing.T) {
			o := tiny(t, sc)
			o.Server, o.Token = "http://"+s.Addr().String(), "s3cret"
			o.Metrics = "http://" + s.MetricsAddr().String() + "/metrics"
			res := runOK(t, o)
			if res.Server.Source != "metrics" || res.Target != o.Server || res.WAL == nil {
				t.Fatalf("target %q, usage %+v", res.Target, res.Server)
			}
			want := res.Counts.Pending
			if sc == E2E {
				want = res.Counts.Completed
			}
			if want != 200 {
				t.Fatalf("counts %+v", res.Counts)
			}
		})
	}
	t.Run("bad token", func(t *testing.T) {
		o := tiny(t, Enqueue)
		o.Server = "http://" + s.Addr().String()
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err %v, want a 401", err)
		}
	})
	t.Run("stream bad token", func(t *testing.T) {
		o := tiny(t, Stream)
		o.Server, o.Token = "http://"+s.Addr().String(), "wrong"
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err %v, want a 401", err)
		}
	})
}

// buildBinary builds beaver-raft into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build beaver-raft:", err)
	}
	bin := filepath.Join(t.TempDir(), "beaver-raft")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/beaver-raft/beaver-raft/cmd/beaver-raft").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the beaver-raft binary")
	}
	o := tiny(t, Recovery)
	o.Jobs = 2000
	o.Batch = 300
	bin := buildBinary(t)
	o.Binary = bin
	res := runOK(t, o)
	rec := res.Recovery
	if rec == nil || rec.Jobs != 2000 || res.Counts.Pending != 2000 || res.Fill.Jobs != 2000 {
		t.Fatalf("recovery %+v, counts %+v, fill %+v", rec, res.Counts, res.Fill)
	}
	// 2000 jobs in batches of 300: 7 records, and no snapshot was taken
	if rec.RecordsReplayed != 7 || rec.SnapshotJobs != 0 {
		t.Fatalf("recovery %+v", rec)
	}
	if rec.ServerDuration <= 0 || rec.WallToReady < rec.ServerDuration || res.Server.Source != "proc" {
		t.Fatalf("recovery %+v, usage %+v", rec, res.Server)
	}
	entries, err := os.ReadDir(o.DataDir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("data dir left behind: %v %v", entries, err)
	}

	// ChildArgs reach the server's command line
	o = tiny(t, Recovery)
	o.Binary = bin
	o.ChildArgs = []string{"--no-such-flag"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("err %v, want the child's complaint about --no-such-flag", err)
	}
}

func TestRecoveryChildFails(t *testing.T) {
	o := tiny(t, Recovery)
	o.Binary = "/bin/false"
	if _, err := exec.LookPath(o.Binary); err != nil {
		t.Skip(err)
	}
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("err %v, want the server exited", err)
	}
}

func TestKeep(t *testing.T) {
	o := tiny(t, Enqueue)
	o.Keep = true
	res := runOK(t, o)
	if res.DataDir == "" {
		t.Fatal("no data dir reported")
	}
	if _, err := os.Stat(filepath.Join(res.DataDir, "wal")); err != nil {
		t.Fatal(err)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no scenario"},
		{Options{Scenario: "nope"}, `unknown scenario "nope"`},
		{Options{Scenario: Enqueue, Clients: -1}, "clients must be at least 1"},
		{Options{Scenario: E2E, Duration: time.Second}, "--duration applies to enqueue"},
		{Options{Scenario: Stream, Duration: time.Second}, "--duration applies to enqueue"},
		{Options{Scenario: NoopHTTP, Server: "http://x"}, "noop-http measures a handler in this process"},
		{Options{Scenario: NoopHTTP, Cluster: 3}, "noop-http measures a handler in this process"},
		{Options{Scenario: Recovery, Server: "http://x"}, "leave out --server"},
		{Options{Scenario: Enqueue, Sync: "sometimes"}, `sync "sometimes"`},
		{Options{Scenario: Remote, RemoteMode: "fast"}, `remote mode "fast"`},
	} {
		_, err := Run(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestPayload(t *testing.T) {
	for _, n := range []int{1, 2, 9, 10, 11, 100, 4096} {
		p := Payload(n)
		if len(p) != max(n, 2) || !json.Valid(p) {
			t.Errorf("Payload(%d) = %q (%d bytes)", n, p, len(p))
		}
	}
}

func TestSummarize(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(100-i) * time.Millisecond
	}
	l := summarize("x", d)
	if l.Count != 100 || l.P50 != 50*time.Millisecond || l.P90 != 90*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Fatalf("%+v", l)
	}
	if l := summarize("empty", nil); l.Count != 0 || l.Max != 0 {
		t.Fatalf("%+v", l)
	}
}

func TestUsage(t *testing.T) {
	self, err := selfUsage()
	if err != nil || self.CPU <= 0 || self.RSS <= 0 || self.HWM < self.RSS {
		t.Fatalf("self %+v, %v", self, err)
	}
	pid, err := pidUsage(os.Getpid())
	if err != nil || pid.RSS <= 0 || pid.HWM < pid.RSS {
		t.Fatalf("pid %+v, %v", pid, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 8.5e+07\nbeaver_x 1\n"))
	}))
	defer srv.Close()
	m, err := metricsUsage(context.Background(), srv.Client(), srv.URL)
	if err != nil || m.CPU != 1500*time.Millisecond || m.RSS != 85_000_000 {
		t.Fatalf("metrics %+v, %v", m, err)
	}
	if _, err := metricsUsage(context.Background(), srv.Client(), srv.URL+"/x"); err != nil {
		t.Fatal(err) // same answer on any path
	}
}

func TestDefaultMetricsURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7070":  "http://127.0.0.1:9090/metrics",
		"127.0.0.1:7070":         "http://127.0.0.1:9090/metrics",
		"https://queue.example/": "http://queue.example:9090/metrics",
		"http://[::1]:7070":      "http://[::1]:9090/metrics",
	} {
		if got, err := DefaultMetricsURL(in); err != nil || got != want {
			t.Errorf("DefaultMetricsURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestWriteText(t *testing.T) {
	var b strings.Builder
	res := &Result{Scenario: Enqueue, Target: "in-process", Sync: "always", Workers: 8, Queue: "bench-x", Clients: 2, PayloadSize: 100,
		Jobs: 1000, Elapsed: time.Second, JobsPerSec: 1000, Latency: []Latency{{Name: "request", Count: 1000, P50: time.Millisecond}},
		Server: &ServerUsage{Source: "self", CPU: time.Second, CPUCores: 1, RSS: 10 << 20, PeakRSS: 12 << 20}}
	if err := WriteText(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"enqueue: 1,000 jobs in 1s = 1,000 jobs/s", "sync always", "p50 1ms", "rss 10.0 MiB, peak 12.0 MiB", "includes the load generator"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

func TestProgress(t *testing.T) {
	var b syncBuffer
	p := startProgress(&b, "x", 10, 0)
	p.add(5)
	p.draw()
	p.end()
	if !strings.Contains(b.String(), "5/10") {
		t.Fatalf("%q", b.String())
	}
	var nilp *progress
	nilp.add(1)
	nilp.end()
}

// syncBuffer is a strings.Builder safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
