// Package raftrep is the cluster replica: the same state machine as the
// single node (internal/fsm, hosted by internal/replica/host), driven by
// hashicorp/raft instead of our WAL. It implements replica.Replica, so the
// rest of the server does not know which one it runs on.
//
// # Data directory
//
//	<dir>/LOCK             flock held while open
//	<dir>/raft/log/        raft's log and stable store on our WAL (package raftlog; the default)
//	<dir>/raft/raft.db     or: raft's log and stable store in raft-boltdb
//	<dir>/raft/snapshots/  raft's snapshots: the fsm's snapshot body
//
// Options.LogStore picks the store of a new data directory; a directory
// that holds one already keeps it (see chooseLogStore).
//
// # Writes
//
// Propose on the leader encodes the command and hands it to raft.Apply; it
// returns once a quorum stored it and this node applied it. On a follower
// it forwards the encoded command to the leader over the node-to-node port
// (HTTP) and returns the leader's result. An answer lost with the leader is
// replica.ErrUnknownOutcome; a write refused because the node no longer
// leads is retried against the next leader until Options.ApplyTimeout.
//
// # Reads
//
// Read reads this node's own state (stale on a follower). ReadBarrier makes
// the next Read linearizable: it asks the leader for its commit index (the
// leader confirms its leadership with a quorum first) and waits until this
// node has applied it.
//
// # The node-to-node port
//
// One listener (Options.RaftListen) carries raft's RPCs and the HTTP
// between nodes, told apart by a tag byte, with mutual TLS when configured.
package raftrep

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/host"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"github.com/beaver-raft/beaver-raft/internal/replica/raftrep/raftlog"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Peer is one initial voter.
type Peer struct {
	ID, Addr string
}

// Options configure a Replica. Zero durations take raft's defaults scaled
// for a LAN (see docs/cluster.md).
type Options struct {
	Dir    string
	NodeID string
	// Listener is the node-to-node listener; if nil, RaftListen is opened.
	Listener   net.Listener
	RaftListen string
	// Advertise is the address other nodes dial (default: the listener's).
	Advertise string
	Bootstrap bool
	Peers     []Peer
	// LogStore is the raft log store of a new data directory: LogStoreWAL
	// or LogStoreBolt (default DefaultLogStore). A directory that holds a
	// store keeps it, whatever this says.
	LogStore string
	TLS      *tls.Config // mutual TLS on the node-to-node port; nil: plaintext
	// Token is sent as a bearer token on calls to other nodes, and Tokens
	// are the ones accepted from them (the API's tokens; none: open).
	Token  string
	Tokens []string

	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	LeaderLease      time.Duration
	ApplyTimeout     time.Duration
	// SnapshotThreshold and SnapshotInterval are raft's snapshot policy;
	// TrailingLogs the entries kept after a snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	SnapshotRetain    int

	Logger  *slog.Logger
	Clock   func() time.Time // stamps the commands the replica proposes itself; default time.Now
	OnApply host.OnApply
	// Observer receives the apply latency and forwarded calls (metrics).
	Observer Observer
	// Dial replaces the dialer of the node-to-node port (tests inject
	// partitions with it).
	Dial DialFunc
	// LogFS is the file system of the WAL log store (tests inject faults
	// with it); default the OS's.
	LogFS vfs.FS
}

func (o *Options) defaults() {
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 500 * time.Millisecond
	}
	if o.ElectionTimeout <= 0 {
		o.ElectionTimeout = 500 * time.Millisecond
	}
	if o.LeaderLease <= 0 {
		o.LeaderLease = 250 * time.Millisecond
	}
	if o.ApplyTimeout <= 0 {
		o.ApplyTimeout = 10 * time.Second
	}
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 100_000
	}
	if o.SnapshotInterval <= 0 {
		o.SnapshotInterval = 5 * time.Minute
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 10_240
	}
	if o.SnapshotRetain <= 0 {
		o.SnapshotRetain = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
}

// Observer receives figures of the cluster replica; calls come from many
// goroutines.
type Observer interface {
	ObserveRaftApply(d time.Duration)
	ObserveForward(kind string, err error)
}

