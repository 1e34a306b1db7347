// Package bench measures a Beaver-Raft server: the workloads of the
// `beaver-raft bench` command, usable without the command line (tests, and
// the peer comparison in bench/peers).
//
// A run drives one scenario over HTTP (plain single-job requests, the Go
// client, or POST /v1/jobs/stream, as the scenario says) against a server:
// its own, started in this process on a temporary data directory, or a
// running one (Options.Server). It reports jobs per second, the latency of
// the requests, and the server's CPU time and memory.
//
// # Scenarios
//
//   - enqueue: single-job POST /v1/jobs from Clients concurrent clients,
//     over plain HTTP (the load generator of single.go, not the Go
//     client's Enqueue).
//   - noop-http: the same load generator against an HTTP handler in this
//     process that reads the body and answers 201 with a fixed body: the
//     floor of enqueue on this machine (HTTP and the load generator
//     alone). Quote enqueue as a ratio of it.
//   - enqueue-client: Clients goroutines calling the Go client's Enqueue
//     on one shared client.Client (whatever Enqueue does underneath).
//   - enqueue-batch: POST /v1/jobs/batch with Batch jobs per request.
//   - stream: Clients POST /v1/jobs/stream streams, each writing its
//     share of Jobs lines as fast as it can while it reads the answers;
//     timed from the first line written to the last answer.
//   - e2e: enqueue Jobs noop jobs (batches) while the server's own workers
//     run them; timed from the first enqueue to the last completion.
//   - remote: enqueue Jobs jobs of a type the server has no handler for
//     (untimed), then Clients remote workers lease them (Lease max
//     LeaseMax) and report them with batched acks; timed from the first
//     lease to the last ack.
//   - recovery: fill a server process with Jobs pending jobs (batches),
//     kill it with SIGKILL, start it again and time its recovery.
//
// Every run uses a queue of its own (bench-<time>), so runs against one
// server do not see each other's jobs. Jobs that a run leaves pending stay
// on a running server.
//
// # Goroutines
//
// Run starts the client goroutines of a scenario, a progress bar's
// goroutine and, with an in-process server, the server; all of them have
// ended when Run returns.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/config"
)

// Scenario names a workload.
type Scenario string

// The scenarios; see the package documentation.
const (
	Enqueue       Scenario = "enqueue"
	NoopHTTP      Scenario = "noop-http"
	EnqueueClient Scenario = "enqueue-client"
	EnqueueBatch  Scenario = "enqueue-batch"
	Stream        Scenario = "stream"
	E2E           Scenario = "e2e"
	Remote        Scenario = "remote"
	Recovery      Scenario = "recovery"
)

// Scenarios lists every scenario, in the order of the documentation.
var Scenarios = []Scenario{Enqueue, NoopHTTP, EnqueueClient, EnqueueBatch, Stream, E2E, Remote, Recovery}

// RemoteMode is how the remote scenario's workers run.
type RemoteMode string

const (
	// RemoteLean: each worker loops Lease (max LeaseMax, no wait) then one
	// Ack call for all the jobs it got.
	RemoteLean RemoteMode = "lean"
	// RemoteWorker: each worker is a client.Worker with Concurrency
	// LeaseMax and BatchAcks, running a handler that does nothing.
	RemoteWorker RemoteMode = "worker"
)

// Job types the scenarios enqueue.
const (
	// TypeBench has no handler: enqueued jobs stay pending.
	TypeBench = "bench"
	// TypeNoop is run by the server's built-in noop handler (e2e).
	TypeNoop = "noop"
	// TypeRemote has no handler on the server: remote workers take it.
	TypeRemote = "bench-remote"
)

// Defaults of Options.
const (
	JobsDefault        = 50_000
	BatchDefault       = 1000
	LeaseMaxDefault    = 100
	PayloadSizeDefault = 100
	SyncDefault        = string(config.SyncAlways)
	WorkersDefault     = 256
	RemoteModeDefault  = RemoteLean
)

// ClientsDefault is the default of Options.Clients for sc: many
// single-job clients (a group commit needs concurrency), one stream (it
// pipelines on its own), a few batch clients or remote workers. It is 0
// for an unknown scenario.
func ClientsDefault(sc Scenario) int {
	switch sc {
	case Enqueue, NoopHTTP, EnqueueClient:
		return 64
	case Stream:
		return 1
	case EnqueueBatch, E2E, Remote, Recovery:
		return 4
	}
	return 0
}

