// Package server composes Beaver-Raft: the replica, the scheduler loops, the
// worker pool, the HTTP API (with the web UI at /ui/) and the metrics
// listener.
//
// # Start order
//
//  1. Both listeners open first, so /healthz answers and /readyz says 503
//     while recovery runs.
//  2. The replica opens the data directory and recovers.
//  3. The API starts serving /v1; the scheduler, the worker pool and the
//     UI's stats sampler start.
//
// # Shutdown order (on context cancel: SIGINT or SIGTERM)
//
//  1. The API stops accepting requests; long polls return at once.
//  2. The worker pool stops leasing and waits up to shutdown_timeout for
//     running jobs (what is still running then returns to the queue on the
//     next start).
//  3. The scheduler loops and the UI's stats sampler stop.
//  4. The replica closes: it takes a snapshot so the next start is quick,
//     and releases the data directory.
//  5. The metrics listener closes.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beaver-raft/beaver-raft/internal/backoff"
	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/handlers"
	"github.com/beaver-raft/beaver-raft/internal/httpapi"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/metrics"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"github.com/beaver-raft/beaver-raft/internal/replica/raftrep"
	"github.com/beaver-raft/beaver-raft/internal/scheduler"
	"github.com/beaver-raft/beaver-raft/internal/ui"
	"github.com/beaver-raft/beaver-raft/internal/wal"
	"github.com/beaver-raft/beaver-raft/internal/worker"
)

// Timeouts of the API's connections that are not configuration keys (see
// limits.read_timeout, limits.write_timeout and limits.max_connections).
const (
	// ReadHeaderTimeout bounds the time a client takes to send a request's
	// headers (or limits.read_timeout if that is shorter). A client that
	// trickles them has its connection closed.
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes a keep-alive connection that sent no request for
	// this long.
	IdleTimeout = 2 * time.Minute
)

// Options configure a Server.
type Options struct {
	Config config.Config
	// Handlers are added to the built-in ones (and replace a built-in of the
	// same type): the Go handlers of a program that embeds the server.
	Handlers map[string]handlers.Handler
	Logger   *slog.Logger
	// Registry receives the metrics; default a new registry with the Go and
	// process collectors.
	Registry *prometheus.Registry
	Version  string
	Clock    func() time.Time
}

// Server is one Beaver-Raft node. Create it with New and start it with Run.
type Server struct {
	o   Options
	cfg config.Config
	log *slog.Logger
	met *metrics.Metrics
	reg *prometheus.Registry
	api *httpapi.API
	ui  *ui.UI

	rep     atomic.Pointer[replicaRef]
	ready   chan struct{}
	started time.Time

	jobs     jobspec.Builder // every enqueue of the embedding API goes through it
	periodic []scheduler.ConfigSchedule

	cancels       *worker.Cancels // tells the pool which running jobs were canceled
	queuesApplied atomic.Bool     // the configured queue settings were proposed

	mu               sync.Mutex
	apiAddr, metAddr net.Addr
	listening        chan struct{}
	handlerTypes     []string
}

// New checks the configuration and prepares a server; it opens nothing.
func New(o Options) (*Server, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{o: o, cfg: o.Config, log: o.Logger, reg: reg, ready: make(chan struct{}), listening: make(chan struct{})}
	names, defs, err := o.Config.BuildPeriodic()
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		s.periodic = append(s.periodic, scheduler.ConfigSchedule{Name: name, Def: defs[i]})
	}
	s.met = metrics.New(reg)
	s.cancels = worker.NewCancels()
	reg.MustRegister(metrics.NewStateCollector(s.Replica), metrics.NewQueueCollector(s.Replica, o.Clock))
	c := s.cfg
	s.jobs = jobspec.Builder{
		DefaultQueue:       c.Defaults.Queue,
		DefaultMaxAttempts: c.Retry.MaxAttempts,
		DefaultTimeout:     c.Defaults.Timeout.Duration(),
		MaxPayload:         int64(c.Limits.MaxPayload),
		MaxQueueDepth:      c.Limits.MaxQueueDepth,
	}
	uo := ui.Options{Counters: ui.MetricsCounters(s.met), Clock: o.Clock, Logger: o.Logger}
	if len(c.Auth.Tokens) > 0 {
		uo.CheckToken = func(token string) bool { return s.api.ValidToken(token) }
	}
	s.ui = ui.New(uo)
	s.api = httpapi.New(httpapi.Options{
		Clock:              o.Clock,
		Logger:             o.Logger,
		Tokens:             c.Auth.Tokens,
		MaxPayload:         int64(c.Limits.MaxPayload),
		MaxRequest:         int64(c.Limits.MaxRequest),
		MaxBatch:           c.Limits.MaxBatch,
		MaxQueueDepth:      c.Limits.MaxQueueDepth,
		MaxLease:           c.Limits.MaxLease,
		MaxWait:            c.Limits.MaxWait.Duration(),
		ReadTimeout:        c.Limits.ReadTimeout.Duration(),
		DefaultQueue:       c.Defaults.Queue,
		DefaultMaxAttempts: c.Retry.MaxAttempts,
		DefaultTimeout:     c.Defaults.Timeout.Duration(),
		Retry:              backoff.Policy{Base: c.Retry.Base.Duration(), Max: c.Retry.Max.Duration()},
		Version:            o.Version,
		Instrument:         s.met.Instrument,
		UI:                 s.ui,
		Sessions:           s.ui,
		Stats:              s.ui.Stats,
	})
	return s, nil
}