type noObserver struct{}

func (noObserver) ObserveRaftApply(time.Duration) {}
func (noObserver) ObserveForward(string, error)   {}

// Replica is a cluster node. See the package documentation.
type Replica struct {
	o       Options
	log     *slog.Logger
	h       *host.Host
	raft    *raft.Raft
	mux     *mux
	store   logStore
	kind    string // the store's kind: LogStoreWAL or LogStoreBolt
	snaps   *raft.FileSnapshotStore
	trans   *raft.NetworkTransport
	release func() error
	client  *http.Client
	rpc     *http.Server
	bg      sync.WaitGroup
	stop    chan struct{}
	// storeFailed: the log store failed and raft was stopped
	storeFailed atomic.Bool
	closed      atomic.Bool
	once        sync.Once

	recovery replica.Recovery

	lmu        sync.Mutex
	leading    bool
	leadCh     chan struct{} // closed at the next change of this node's leadership
	readyCh    chan struct{} // closed once this term's first command is applied (leader)
	leaderCh   chan struct{} // closed at the next change of the known leader
	leaderChgs atomic.Uint64
}

var (
	_ replica.Replica      = (*Replica)(nil)
	_ replica.Leadership   = (*Replica)(nil)
	_ replica.Linearizable = (*Replica)(nil)
)

// Paths of the data directory.
func raftDir(dir string) string { return filepath.Join(dir, "raft") }

// IsClusterDir reports whether dir holds a cluster node's state (a raft
// log of either store).
func IsClusterDir(dir string) bool {
	kind, err := logStoreOnDisk(raftDir(dir))
	return kind != "" || errors.Is(err, ErrTwoLogStores)
}

// ErrMode: the data directory belongs to the other mode.
var ErrMode = errors.New("data directory of another mode")