// timedByDuration says whether sc may run for Options.Duration instead of
// a number of jobs.
func timedByDuration(sc Scenario) bool {
	switch sc {
	case Enqueue, NoopHTTP, EnqueueClient, EnqueueBatch:
		return true
	}
	return false
}

// stallTimeout fails e2e and remote when no job completes for this long
// (a server without the noop handler, workers that stopped).
const stallTimeout = 30 * time.Second

// Options configure a Run. Zero fields take the defaults.
type Options struct {
	Scenario Scenario

	// Server is the base URL of a running server (http://host:port). Empty:
	// Run starts a server in this process.
	Server string
	// Token is sent as "Authorization: Bearer <token>".
	Token string
	// Metrics is the URL of the running server's Prometheus metrics, read
	// for its CPU time and memory (default: Server's host, port 9090,
	// /metrics).
	Metrics string

	// Sync is the in-process server's sync mode (always, interval, never);
	// also the recovery child's.
	Sync string
	// Workers is the in-process server's worker count (e2e runs noop jobs
	// on them); also the recovery child's.
	Workers int
	// DataDir is where the temporary data directory is made (default the
	// system's temporary directory). It is removed at the end unless Keep.
	DataDir string
	Keep    bool
	// Binary is the beaver-raft executable the recovery scenario runs as a
	// child process (default: this executable).
	Binary string
	// ChildArgs are added to the recovery child's `run` flags, e.g.
	// "--snapshot-every-records=500" to recover from a snapshot.
	ChildArgs []string
	// Cluster, if at least 1, starts that many servers in cluster mode in
	// this process instead of one single-node server (raft's log is synced
	// on every append whatever Sync says), and ClusterTarget says which node
	// the clients talk to (default the leader).
	Cluster       int
	ClusterTarget ClusterTarget
	// RaftLogStore is the cluster nodes' raft log store (cluster.log_store:
	// wal or bolt; default the configuration's default).
	RaftLogStore string
	// Logger receives the in-process server's log (default: discarded).
	Logger *slog.Logger

	// Jobs is the number of jobs (default 50,000), unless Duration is set:
	// then enqueue, noop-http, enqueue-client and enqueue-batch run for
	// that long. The stream scenario splits Jobs among its streams.
	Jobs     int
	Duration time.Duration
	// Clients is the number of concurrent clients: enqueuers, streams,
	// remote workers, or the recovery scenario's fillers (default:
	// ClientsDefault).
	Clients int
	// Batch is the jobs per batch request (enqueue-batch, and the enqueues
	// of e2e, remote and recovery).
	Batch int
	// LeaseMax is the max of each lease call (remote).
	LeaseMax int
	// PayloadSize is the size of each job's payload: a JSON object padded
	// to this many bytes (default 100).
	PayloadSize int
	RemoteMode  RemoteMode

	// Progress, if set, receives a progress bar (give it only a terminal).
	Progress io.Writer
	// CPUProfile, if set, receives a CPU profile of this process taken
	// during the timed phase (with an in-process server: server and load
	// generator together).
	CPUProfile io.Writer
}

