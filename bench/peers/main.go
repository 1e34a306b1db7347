// Command peers compares Beaver-Raft with beanstalkd and NATS JetStream on
// the same workloads: single and batched enqueues, end-to-end runs, and
// remote-style reserve + ack, all with 100-byte payloads and durable
// settings (plus each peer's default setting for reference).
//
// It is a module of its own so that the main module gains no dependency.
// It drives Beaver-Raft through internal/bench, the package of the
// `beaver-raft bench` command: a nested module may import the internal
// packages of the module whose path is its prefix.
//
//	cd bench/peers && go run . --quick
//	go run . --rounds 5 --jobs 100000 --json > peers.json
//
// Systems run alternately (A B C A B C …) within each scenario, each run
// on a fresh instance and a fresh temporary directory; the table gives the
// median of the rounds. See docs/performance.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	params
	Rounds      int
	Quick       bool
	JSON        bool
	Systems     string
	Scenarios   string
	DurableOnly bool
	Beanstalkd  string
}

func parse(args []string, stderr io.Writer) (config, error) {
	c := config{}
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Rounds, "rounds", 3, "rounds: each system runs each scenario this many times, alternating")
	fs.IntVar(&c.Jobs, "jobs", 50_000, "jobs per round")
	fs.BoolVar(&c.Quick, "quick", false, "5,000 jobs per round")
	fs.BoolVar(&c.JSON, "json", false, "print the results as JSON")
	fs.StringVar(&c.Systems, "systems", "beaver-raft,beanstalkd,jetstream", "systems to run, comma-separated: beaver-raft, beaver-raft-3 (3 nodes in this process, clients on the leader), beaver-raft-3-follower, either with -wal or -bolt (the raft log store; default the server's default), beanstalkd, jetstream, jetstream-3 (3 servers, stream R3)")
	fs.StringVar(&c.Scenarios, "scenarios", "enqueue,enqueue-client,enqueue-batch,stream,e2e,remote", "scenarios to run, comma-separated")
	fs.BoolVar(&c.DurableOnly, "durable-only", false, "leave out the peers' non-durable default settings")
	fs.IntVar(&c.Clients, "clients", 64, "enqueue: concurrent single-job producers")
	fs.IntVar(&c.BatchClients, "batch-clients", 4, "enqueue-batch and e2e: concurrent batch producers")
	fs.IntVar(&c.Consumers, "consumers", 4, "e2e (peers) and remote: concurrent consumers")
	fs.IntVar(&c.Batch, "batch", 1000, "jobs per batch request, pipeline or async publish window")
	fs.IntVar(&c.Streams, "streams", 1, "stream: connections, each sending without waiting for answers")
	fs.IntVar(&c.Window, "window", 8192, "stream: jobs in flight per connection of the peers (JetStream's async window, beanstalkd's pipeline; Beaver-Raft's server bounds a stream at 8192)")
	fs.IntVar(&c.LeaseMax, "lease-max", 100, "jobs per lease (Beaver-Raft), fetch and prefetch (JetStream)")
	fs.IntVar(&c.PayloadSize, "payload-size", 100, "bytes of each payload")
	fs.IntVar(&c.Workers, "workers", 256, "Beaver-Raft's in-process workers (e2e)")
	fs.StringVar(&c.Beanstalkd, "beanstalkd", "beanstalkd", "the beanstalkd executable")
	fs.StringVar(&c.Dir, "dir", "", "where to make the temporary directories (default: the system's)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		c.Jobs = 5_000
	}
	for _, v := range []int{c.Rounds, c.Jobs, c.Clients, c.BatchClients, c.Consumers, c.Batch, c.Streams, c.Window, c.LeaseMax, c.PayloadSize, c.Workers} {
		if v < 1 {
			return c, errors.New("every count must be at least 1")
		}
	}
	c.payload = bench.Payload(c.PayloadSize)
	return c, nil
}