// Open opens (or creates) the node's data directory, starts raft and the
// node-to-node port, and bootstraps the cluster when asked to and the node
// has no state yet (a no-op otherwise).
func Open(o Options) (*Replica, error) {
	start := time.Now()
	o.defaults()
	if o.NodeID == "" {
		return nil, errors.New("cluster replica: no node id")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if local.HasState(o.Dir) && !IsClusterDir(o.Dir) {
		if !o.Bootstrap {
			return nil, fmt.Errorf("%w: %s holds a single-node queue (wal/, snapshots/); seed a cluster from it with `beaver-raft cluster init --data-dir %s` or start this node with --bootstrap", ErrMode, o.Dir, o.Dir)
		}
		if err := Seed(SeedOptions{Dir: o.Dir, NodeID: o.NodeID, Peers: o.Peers, LogStore: o.LogStore, Logger: o.Logger}); err != nil {
			return nil, err
		}
	}
	release, err := local.LockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	r := &Replica{o: o, log: o.Logger, release: release, stop: make(chan struct{}),
		leadCh: make(chan struct{}), leaderCh: make(chan struct{})}
	if err := r.open(); err != nil {
		r.closeAll()
		return nil, err
	}
	r.recovery.Duration = time.Since(start)
	r.h.Read(func(m *fsm.Machine) { r.recovery.SnapshotJobs = m.Len() })
	return r, nil
}

func (r *Replica) open() error {
	o := r.o
	dir := raftDir(o.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	hl := newHCLog(r.log)
	var err error
	if r.kind, err = chooseLogStore(dir, o.LogStore, r.log); err != nil {
		return err
	}
	if r.store, err = openLogStore(r.kind, dir, o.LogFS, r.log); err != nil {
		return err
	}
	r.log.Info("raft log store", "log_store", r.kind, "dir", dir)
	r.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir), o.SnapshotRetain, hl)
	if err != nil {
		return fmt.Errorf("open raft snapshots: %w", err)
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.RaftListen); err != nil {
			return fmt.Errorf("raft listen on %s: %w", o.RaftListen, err)
		}
	}
	r.mux = newMux(ln, o.TLS, o.Dial, r.log)
	advertise := o.Advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	layer := &advertisedLayer{raftLayer: raftLayer{r.mux}, addr: advertise}
	r.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 5, Timeout: 10 * time.Second, Logger: hl,
	})
	r.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return r.mux.dialTagged(ctx, addr, tagHTTP)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}}

	r.h = host.New(fsm.New(), 0, o.OnApply)
	f := &raftFSM{h: r.h, restoredIndex: r.newestSnapshotIndex}

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(o.NodeID)
	cfg.HeartbeatTimeout = o.HeartbeatTimeout
	cfg.ElectionTimeout = o.ElectionTimeout
	cfg.LeaderLeaseTimeout = o.LeaderLease
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold = o.SnapshotThreshold
	cfg.SnapshotInterval = o.SnapshotInterval
	cfg.TrailingLogs = o.TrailingLogs
	// No buffered apply channel: raft does not answer the futures left in
	// that buffer at shutdown, so a Propose would wait forever. Concurrent
	// proposals are still batched by the leader loop.
	cfg.BatchApplyCh = false
	cfg.MaxAppendEntries = 256
	cfg.Logger = hl
	notify := make(chan bool, 8)
	cfg.NotifyCh = notify
	if err := raft.ValidateConfig(cfg); err != nil {
		return fmt.Errorf("raft settings: %w", err)
	}
	existing, err := raft.HasExistingState(r.store, r.store, r.snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	// The leader reads every entry it sends back from the log store, once
	// per follower: keep the newest in memory instead of in bolt.
	logs, err := raft.NewLogCache(logCache, r.store)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	r.raft, err = raft.NewRaft(cfg, f, logs, r.store, r.snaps, r.trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	r.recovery.SnapshotLSN = r.newestSnapshotIndex()

	// the HTTP between nodes
	r.rpc = &http.Server{Handler: r.rpcHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)}
	if fs, ok := r.store.(interface{ Failed() <-chan struct{} }); ok {
		r.bg.Add(1)
		go func() { defer r.bg.Done(); r.stopOnStoreFailure(fs.Failed()) }()
	}
	r.bg.Add(3)
	go func() { defer r.bg.Done(); r.rpc.Serve(httpListener{r.mux}) }()
	go func() { defer r.bg.Done(); r.watchLeadership(notify) }()
	obs := make(chan raft.Observation, 16)
	observer := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.raft.RegisterObserver(observer)
	go func() {
		defer r.bg.Done()
		defer r.raft.DeregisterObserver(observer)
		r.watchLeader(obs)
	}()

	if o.Bootstrap && !existing {
		servers := make([]raft.Server, 0, len(o.Peers))
		for _, p := range o.Peers {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
		}
		if len(servers) == 0 {
			servers = append(servers, raft.Server{ID: cfg.LocalID, Address: raft.ServerAddress(advertise), Suffrage: raft.Voter})
		}
		if err := r.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap cluster: %w", err)
		}
		r.log.Info("cluster bootstrapped", "servers", len(servers))
	}
	return nil
}

// stopOnStoreFailure stops raft once the log store has failed. The store
// refuses every write until a restart, and raft panics when it cannot store
// the term of an election (a leader that failed to store entries steps down
// and starts one after a heartbeat timeout): stopping raft at once keeps the
// node up, refusing writes and reporting the failure (Status.Failed) until
// it is restarted.
func (r *Replica) stopOnStoreFailure(failed <-chan struct{}) {
	select {
	case <-failed:
	case <-r.stop:
		return
	}
	r.storeFailed.Store(true)
	r.log.Error("raft stopped: its log store failed; restart the node to recover from what the disk holds")
	r.raft.Shutdown().Error()
}

// storeErr is the log store's failure, or nil.
func (r *Replica) storeErr() error {
	if f, ok := r.store.(interface{ Err() error }); ok {
		return f.Err()
	}
	return nil
}

func (r *Replica) newestSnapshotIndex() uint64 {
	metas, err := r.snaps.List()
	if err != nil || len(metas) == 0 {
		return 0
	}
	return metas[0].Index
}