// Ready is closed once recovery has finished and the server serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Listening is closed once both listeners are open (Addr works).
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addr is the API listener's address (after Listening).
func (s *Server) Addr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.apiAddr }

// MetricsAddr is the metrics listener's address (after Listening).
func (s *Server) MetricsAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.metAddr }

// Replica is the server's replica once Ready, else nil.
func (s *Server) Replica() replica.Replica {
	if r := s.rep.Load(); r != nil {
		return r.r
	}
	return nil
}

type replicaRef struct{ r replica.Replica }

// ErrNotReady is returned by Enqueue before recovery is done or after the
// server stopped.
var ErrNotReady = errors.New("server: not running")

// Enqueue adds jobs, all or none, through the same builder (defaults,
// limits, queue depth) and clock as the HTTP API, and returns once they
// are durable (committed by a quorum in a cluster). A refused job is a
// *jobspec.Error naming the field (and, in a batch, its index in Index).
func (s *Server) Enqueue(ctx context.Context, ins []jobspec.Input) ([]fsm.EnqueueResult, error) {
	rep := s.Replica()
	if rep == nil {
		return nil, ErrNotReady
	}
	now := s.o.Clock()
	specs := make([]fsm.JobSpec, len(ins))
	for i := range ins {
		var err error
		if specs[i], err = s.jobs.Build(&ins[i], now, i); err != nil {
			return nil, &BatchError{Index: i, Err: err}
		}
	}
	if err := s.jobs.Admit(rep, len(specs)); err != nil {
		return nil, err
	}
	res, err := rep.Propose(ctx, &fsm.Command{Kind: fsm.KindEnqueue, Now: now.UnixNano(), Jobs: specs})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		var inv *fsm.InvalidError
		if errors.As(res.Err, &inv) {
			return nil, &BatchError{Index: inv.Index, Err: &jobspec.Error{Kind: jobspec.Invalid, Field: inv.Field, Msg: inv.Msg}}
		}
		return nil, res.Err
	}
	return res.Enqueued, nil
}

// BatchError is a refusal of job Index of an Enqueue.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("job %d: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// HandlerTypes lists the job types the in-process workers run.
func (s *Server) HandlerTypes() []string { return s.handlerTypes }