func (c config) systems() ([]system, error) {
	var out []system
	for _, name := range strings.Split(c.Systems, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "beaver-raft":
			out = append(out, beaverRaft())
		case "beanstalkd":
			bin, err := exec.LookPath(c.Beanstalkd)
			if err != nil {
				return nil, fmt.Errorf("beanstalkd is not installed (%v): install it with `%s`, or leave it out with --systems", err, beanstalkdInstall)
			}
			out = append(out, beanstalkd(bin, 0))
			if !c.DurableOnly {
				out = append(out, beanstalkd(bin, 50))
			}
		case "beaver-raft-3":
			out = append(out, beaverRaftCluster(3, bench.TargetLeader, ""))
		case "beaver-raft-3-follower":
			out = append(out, beaverRaftCluster(3, bench.TargetFollower, ""))
		case "beaver-raft-3-wal", "beaver-raft-3-bolt":
			out = append(out, beaverRaftCluster(3, bench.TargetLeader, strings.TrimPrefix(name, "beaver-raft-3-")))
		case "beaver-raft-3-follower-wal", "beaver-raft-3-follower-bolt":
			out = append(out, beaverRaftCluster(3, bench.TargetFollower, strings.TrimPrefix(name, "beaver-raft-3-follower-")))
		case "jetstream-3":
			out = append(out, jetStreamCluster(3, true))
			if !c.DurableOnly {
				out = append(out, jetStreamCluster(3, false))
			}
		case "jetstream":
			out = append(out, jetStream(true))
			if !c.DurableOnly {
				out = append(out, jetStream(false))
			}
		default:
			return nil, fmt.Errorf("unknown system %q (beaver-raft, beaver-raft-3[-wal|-bolt], beaver-raft-3-follower[-wal|-bolt], beanstalkd, jetstream, jetstream-3)", name)
		}
	}
	return out, nil
}

func (c config) scenarios() ([]scenario, error) {
	var out []scenario
	for _, name := range strings.Split(c.Scenarios, ",") {
		sc := scenario(strings.TrimSpace(name))
		if !slices.Contains(allScenarios, sc) {
			return nil, fmt.Errorf("unknown scenario %q (enqueue, enqueue-client, enqueue-batch, stream, e2e, remote)", sc)
		}
		out = append(out, sc)
	}
	return out, nil
}

// row is one system's figures in one scenario.
type row struct {
	Scenario scenario  `json:"scenario"`
	System   string    `json:"system"`
	Setting  string    `json:"setting"`
	Durable  bool      `json:"durable"`
	Rounds   []float64 `json:"jobs_per_sec_rounds"`
	// Unsupported: the system has no way to run the scenario (no rounds).
	Unsupported bool    `json:"unsupported,omitempty"`
	Median      float64 `json:"jobs_per_sec_median"`
	// Ratio is Beaver-Raft's median divided by this row's (0 when
	// Beaver-Raft did not run).
	Ratio float64 `json:"beaver_raft_ratio,omitempty"`
	// Ratio3 is beaver-raft-3's median divided by this row's (0 when
	// beaver-raft-3 did not run).
	Ratio3 float64 `json:"beaver_raft_3_ratio,omitempty"`
}