// advertisedLayer reports the advertised address as the layer's own, so
// raft tells other nodes where to dial.
type advertisedLayer struct {
	raftLayer
	addr string
}

func (l *advertisedLayer) Addr() net.Addr { return stringAddr(l.addr) }

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// watchLeadership follows raft's NotifyCh (this node's leadership).
func (r *Replica) watchLeadership(notify <-chan bool) {
	for {
		select {
		case <-r.stop:
			return
		case lead := <-notify:
			r.lmu.Lock()
			if lead != r.leading {
				r.leading = lead
				close(r.leadCh)
				r.leadCh = make(chan struct{})
			}
			r.lmu.Unlock()
			r.log.Info("raft leadership", "leading", lead, "term", r.raft.CurrentTerm())
			if lead {
				ready := make(chan struct{})
				r.lmu.Lock()
				r.readyCh = ready
				r.lmu.Unlock()
				r.bg.Add(1)
				go func() { defer r.bg.Done(); r.firstCommand(ready) }()
			}
		}
	}
}

// firstCommand proposes a Tick as the first command of a new leader's
// term. Raft starts every term with a no-op entry that the state machine
// never sees; the Tick follows it, so that the commit index is again one
// the state machine applies, which linearizable reads wait for (and it
// promotes what is due at once).
//
// Until it is applied the leader's commit index may lag behind what earlier
// leaders committed, so readIndex waits for ready.
func (r *Replica) firstCommand(ready chan struct{}) {
	for {
		data := fsm.AppendCommand(nil, &fsm.Command{Kind: fsm.KindTick, Now: r.o.Clock().UnixNano(), Max: 1})
		_, err := r.apply(data)
		if err == nil {
			close(ready)
			return
		}
		if r.closed.Load() || r.raft.State() != raft.Leader {
			return // the next leader proposes its own
		}
		r.log.Warn("first command of the term failed, trying again", "err", err)
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			return
		}
	}
}

// watchLeader follows leader observations (any node's leadership).
func (r *Replica) watchLeader(obs <-chan raft.Observation) {
	for {
		select {
		case <-r.stop:
			return
		case <-obs:
			r.leaderChgs.Add(1)
			r.lmu.Lock()
			close(r.leaderCh)
			r.leaderCh = make(chan struct{})
			r.lmu.Unlock()
		}
	}
}

func (r *Replica) leaderChanged() <-chan struct{} {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	return r.leaderCh
}

// Leading implements replica.Leadership.
func (r *Replica) Leading() (bool, <-chan struct{}) {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	return r.leading, r.leadCh
}

// Propose implements replica.Replica.
func (r *Replica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	if r.closed.Load() {
		return fsm.Result{}, replica.ErrClosed
	}
	if r.storeFailed.Load() {
		return fsm.Result{}, fmt.Errorf("%w: %w", replica.ErrFailed, r.storeErr())
	}
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, err
	}
	data := fsm.AppendCommand(nil, cmd)
	var res fsm.Result
	err := r.withLeader(ctx, func(leader bool, addr, id string) (err error) {
		if leader {
			res, err = r.apply(data)
		} else {
			res, err = r.forward(ctx, addr, id, data)
		}
		return err
	})
	return res, err
}

// withLeader runs fn as the leader or with the leader's address. While no
// leader is known, or fn fails with ErrNotLeader (nothing was done), it
// waits for the next leader and tries again, until ApplyTimeout or ctx.
func (r *Replica) withLeader(ctx context.Context, fn func(leader bool, addr, id string) error) error {
	deadline := time.Now().Add(r.o.ApplyTimeout)
	for {
		changed := r.leaderChanged()
		var err error
		if r.raft.State() == raft.Leader {
			err = fn(true, "", "")
		} else if addr, id := r.raft.LeaderWithID(); addr != "" {
			err = fn(false, string(addr), string(id))
		} else {
			err = r.notLeader()
		}
		if !errors.Is(err, replica.ErrNotLeader) {
			return err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return err
		}
		t := time.NewTimer(min(wait, 100*time.Millisecond))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-r.stop:
			t.Stop()
			return replica.ErrClosed
		}
		t.Stop()
	}
}

