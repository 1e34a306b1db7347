package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/bench"
)

// tinyParams are small runs: every scenario of a system in well under a
// second (beanstalkd -f 0 fsyncs every put and delete).
func tinyParams(t *testing.T) params {
	return params{Jobs: 300, Clients: 8, BatchClients: 2, Consumers: 3, Batch: 70, Streams: 2, Window: 16, LeaseMax: 20,
		PayloadSize: 100, Workers: 16, Dir: t.TempDir(), payload: bench.Payload(100)}
}

func TestSystems(t *testing.T) {
	systems := []system{beaverRaft(), beaverRaftCluster(3, bench.TargetLeader, ""), beaverRaftCluster(3, bench.TargetFollower, ""),
		beaverRaftCluster(3, bench.TargetLeader, "bolt"),
		jetStream(true), jetStream(false), jetStreamCluster(3, true)}
	if bin, err := exec.LookPath("beanstalkd"); err == nil {
		systems = append(systems, beanstalkd(bin, 0), beanstalkd(bin, 50))
	} else {
		t.Logf("beanstalkd not installed (%s): not tested", beanstalkdInstall)
	}
	for _, s := range systems {
		for _, sc := range allScenarios {
			t.Run(s.Name+"/"+s.Setting+"/"+string(sc), func(t *testing.T) {
				jps, err := s.run(context.Background(), sc, tinyParams(t))
				if errors.Is(err, errUnsupported) && s.Name == "beanstalkd" && sc == enqueueClient {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				if jps <= 0 {
					t.Fatalf("%v jobs/s", jps)
				}
			})
		}
	}
}

func TestRunJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--systems", "beaver-raft,jetstream", "--durable-only", "--scenarios", "enqueue,remote",
		"--rounds", "2", "--jobs", "200", "--clients", "4", "--workers", "8", "--dir", t.TempDir(), "--json"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results: %+v", len(rep.Results), rep.Results)
	}
	for _, r := range rep.Results {
		if len(r.Rounds) != 2 || r.Median <= 0 || r.Ratio <= 0 {
			t.Errorf("%+v", r)
		}
	}
	// progress lines on stderr, alternating systems
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) != 8 || !strings.Contains(lines[0], "beaver-raft") || !strings.Contains(lines[1], "jetstream") || !strings.Contains(lines[2], "beaver-raft") {
		t.Fatalf("progress:\n%s", errOut.String())
	}
}

func TestRunTable(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--systems", "beaver-raft,jetstream", "--scenarios", "enqueue-batch", "--rounds", "1", "--jobs", "200", "--workers", "8", "--dir", t.TempDir()}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	for _, want := range []string{"enqueue-batch: 1000 jobs per batch", "jobs/s (median)", "beaver-raft", "sync_interval always", "sync_interval 2m (default)", "×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--systems", "redis"}, `unknown system "redis"`},
		{[]string{"--systems", "beaver-raft", "--scenarios", "recovery"}, `unknown scenario "recovery"`},
		{[]string{"--rounds", "0"}, "at least 1"},
		{[]string{"--beanstalkd", "/nonexistent/beanstalkd"}, "apt-get install -y beanstalkd"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), tc.args, &out, &errOut); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := thousands(1234567.4); got != "1,234,567" {
		t.Errorf("thousands: %q", got)
	}
	if got := thousands(-1234); got != "-1,234" {
		t.Errorf("thousands: %q", got)
	}
}

func TestRunTableUnsupported(t *testing.T) {
	if _, err := exec.LookPath("beanstalkd"); err != nil {
		t.Skipf("beanstalkd not installed (%s)", beanstalkdInstall)
	}
	var out, errOut bytes.Buffer
	args := []string{"--systems", "beaver-raft,beanstalkd", "--durable-only", "--scenarios", "enqueue-client,stream",
		"--rounds", "2", "--jobs", "200", "--clients", "4", "--window", "32", "--dir", t.TempDir(), "--json"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results: %+v", len(rep.Results), rep.Results)
	}
	for _, r := range rep.Results {
		unsupported := r.System == "beanstalkd" && r.Scenario == enqueueClient
		if r.Unsupported != unsupported {
			t.Errorf("%s %s: unsupported %v", r.System, r.Scenario, r.Unsupported)
		}
		if !unsupported && (len(r.Rounds) != 2 || r.Median <= 0) {
			t.Errorf("%+v", r)
		}
	}
}