// Run serves until ctx is canceled, then shuts down in the documented order.
// It returns an error if the server cannot start or fails while running.
func (s *Server) Run(ctx context.Context) error {
	s.started = time.Now()
	c := s.cfg
	apiLn, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	metLn, err := net.Listen("tcp", c.MetricsListen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics listen on %s: %w", c.MetricsListen, err)
	}
	s.mu.Lock()
	s.apiAddr, s.metAddr = apiLn.Addr(), metLn.Addr()
	s.mu.Unlock()
	close(s.listening)

	// requests see reqCtx: canceled when shutdown begins, so long polls end
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	apiSrv := &http.Server{
		Handler: s.api.Handler(),
		// The body has its deadline (limits.read_timeout) from the API's
		// handler, which lifts it once the body is read, before a long
		// poll waits; no ReadTimeout here. WriteTimeout exceeds
		// read_timeout + max_wait (Config.Validate).
		ReadHeaderTimeout: min(ReadHeaderTimeout, c.Limits.ReadTimeout.Duration()),
		WriteTimeout:      c.Limits.WriteTimeout.Duration(),
		IdleTimeout:       IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	apiLn = newLimitListener(apiLn, c.Limits.MaxConnections)
	metSrv := &http.Server{
		Handler:           s.metricsMux(),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 2)
	var serving sync.WaitGroup
	for _, p := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{apiSrv, apiLn}, {metSrv, metLn}} {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	stopHTTP := func() {
		cancelRequests()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		apiSrv.Shutdown(sctx)
		metSrv.Shutdown(sctx)
		serving.Wait()
	}
	s.log.Info("starting", "version", s.o.Version, "data_dir", c.DataDir, "listen", apiLn.Addr().String(), "metrics_listen", metLn.Addr().String())

	rep, err := s.openReplica()
	if err != nil {
		stopHTTP()
		return err
	}
	hs := handlers.Builtins(c.Handlers)
	for t, h := range s.o.Handlers {
		hs[t] = h
	}
	pool := worker.New(worker.Options{
		Replica:      rep,
		Handlers:     hs,
		Workers:      c.Workers,
		Retry:        backoff.Policy{Base: c.Retry.Base.Duration(), Max: c.Retry.Max.Duration()},
		DrainTimeout: c.ShutdownTimeout.Duration(),
		Clock:        s.o.Clock,
		Logger:       s.log,
		Observer:     s.met,
		Cancels:      s.cancels,
	})
	s.handlerTypes = pool.Types()
	if leading, _ := replica.Leading(rep); leading {
		s.applyQueueSettings(ctx, rep) // before the workers lease anything
	}
	s.rep.Store(&replicaRef{rep})
	s.api.SetReplica(rep)
	rec := rep.Status().Recovery
	var jobs int
	rep.Read(func(m *fsm.Machine) { jobs = m.Len() })
	s.ui.Recovered(s.o.Clock(), jobs)
	s.log.Info("ready",
		"recovery", rec.Duration.Round(time.Microsecond).String(),
		"jobs_recovered", jobs,
		"snapshot_jobs", rec.SnapshotJobs,
		"records_replayed", rec.RecordsReplayed,
		"requeued_in_flight", rec.RequeuedJobs,
		"api", "http://"+apiLn.Addr().String(),
		"metrics", "http://"+metLn.Addr().String()+"/metrics",
		"ui", "http://"+apiLn.Addr().String()+"/ui/",
		"workers", c.Workers,
		"handlers", fmt.Sprint(s.handlerTypes))
	close(s.ready)

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	sched := scheduler.New(scheduler.Options{
		Replica: rep,
		Retention: fsm.Retention{
			Completed: int64(c.Retention.Completed.Duration()),
			Failed:    int64(c.Retention.Failed.Duration()),
			Canceled:  int64(c.Retention.Canceled.Duration()),
		},
		Clock:    s.o.Clock,
		Logger:   s.log,
		Periodic: s.periodic,
		Admit:    func(n int) error { return s.jobs.Admit(rep, n) },
	})
	poolCtx, stopPool := context.WithCancel(runCtx)
	defer stopPool()
	poolErr := make(chan error, 1)
	go func() { poolErr <- pool.Run(poolCtx) }()
	schedCtx, stopSched := context.WithCancel(runCtx)
	defer stopSched()
	schedDone := make(chan struct{})
	go func() { s.leaderOnly(schedCtx, rep, sched); close(schedDone) }()
	uiCtx, stopUI := context.WithCancel(runCtx)
	defer stopUI()
	uiDone := make(chan struct{})
	go func() { s.ui.Run(uiCtx); close(uiDone) }()

	var runErr error
	poolStopped := false
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "drain_timeout", c.ShutdownTimeout.Duration().String())
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-poolErr:
		poolStopped = true
		runErr = err
	}
	// 1. API
	cancelRequests()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	apiSrv.Shutdown(sctx)
	cancel()
	// 2. pool (drains up to shutdown_timeout)
	stopPool()
	if !poolStopped {
		if err := <-poolErr; err != nil && runErr == nil {
			runErr = err
		}
	}
	// 3. scheduler, stats sampler
	stopSched()
	<-schedDone
	stopUI()
	<-uiDone
	// 4. replica
	s.rep.Store(nil)
	if err := rep.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close: %w", err)
	}
	// 5. metrics
	stopHTTP()
	s.log.Info("stopped")
	return runErr
}

// openReplica opens the replica the configuration asks for: the
// single-node WAL replica, or a cluster node.
func (s *Server) openReplica() (replica.Replica, error) {
	c := s.cfg
	if c.Cluster.Enabled {
		return s.openCluster()
	}
	mode, err := wal.ParseSyncMode(string(c.Sync))
	if err != nil {
		return nil, err
	}
	return local.Open(local.Options{
		Dir:                c.DataDir,
		Sync:               mode,
		SyncInterval:       c.SyncInterval.Duration(),
		SegmentSize:        int64(c.WAL.SegmentSize),
		ReserveBytes:       int64(c.WAL.Reserve),
		SnapshotEvery:      uint64(c.Snapshot.EveryRecords),
		SnapshotBytes:      int64(c.Snapshot.EveryBytes),
		SnapshotInterval:   c.Snapshot.Interval.Duration(),
		SnapshotKeep:       c.Snapshot.Keep,
		SnapshotDeltaRatio: deltaRatio(c.Snapshot.RebasePercent),
		SnapshotBaseRate:   baseRate(c.Snapshot.BaseRate),
		Logger:             s.log,
		Clock:              s.o.Clock,
		WALObserver:        s.met,
		OnSnapshot:         s.met.ObserveSnapshot,
		OnApply:            s.applied,
	})
}