func (r *Replica) notLeader() error {
	addr, id := r.raft.LeaderWithID()
	return &replica.NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// apply proposes an encoded command on the leader and waits for it.
func (r *Replica) apply(data []byte) (fsm.Result, error) {
	if len(data) > maxEntry {
		return fsm.Result{}, fmt.Errorf("%w: %d bytes, limit %d", replica.ErrTooLarge, len(data), maxEntry)
	}
	start := time.Now()
	f := r.raft.Apply(data, r.o.ApplyTimeout)
	if err := f.Error(); err != nil {
		return fsm.Result{}, r.applyErr(err)
	}
	r.o.Observer.ObserveRaftApply(time.Since(start))
	a, ok := f.Response().(*applied)
	if !ok || a == nil {
		return fsm.Result{}, fmt.Errorf("raft: unexpected response %T", f.Response())
	}
	if a.err != nil {
		return fsm.Result{}, a.err
	}
	return a.res, nil
}

// logCache is the number of the newest raft entries kept in memory for
// replication (the leader reads each entry it sends to a follower), as
// many as one AppendEntries carries (MaxAppendEntries).
const logCache = 256

// maxEntry bounds one raft entry (the API's max_request is 64 MiB; raft
// sends entries whole): what one WAL record of the raftlog store holds, 36
// bytes short of 64 MiB, whichever store runs.
const maxEntry = raftlog.MaxData

// applyErr maps an error of raft.Apply.
func (r *Replica) applyErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// refused before it entered the log
		return r.notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: raft did not take the write within %v", context.DeadlineExceeded, r.o.ApplyTimeout)
	case errors.Is(err, raft.ErrRaftShutdown):
		if serr := r.storeErr(); serr != nil && !r.closed.Load() {
			return fmt.Errorf("%w: %w", replica.ErrFailed, serr)
		}
		return errors.Join(replica.ErrClosed, fmt.Errorf("%w: %v", replica.ErrUnknownOutcome, err))
	}
	// ErrLeadershipLost, ErrAbortedByRestore, ...: it may have committed
	return fmt.Errorf("%w: %v", replica.ErrUnknownOutcome, err)
}

// forward sends an encoded command to the leader. Once sent, the caller's
// context no longer stops the wait: the outcome would be unknown.
func (r *Replica) forward(ctx context.Context, addr, id string, data []byte) (fsm.Result, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.ApplyTimeout+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, "http://"+addr+"/raft/v1/propose", bytes.NewReader(data))
	if err != nil {
		return fsm.Result{}, err
	}
	var out wireResult
	err = r.call(req, &out)
	r.o.Observer.ObserveForward("propose", err)
	if err != nil {
		return fsm.Result{}, err
	}
	return out.result(), nil
}