// withDefaults fills the zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Scenario == "" {
		return o, errors.New("bench: no scenario (one of " + scenarioList() + ")")
	}
	if ClientsDefault(o.Scenario) == 0 {
		return o, fmt.Errorf("bench: unknown scenario %q (one of %s)", o.Scenario, scenarioList())
	}
	if o.Jobs == 0 {
		o.Jobs = JobsDefault
	}
	if o.Clients == 0 {
		o.Clients = ClientsDefault(o.Scenario)
	}
	if o.Batch == 0 {
		o.Batch = BatchDefault
	}
	if o.LeaseMax == 0 {
		o.LeaseMax = LeaseMaxDefault
	}
	if o.PayloadSize == 0 {
		o.PayloadSize = PayloadSizeDefault
	}
	if o.Sync == "" {
		o.Sync = SyncDefault
	}
	if o.Workers == 0 {
		o.Workers = WorkersDefault
	}
	if o.RemoteMode == "" {
		o.RemoteMode = RemoteModeDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Cluster > 0 && o.ClusterTarget == "" {
		o.ClusterTarget = TargetLeader
	}
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"jobs", o.Jobs}, {"clients", o.Clients}, {"batch", o.Batch}, {"lease-max", o.LeaseMax}, {"payload-size", o.PayloadSize}, {"workers", o.Workers}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("bench: %s must be at least 1, not %d", f.name, f.v))
		}
	}
	if o.Duration < 0 {
		errs = append(errs, fmt.Errorf("bench: duration must not be negative"))
	}
	if o.Duration > 0 && !timedByDuration(o.Scenario) {
		errs = append(errs, fmt.Errorf("bench: --duration applies to enqueue, noop-http, enqueue-client and enqueue-batch; %s runs a number of jobs (--jobs)", o.Scenario))
	}
	if o.Scenario == NoopHTTP && (o.Server != "" || o.Cluster > 0) {
		errs = append(errs, errors.New("bench: noop-http measures a handler in this process: leave out --server and --cluster"))
	}
	if o.RemoteMode != RemoteLean && o.RemoteMode != RemoteWorker {
		errs = append(errs, fmt.Errorf("bench: remote mode %q is not lean or worker", o.RemoteMode))
	}
	if o.Cluster < 0 {
		errs = append(errs, fmt.Errorf("bench: cluster must not be negative"))
	}
	switch o.RaftLogStore {
	case "", config.LogStoreWAL, config.LogStoreBolt:
	default:
		errs = append(errs, fmt.Errorf("bench: raft log store %q is not %s or %s", o.RaftLogStore, config.LogStoreWAL, config.LogStoreBolt))
	}
	if o.RaftLogStore != "" && o.Cluster == 0 {
		errs = append(errs, errors.New("bench: --raft-log-store applies to --cluster"))
	}
	if o.Cluster > 0 && (o.Server != "" || o.Scenario == Recovery) {
		errs = append(errs, errors.New("bench: --cluster starts its own in-process cluster: leave out --server, and recovery"))
	}
	switch o.ClusterTarget {
	case "", TargetLeader:
	case TargetFollower:
		if o.Cluster < 2 {
			errs = append(errs, errors.New("bench: --cluster-target follower needs --cluster 2 or more"))
		}
	default:
		errs = append(errs, fmt.Errorf("bench: cluster target %q is not leader or follower", o.ClusterTarget))
	}
	if o.Scenario == Recovery && o.Server != "" {
		errs = append(errs, errors.New("bench: the recovery scenario kills and restarts its own server process: leave out --server"))
	}
	switch config.SyncMode(o.Sync) {
	case config.SyncAlways, config.SyncInterval, config.SyncNever:
	default:
		errs = append(errs, fmt.Errorf("bench: sync %q is not always, interval or never", o.Sync))
	}
	return o, errors.Join(errs...)
}

func scenarioList() string {
	s := make([]string, len(Scenarios))
	for i, sc := range Scenarios {
		s[i] = string(sc)
	}
	return strings.Join(s, ", ")
}

// Result is what a run measured.
type Result struct {
	Scenario Scenario `json:"scenario"`
	// Target is "in-process", "child process" (recovery), the server's
	// URL, an in-process cluster's description, or the noop-http
	// handler's description.
	Target string `json:"target"`
	// Sync and Workers are the settings of a server this run started.
	Sync    string `json:"sync,omitempty"`
	Workers int    `json:"workers,omitempty"`
	// Cluster is the node count of an in-process cluster this run started,
	// and RaftLogStore its nodes' raft log store.
	Cluster      int    `json:"cluster,omitempty"`
	RaftLogStore string `json:"raft_log_store,omitempty"`
	// DataDir is the kept data directory (with Keep).
	DataDir     string     `json:"data_dir,omitempty"`
	Queue       string     `json:"queue"`
	Clients     int        `json:"clients"`
	Batch       int        `json:"batch,omitempty"`
	LeaseMax    int        `json:"lease_max,omitempty"`
	RemoteMode  RemoteMode `json:"remote_mode,omitempty"`
	PayloadSize int        `json:"payload_size"`

	// Jobs were done in Elapsed, the timed phase.
	Jobs       int           `json:"jobs"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	JobsPerSec float64       `json:"jobs_per_sec"`
	Requests   int           `json:"requests"`
	Latency    []Latency     `json:"latency"`
	// Answered is the requests the noop-http handler answered.
	Answered int `json:"answered,omitempty"`
	// Fill is the untimed enqueue before the timed phase (remote,
	// recovery).
	Fill *Phase `json:"fill,omitempty"`
	// Counts are the run's queue's jobs by state after the run.
	Counts api.StateCounts `json:"counts"`
	Server *ServerUsage    `json:"server,omitempty"`
	// WAL is what the server's write-ahead log did during the timed phase,
	// from its metrics.
	WAL      *WALFigures     `json:"wal,omitempty"`
	Recovery *RecoveryResult `json:"recovery,omitempty"`
}

// WALFigures describe the group commit during the timed phase.
type WALFigures struct {
	Fsyncs int `json:"fsyncs"`
	// FsyncAvg is the mean duration of one fdatasync; FsyncBusy the
	// fraction of the timed phase spent in fdatasync.
	FsyncAvg  time.Duration `json:"fsync_avg_ns"`
	FsyncBusy float64       `json:"fsync_busy"`
	// RecordsPerFsync is WAL records (commands: a batch enqueue or an ack
	// call is one) per fdatasync.
	RecordsPerFsync float64 `json:"records_per_fsync"`
}

// Phase is an untimed part of a run.
type Phase struct {
	Jobs       int           `json:"jobs"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	JobsPerSec float64       `json:"jobs_per_sec"`
}