func (s *Server) openCluster() (replica.Replica, error) {
	c := s.cfg
	cl := c.Cluster
	peers, err := ParsePeers(cl.Peers)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := ClusterTLS(cl.TLS)
	if err != nil {
		return nil, err
	}
	var token string
	if len(c.Auth.Tokens) > 0 {
		token = c.Auth.Tokens[0]
	}
	return raftrep.Open(raftrep.Options{
		Dir: c.DataDir, NodeID: cl.NodeID, RaftListen: cl.RaftListen, Advertise: cl.RaftAdvertise,
		Bootstrap: cl.Bootstrap, Peers: peers, LogStore: cl.LogStore, TLS: tlsCfg, Token: token, Tokens: c.Auth.Tokens,
		HeartbeatTimeout: cl.HeartbeatTimeout.Duration(), ElectionTimeout: cl.ElectionTimeout.Duration(),
		LeaderLease: cl.LeaderLease.Duration(), ApplyTimeout: cl.ApplyTimeout.Duration(),
		SnapshotThreshold: uint64(c.Snapshot.EveryRecords), SnapshotInterval: c.Snapshot.Interval.Duration(),
		TrailingLogs: uint64(cl.TrailingLogs), SnapshotRetain: c.Snapshot.Keep,
		Logger: s.log, Clock: s.o.Clock, OnApply: s.applied, Observer: s.met,
	})
}

// ParsePeers parses cluster.peers entries ("id=host:port").
func ParsePeers(list []string) ([]raftrep.Peer, error) {
	peers := make([]raftrep.Peer, 0, len(list))
	for _, p := range list {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("cluster.peers: entry %q must be id=host:port", p)
		}
		peers = append(peers, raftrep.Peer{ID: id, Addr: addr})
	}
	return peers, nil
}

// ClusterTLS builds the mutual TLS of the node-to-node port (nil without
// TLS): every node presents its certificate and accepts only peers whose
// certificate the CA signed.
func ClusterTLS(t config.ClusterTLSConfig) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls: %w", err)
	}
	pem, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster.tls.ca: %s holds no PEM certificate", t.CA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// leaderOnly runs the scheduler loops while this node leads, and stops them
// the moment it loses leadership (a single node always leads).
func (s *Server) leaderOnly(ctx context.Context, rep replica.Replica, sched *scheduler.Scheduler) {
	for {
		leading, changed := replica.Leading(rep)
		if leading {
			if changed != nil {
				s.log.Info("leading: scheduler loops start")
			}
			lctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				s.applyQueueSettings(lctx, rep) // the first time this node leads
				sched.Run(lctx)
				close(done)
			}()
			select {
			case <-ctx.Done():
			case <-changed:
			}
			cancel()
			<-done
		} else {
			select {
			case <-ctx.Done():
			case <-changed:
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Server) metricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rep := s.Replica()
		if rep == nil {
			http.Error(w, "recovering\n", http.StatusServiceUnavailable)
			return
		}
		if err := rep.Status().Failed; err != nil {
			http.Error(w, "not ready: "+err.Error()+"\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Uptime is how long the server has been running.
func (s *Server) Uptime() time.Duration { return time.Since(s.started) }

// limitListener accepts at most cap(sem) connections at once. Accept waits
// while all are taken, so further connections wait in the kernel's listen
// backlog (and the client's connect timeout) until one is closed; nothing
// is accepted only to be refused. Like golang.org/x/net/netutil's
// LimitListener, without the dependency.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{} // closed by Close: Accept stops waiting
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection. The slot is freed
// when the connection is closed.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn frees its listener's slot on its first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite passes the half-close that net/http uses before closing a
// connection whose request it did not read to the end.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// deltaRatio maps snapshot.rebase_percent to local.Options: 0 means every
// snapshot is full.
func deltaRatio(percent int) float64 {
	if percent <= 0 {
		return -1
	}
	return float64(percent) / 100
}

// baseRate maps snapshot.base_rate to local.Options: 0 means unlimited.
func baseRate(b config.ByteSize) int64 {
	if b <= 0 {
		return -1
	}
	return int64(b)
}