// call does a request to another node and decodes its answer into out; a
// failure answer becomes the matching replica error.
func (r *Replica) call(req *http.Request, out any) error {
	if r.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.Token)
	}
	req.Header.Set("X-Beaver-Node", r.o.NodeID)
	resp, err := r.client.Do(req)
	if err != nil {
		var op *net.OpError
		if req.Method == http.MethodGet || (errors.As(err, &op) && op.Op == "dial") || errors.Is(err, errClosed) {
			// nothing reached the leader: ask the next one
			return &replica.NotLeaderError{LeaderAddr: req.URL.Host}
		}
		// the request may have reached the leader
		return fmt.Errorf("%w: forwarding to the leader at %s: %v", replica.ErrUnknownOutcome, req.URL.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the leader's answer: %v", replica.ErrUnknownOutcome, err)
	}
	if resp.StatusCode == http.StatusOK {
		return json.Unmarshal(body, out)
	}
	var f wireFailure
	if json.Unmarshal(body, &f) != nil {
		return fmt.Errorf("node %s answered %d: %s", req.URL.Host, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	switch f.Code {
	case failNotLeader:
		return &replica.NotLeaderError{LeaderID: f.LeaderID, LeaderAddr: f.LeaderAddr}
	case failUnknown:
		return fmt.Errorf("%w: %s", replica.ErrUnknownOutcome, f.Msg)
	case failTooLarge:
		return fmt.Errorf("%w: %s", replica.ErrTooLarge, f.Msg)
	case failLastVoter:
		return ErrLastVoter
	case failNoSuchNode:
		return fmt.Errorf("%w: %s", ErrNoSuchNode, f.Msg)
	case failClosed:
		// the leader is shutting down: ask again once another leads
		return &replica.NotLeaderError{}
	}
	return fmt.Errorf("leader: %s", f.Msg)
}

// ReadBarrier implements replica.Linearizable: once it returns, a Read on
// this node sees every write committed before the call.
func (r *Replica) ReadBarrier(ctx context.Context) error {
	if r.closed.Load() {
		return replica.ErrClosed
	}
	var idx uint64
	err := r.withLeader(ctx, func(leader bool, addr, _ string) (err error) {
		if leader {
			idx, err = r.readIndex()
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/raft/v1/readindex", nil)
		if err != nil {
			return err
		}
		var out struct {
			Index uint64 `json:"index"`
		}
		err = r.call(req, &out)
		r.o.Observer.ObserveForward("readindex", err)
		idx = out.Index
		return err
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.o.ApplyTimeout)
	defer cancel()
	if err := r.h.WaitApplied(wctx, idx); err != nil {
		return fmt.Errorf("%w: waiting to apply index %d: %v", replica.ErrNotLeader, idx, err)
	}
	return nil
}

// readIndex is the leader's half of a linearizable read: its commit index,
// once a quorum confirmed that it still leads. Every term's first command
// (firstCommand) makes the commit index one that the state machine sees,
// so waiting for it to be applied ends.
func (r *Replica) readIndex() (uint64, error) {
	r.lmu.Lock()
	ready := r.readyCh
	r.lmu.Unlock()
	if ready == nil {
		return 0, r.notLeader()
	}
	t := time.NewTimer(r.o.ApplyTimeout)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
		return 0, r.notLeader()
	case <-r.stop:
		return 0, replica.ErrClosed
	}
	idx := r.raft.CommitIndex()
	if err := r.raft.VerifyLeader().Error(); err != nil {
		return 0, r.notLeader()
	}
	return idx, nil
}

// Read implements replica.Replica: this node's own state.
func (r *Replica) Read(fn func(m *fsm.Machine)) { r.h.Read(fn) }

// Changed implements replica.Replica.
func (r *Replica) Changed() <-chan struct{} { return r.h.Changed() }

// Status implements replica.Replica.
func (r *Replica) Status() replica.Status {
	st := replica.Status{Role: strings.ToLower(r.raft.State().String()), AppliedLSN: r.h.Applied(), Recovery: r.recovery}
	if r.storeFailed.Load() {
		// raft's state can read follower after it stopped: a leader that
		// failed to store entries steps down after the store failed
		st.Role = strings.ToLower(raft.Shutdown.String())
	}
	addr, id := r.raft.LeaderWithID()
	cs := &replica.ClusterStatus{
		NodeID: r.o.NodeID, LeaderID: string(id), LeaderAddr: string(addr),
		Term: r.raft.CurrentTerm(), CommitIndex: r.raft.CommitIndex(), AppliedIndex: r.h.Applied(),
		LastIndex: r.raft.LastIndex(), LeaderChanges: r.leaderChgs.Load(),
	}
	if r.raft.State() != raft.Leader {
		if lc := r.raft.LastContact(); !lc.IsZero() {
			cs.LastContact = time.Since(lc)
		}
	}
	if f := r.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			cs.Servers = append(cs.Servers, replica.Server{ID: string(s.ID), Address: string(s.Address),
				Voter: s.Suffrage == raft.Voter, Leader: s.ID == id})
		}
		sort.Slice(cs.Servers, func(i, j int) bool { return cs.Servers[i].ID < cs.Servers[j].ID })
	}
	st.Cluster = cs
	if metas, err := r.snaps.List(); err == nil && len(metas) > 0 {
		st.Snapshot.Count = len(metas)
		st.Snapshot.LastLSN, st.Snapshot.LastSize = metas[0].Index, metas[0].Size
	}
	st.WAL.LastLSN = cs.LastIndex
	if first, err := r.store.FirstIndex(); err == nil {
		st.WAL.FirstLSN = first
	}
	if err := r.storeErr(); err != nil {
		// The WAL store refuses every write after a failed one: this
		// node's raft is stopped until a restart.
		st.Failed = fmt.Errorf("%w: %w", replica.ErrFailed, err)
	}
	return st
}

// Membership errors.
var (
	ErrLastVoter  = errors.New("cluster: refusing to remove the last voter")
	ErrNoSuchNode = errors.New("cluster: no such node")
)

// Join adds node id at raft address addr as a voter (through the leader).
func (r *Replica) Join(ctx context.Context, id, addr string) error {
	return r.membership(ctx, "join", id, addr)
}

// Remove removes node id from the cluster (through the leader). The last
// voter is never removed.
func (r *Replica) Remove(ctx context.Context, id string) error {
	return r.membership(ctx, "remove", id, "")
}

func (r *Replica) membership(ctx context.Context, op, id, addr string) error {
	return r.withLeader(ctx, func(leader bool, leaderAddr, _ string) error {
		if leader {
			return r.changeMembership(op, id, addr)
		}
		body, _ := json.Marshal(map[string]string{"id": id, "addr": addr})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+leaderAddr+"/raft/v1/"+op, bytes.NewReader(body))
		if err != nil {
			return err
		}
		var out struct{}
		err = r.call(req, &out)
		r.o.Observer.ObserveForward("membership", err)
		return err
	})
}