// ServerUsage is what the server process used during the timed phase.
type ServerUsage struct {
	// Source says where the figures come from: "self" (an in-process
	// server: this process, so the load generator's CPU is included),
	// "proc" (/proc of the child process), "metrics" (the running server's
	// /metrics).
	Source string `json:"source"`
	// CPU is the CPU time used during the timed phase; CPUCores is CPU
	// divided by the phase's wall time.
	CPU      time.Duration `json:"cpu_ns"`
	CPUCores float64       `json:"cpu_cores"`
	// RSS is the resident memory at the end; PeakRSS the process's peak
	// (0: unknown).
	RSS     int64 `json:"rss_bytes"`
	PeakRSS int64 `json:"peak_rss_bytes,omitempty"`
	// Error is set when the figures could not be read.
	Error string `json:"error,omitempty"`
}

// RecoveryResult is what the recovery scenario measured.
type RecoveryResult struct {
	// Jobs is the pending jobs the restarted server holds.
	Jobs int `json:"jobs"`
	// ServerDuration is the recovery time the server reports (GET
	// /v1/status, recovery.duration); WallToReady is the time from
	// starting the process to the first 200 of /readyz.
	ServerDuration  time.Duration `json:"server_duration_ns"`
	WallToReady     time.Duration `json:"wall_to_ready_ns"`
	SnapshotJobs    int           `json:"snapshot_jobs"`
	RecordsReplayed uint64        `json:"records_replayed"`
}

// Run runs one scenario; see Options and the package documentation.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &run{o: o, queue: "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36), payload: Payload(o.PayloadSize)}
	r.res = &Result{
		Scenario: o.Scenario, Queue: r.queue, Clients: o.Clients, PayloadSize: o.PayloadSize,
	}
	if o.Scenario == Recovery {
		if err := r.recovery(ctx); err != nil {
			return nil, err
		}
		return r.res, nil
	}
	var t *target
	switch {
	case o.Scenario == NoopHTTP:
		t, err = startNoop()
		r.res.Queue = ""
	case o.Server != "":
		t, err = dialTarget(ctx, o)
	case o.Cluster > 0:
		t, err = startCluster(ctx, o)
		r.res.Sync, r.res.Workers, r.res.Cluster = "raft (fsync every append)", o.Workers, o.Cluster
		r.res.RaftLogStore = cmp.Or(o.RaftLogStore, config.ClusterLogStoreDefault)
	default:
		t, err = startInProcess(ctx, o)
		r.res.Sync, r.res.Workers = o.Sync, o.Workers
	}
	if err != nil {
		return nil, err
	}
	r.t = t
	r.res.Target = t.name
	err = r.scenario(ctx)
	if cerr := t.close(); err == nil && cerr != nil {
		err = fmt.Errorf("bench: stopping the server: %w", cerr)
	}
	if o.Keep && t.dir != "" {
		r.res.DataDir = t.dir
	}
	if err != nil {
		return nil, err
	}
	return r.res, nil
}

