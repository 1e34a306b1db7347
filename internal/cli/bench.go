package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/internal/bench"
)

func newBenchCmd(e *env) *cobra.Command {
	var (
		o          bench.Options
		scenario   string
		remoteMode string
		target     string
		asJSON     bool
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench [scenario]",
		Short: "Measure a server: " + scenarioNames(" or "),
		Long: `Measure Beaver-Raft's throughput, latency and resource use.

By default bench starts its own server in this process on a temporary data
directory (removed afterwards unless --keep), with sync always; --server
measures a running server instead (CPU and memory from its /metrics);
--cluster N starts N cluster-mode nodes in this process on loopback and
measures the leader (or, with --cluster-target follower, a follower that
forwards the writes).

Scenarios:
  enqueue        single-job POST /v1/jobs from --clients concurrent clients
                 (plain HTTP, one request per job, not the Go client)
  noop-http      the floor of enqueue: the same load generator (same HTTP
                 client settings and request bodies) against a handler in
                 this process that reads the body and answers 201 with a
                 fixed body, doing nothing else. Quote single-job enqueue as
                 the ratio enqueue / noop-http on the same machine: what
                 HTTP and the load generator cost is in both
  enqueue-client --clients goroutines calling the Go client's Enqueue on one
                 shared client (whatever Enqueue does underneath)
  enqueue-batch  POST /v1/jobs/batch with --batch jobs per request
  stream         --clients POST /v1/jobs/stream requests, each writing its
                 share of --jobs lines without waiting while it reads the
                 answers; timed from the first line to the last answer,
                 latency from a line written to its answer read
  e2e            enqueue --jobs noop jobs (batches) while the server's workers
                 run them; timed from the first enqueue to the last completion
  remote         fill the queue, then --clients remote workers lease
                 (--lease-max per call) and ack in batches; timed from the
                 first lease to the last ack
  recovery       fill a server process with --jobs pending jobs, kill -9 it,
                 restart it and time until /readyz answers 200

Default clients: enqueue, noop-http and enqueue-client 64, stream 1, the
others 4. Each run uses a queue of its own; jobs it leaves pending stay on a
running server.

  beaver-raft bench enqueue -n 100000 -c 64
  beaver-raft bench noop-http -n 100000 -c 64   # the floor: quote enqueue / noop-http
  beaver-raft bench enqueue-client -n 100000
  beaver-raft bench stream -n 300000
  beaver-raft bench stream -c 4 --cluster 3 --cluster-target follower
  beaver-raft bench enqueue-batch -b 1000 --duration 10s
  beaver-raft bench e2e --workers 64
  beaver-raft bench remote -c 4 -m 100
  beaver-raft bench recovery -n 1000000
  beaver-raft bench recovery -n 1000000 --server-arg=--snapshot-every-records=500
  beaver-raft bench enqueue --server http://127.0.0.1:7070 --json
  beaver-raft bench enqueue --cluster 3                      # 3 raft nodes in this process
  beaver-raft bench enqueue --cluster 3 --cluster-target follower
  beaver-raft bench enqueue --cluster 3 --raft-log-store bolt   # raft-boltdb instead of the WAL`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: scenarioArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if scenario != "" && scenario != args[0] {
					return fmt.Errorf("bench: scenario given twice: %q and --scenario %q", args[0], scenario)
				}
				scenario = args[0]
			}
			if scenario == "" {
				return fmt.Errorf("bench: which scenario? one of %s", scenarioNames(", "))
			}
			o.Scenario = bench.Scenario(scenario)
			o.RemoteMode = bench.RemoteMode(remoteMode)
			o.ClusterTarget = bench.ClusterTarget(target)
			o.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			if f, ok := e.stderr.(*os.File); ok && !asJSON && bench.IsTerminal(f) {
				o.Progress = f
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				o.CPUProfile = f
			}
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				return enc.Encode(res)
			}
			return bench.WriteText(e.stdout, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "scenario: "+scenarioNames(", ")+" (or give it as the argument)")
	f.StringVar(&o.Server, "server", "", "base URL of a running server (default: start one in this process)")
	f.StringVar(&o.Token, "token", "", "bearer token for --server")
	f.StringVar(&o.Metrics, "metrics", "", "metrics URL of --server, for its CPU time and memory (default: its host, port 9090, /metrics)")
	f.StringVar(&o.Sync, "sync", bench.SyncDefault, "sync mode of the server bench starts: always, interval or never")
	f.IntVar(&o.Workers, "workers", bench.WorkersDefault, "workers of the server bench starts (e2e runs noop jobs on them)")
	f.IntVar(&o.Cluster, "cluster", 0, "start this many nodes in cluster mode in this process (loopback, temporary directories) instead of one single-node server")
	f.StringVar(&target, "cluster-target", "", "with --cluster: the node the clients talk to, leader or follower (writes forwarded to the leader); default leader")
	f.StringVar(&o.RaftLogStore, "raft-log-store", "", "with --cluster: the nodes' raft log store, wal or bolt (default: cluster.log_store's default)")
	f.StringVar(&o.DataDir, "data-dir", "", "where to make the temporary data directory (default: the system's temporary directory)")
	f.BoolVar(&o.Keep, "keep", false, "keep the data directory")
	f.IntVarP(&o.Jobs, "jobs", "n", bench.JobsDefault, "number of jobs")
	f.DurationVar(&o.Duration, "duration", 0, "run for this long instead of --jobs (enqueue, noop-http, enqueue-client, enqueue-batch)")
	f.IntVarP(&o.Clients, "clients", "c", 0, "concurrent clients, streams or remote workers (default: enqueue, noop-http, enqueue-client 64, stream 1, others 4)")
	f.IntVarP(&o.Batch, "batch", "b", bench.BatchDefault, "jobs per batch request")
	f.IntVarP(&o.LeaseMax, "lease-max", "m", bench.LeaseMaxDefault, "max jobs per lease call (remote)")
	f.IntVar(&o.PayloadSize, "payload-size", bench.PayloadSizeDefault, "bytes of each job's payload (a JSON object padded to this size)")
	f.StringVar(&remoteMode, "remote-mode", string(bench.RemoteModeDefault), "remote workers: lean (Lease + Ack calls) or worker (client.Worker with batched acks)")
	f.StringArrayVar(&o.ChildArgs, "server-arg", nil, "recovery: a flag added to the server process's run command (repeatable), e.g. --server-arg=--snapshot-every-records=500")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the timed phase to this file (in-process: server and load generator)")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}

// scenarioArgs are the names of bench's scenarios.
func scenarioArgs() []string {
	s := make([]string, len(bench.Scenarios))
	for i, sc := range bench.Scenarios {
		s[i] = string(sc)
	}
	return s
}

// scenarioNames lists the scenarios: "a, b, c" with sep ", "; "a, b or c"
// with sep " or ".
func scenarioNames(sep string) string {
	s := scenarioArgs()
	if sep == ", " || len(s) < 2 {
		return strings.Join(s, sep)
	}
	return strings.Join(s[:len(s)-1], ", ") + sep + s[len(s)-1]
}