func (r *Replica) changeMembership(op, id, addr string) error {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	switch op {
	case "join":
		for _, s := range servers {
			if string(s.ID) == id && string(s.Address) == addr && s.Suffrage == raft.Voter {
				return nil // already a member
			}
		}
		if err := r.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, r.o.ApplyTimeout).Error(); err != nil {
			return r.applyErr(err)
		}
	case "remove":
		voters, found := 0, false
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
			if string(s.ID) == id {
				found = true
			}
		}
		switch {
		case !found:
			return fmt.Errorf("%w: %s", ErrNoSuchNode, id)
		case voters <= 1:
			return ErrLastVoter
		}
		if err := r.raft.RemoveServer(raft.ServerID(id), 0, r.o.ApplyTimeout).Error(); err != nil {
			return r.applyErr(err)
		}
	}
	return nil
}

// Close implements replica.Replica: it stops raft (without leaving the
// cluster: a restarted node rejoins by itself) and the node-to-node port.
func (r *Replica) Close() error {
	var err error
	r.once.Do(func() {
		r.closed.Store(true)
		err = r.closeAll()
	})
	return err
}

func (r *Replica) closeAll() error {
	var errs []error
	if r.raft != nil {
		errs = append(errs, r.raft.Shutdown().Error())
	}
	close(r.stop)
	if r.rpc != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r.rpc.Shutdown(sctx)
		cancel()
	}
	if r.trans != nil {
		errs = append(errs, r.trans.Close())
	}
	if r.mux != nil {
		r.mux.close()
	}
	r.bg.Wait()
	if r.client != nil {
		r.client.CloseIdleConnections()
	}
	if r.store != nil {
		errs = append(errs, r.store.Close())
	}
	if r.release != nil {
		errs = append(errs, r.release())
	}
	return errors.Join(errs...)
}

// Addr is the node-to-node listener's address.
func (r *Replica) Addr() string { return r.mux.ln.Addr().String() }

// newHCLog adapts our slog logger for raft: raft's info chatter goes to
// debug; its warnings and errors stay.
func newHCLog(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Info,
		Output: &slogWriter{l: l},
	})
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(msg, "use of closed network connection"):
		w.l.Debug(msg) // a connection closed by a shutdown
	case strings.Contains(msg, "[ERROR]"):
		w.l.Error(msg)
	case strings.Contains(msg, "[WARN]"):
		w.l.Warn(msg)
	default:
		w.l.Debug(msg)
	}
	return len(p), nil
}