// report is the JSON output.
type report struct {
	Date    time.Time `json:"date"`
	Params  params    `json:"params"`
	Rounds  int       `json:"rounds"`
	Results []row     `json:"results"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	systems, err := c.systems()
	if err != nil {
		return err
	}
	scenarios, err := c.scenarios()
	if err != nil {
		return err
	}
	rep := report{Date: time.Now().UTC(), Params: c.params, Rounds: c.Rounds}
	for _, sc := range scenarios {
		rows := make([]row, len(systems))
		for i, s := range systems {
			rows[i] = row{Scenario: sc, System: s.Name, Setting: s.Setting, Durable: s.Durable}
		}
		for round := 1; round <= c.Rounds; round++ {
			for i, s := range systems {
				if rows[i].Unsupported {
					continue
				}
				jps, err := s.run(ctx, sc, c.params)
				if errors.Is(err, errUnsupported) {
					fmt.Fprintf(stderr, "%-13s %s %s: %v\n", sc, s.Name, s.Setting, err)
					rows[i].Unsupported = true
					continue
				}
				if err != nil {
					return fmt.Errorf("%s, %s %s, round %d: %w", sc, s.Name, s.Setting, round, err)
				}
				fmt.Fprintf(stderr, "%-13s round %d/%d  %-11s %-42s %12s jobs/s\n", sc, round, c.Rounds, s.Name, s.Setting, thousands(jps))
				rows[i].Rounds = append(rows[i].Rounds, jps)
			}
		}
		var beaver, beaver3 float64
		for i := range rows {
			rows[i].Median = median(rows[i].Rounds)
			switch rows[i].System {
			case "beaver-raft":
				beaver = rows[i].Median
			case "beaver-raft-3":
				beaver3 = rows[i].Median
			}
		}
		for i := range rows {
			if beaver > 0 && rows[i].Median > 0 {
				rows[i].Ratio = beaver / rows[i].Median
			}
			if beaver3 > 0 && rows[i].Median > 0 {
				rows[i].Ratio3 = beaver3 / rows[i].Median
			}
		}
		if !c.JSON {
			writeTable(stdout, sc, c, rows)
		}
		rep.Results = append(rep.Results, rows...)
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

// what each scenario does, for the table titles.
func describe(sc scenario, c config) string {
	switch sc {
	case enqueue:
		return fmt.Sprintf("one job per request, %d concurrent producers", c.Clients)
	case enqueueClient:
		return fmt.Sprintf("one job per call, %d goroutines sharing one client (Beaver-Raft: the Go client's Enqueue; JetStream: sync Publish on one connection)", c.Clients)
	case stream:
		return fmt.Sprintf("%d connection(s) sending without waiting, one durable answer per job (Beaver-Raft: POST /v1/jobs/stream; JetStream: async publishes, %d pending; beanstalkd: pipelined puts, %d in flight)", c.Streams, c.Window, c.Window)
	case enqueueBatch:
		return fmt.Sprintf("%d jobs per batch (beanstalkd: pipelined puts; JetStream: async publishes), %d producers", c.Batch, c.BatchClients)
	case e2e:
		return fmt.Sprintf("batches from %d producers while jobs are consumed (Beaver-Raft: %d in-process noop workers; peers: %d consumers), first enqueue to last ack",
			c.BatchClients, c.Workers, c.Consumers)
	case remote:
		return fmt.Sprintf("filled queue drained by %d consumers: lease %d + one ack call (Beaver-Raft), fetch %d + acks (JetStream), reserve + delete (beanstalkd)",
			c.Consumers, c.LeaseMax, c.LeaseMax)
	}
	return ""
}

func writeTable(w io.Writer, sc scenario, c config, rows []row) {
	fmt.Fprintf(w, "\n%s: %s; %d-byte payloads, %s jobs per round, %d rounds\n", sc, describe(sc, c), c.PayloadSize, thousands(float64(c.Jobs)), c.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	three := slices.ContainsFunc(rows, func(r row) bool { return r.System == "beaver-raft-3" })
	fmt.Fprintf(tw, "system\tsetting\t%16s\trounds\t%16s", "jobs/s (median)", "Beaver-Raft ÷ it")
	if three {
		fmt.Fprintf(tw, "\t%18s", "Beaver-Raft-3 ÷ it")
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		rounds := make([]string, len(r.Rounds))
		for i, v := range r.Rounds {
			rounds[i] = thousands(v)
		}
		ratio := "—"
		if r.System != "beaver-raft" && r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		med := thousands(r.Median)
		if r.Unsupported {
			med, rounds = "n/a", []string{"(no equivalent)"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%16s\t%s\t%16s", r.System, r.Setting, med, strings.Join(rounds, " "), ratio)
		if three {
			ratio3 := "—"
			if r.System != "beaver-raft-3" && r.Ratio3 > 0 {
				ratio3 = fmt.Sprintf("%.2f×", r.Ratio3)
			}
			fmt.Fprintf(tw, "\t%18s", ratio3)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// thousands formats v rounded, with commas.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && ch != '-' && s[i-1] != '-' && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}