// run is the state of one Run.
type run struct {
	o       Options
	t       *target
	queue   string
	payload []byte
	res     *Result
}

func (r *run) scenario(ctx context.Context) error {
	var err error
	switch r.o.Scenario {
	case Enqueue:
		err = r.enqueue(ctx)
	case NoopHTTP:
		err = r.noopHTTP(ctx)
	case EnqueueClient:
		err = r.enqueueClient(ctx)
	case Stream:
		err = r.stream(ctx)
	case EnqueueBatch:
		r.res.Batch = r.o.Batch
		err = r.enqueueBatch(ctx)
	case E2E:
		r.res.Batch = r.o.Batch
		err = r.e2e(ctx)
	case Remote:
		r.res.Batch, r.res.LeaseMax, r.res.RemoteMode = r.o.Batch, r.o.LeaseMax, r.o.RemoteMode
		err = r.remote(ctx)
	}
	if err != nil {
		return err
	}
	r.res.JobsPerSec = float64(r.res.Jobs) / r.res.Elapsed.Seconds()
	if r.res.Server != nil && r.res.Elapsed > 0 {
		r.res.Server.CPUCores = r.res.Server.CPU.Seconds() / r.res.Elapsed.Seconds()
	}
	counts, err := r.t.counts(ctx, r.queue)
	if err != nil {
		return fmt.Errorf("bench: reading the queue's counts: %w", err)
	}
	r.res.Counts = counts
	return nil
}

// timed runs f as the timed phase: it reads the server's usage around it,
// profiles it if asked, and records its wall time.
func (r *run) timed(ctx context.Context, f func() error) error {
	u0, uerr := r.t.usage(ctx)
	var w0 walCounters
	var werr error
	if r.t.metricsURL != "" {
		w0, werr = walMetrics(ctx, r.t.hc, r.t.metricsURL)
	}
	if r.o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(r.o.CPUProfile); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
	}
	start := time.Now()
	err := f()
	r.res.Elapsed = time.Since(start)
	if r.o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	u1, uerr2 := r.t.usage(ctx)
	su := &ServerUsage{Source: r.t.usageSource}
	if err := errors.Join(uerr, uerr2); err != nil {
		su.Error = err.Error()
	} else {
		su.CPU, su.RSS, su.PeakRSS = u1.CPU-u0.CPU, u1.RSS, u1.HWM
	}
	r.res.Server = su
	if r.t.metricsURL != "" && werr == nil {
		if w1, err := walMetrics(ctx, r.t.hc, r.t.metricsURL); err == nil && w1.fsyncs > w0.fsyncs {
			n := w1.fsyncs - w0.fsyncs
			busy := w1.fsyncSeconds - w0.fsyncSeconds
			r.res.WAL = &WALFigures{
				Fsyncs:          int(n),
				FsyncAvg:        time.Duration(busy / n * float64(time.Second)),
				FsyncBusy:       busy / r.res.Elapsed.Seconds(),
				RecordsPerFsync: (w1.records - w0.records) / n,
			}
		}
	}
	return nil
}

// Payload returns a JSON object of exactly size bytes:
// {"pad":"xxx…"}, or "{}" padded with spaces below 10 bytes.
func Payload(size int) []byte {
	const frame = len(`{"pad":""}`)
	if size < frame {
		return []byte("{}" + strings.Repeat(" ", max(size-2, 0)))
	}
	return []byte(`{"pad":"` + strings.Repeat("x", size-frame) + `"}`)
}

// work hands out jobs to the clients: a fixed total, or as many as they
// take until a deadline.
type work struct {
	total    int64     // 0: until deadline
	deadline time.Time // zero: none
	next     atomic.Int64
}

func newWork(o Options) *work {
	w := &work{}
	if o.Duration > 0 {
		w.deadline = time.Now().Add(o.Duration)
	} else {
		w.total = int64(o.Jobs)
	}
	return w
}

// take claims up to n jobs and returns how many (0: no more).
func (w *work) take(n int) int {
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		return 0
	}
	if w.total == 0 {
		return n
	}
	end := w.next.Add(int64(n))
	start := end - int64(n)
	if start >= w.total {
		return 0
	}
	return int(min(end, w.total) - start)
}

// group runs n goroutines and returns the first error; the context the
// goroutines see is canceled at the first error.
func group(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		wg.Go(func() {
			if err := f(ctx, i); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	return first
}
