package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

// ClusterTarget is which node of an in-process cluster the clients talk
// to.
type ClusterTarget string

const (
	// TargetLeader: the clients talk to the leader.
	TargetLeader ClusterTarget = "leader"
	// TargetFollower: the clients talk to a follower, which forwards every
	// write to the leader over the node-to-node port.
	TargetFollower ClusterTarget = "follower"
)

// clusterReadyTimeout bounds the wait for the in-process cluster to elect
// a leader that every node knows.
const clusterReadyTimeout = 30 * time.Second

// clusterNode is one server of an in-process cluster.
type clusterNode struct {
	id   string
	dir  string
	s    *server.Server
	stop context.CancelFunc
	done chan error
}

// startCluster starts o.Cluster servers in cluster mode in this process,
// each on a temporary data directory and loopback ports, all bootstrapped
// with the same peers; it waits until one leads and every node knows it,
// and returns the node o.ClusterTarget names as the target. Counts and
// changes are read from the leader (writes are answered once the leader
// applied them).
func startCluster(ctx context.Context, o Options) (t *target, err error) {
	n := o.Cluster
	peers := make([]string, n)
	for i := range n {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		peers[i] = fmt.Sprintf("n%d=127.0.0.1:%d", i+1, port)
	}
	nodes := make([]*clusterNode, 0, n)
	stopAll := func() error {
		var errs []error
		for _, nd := range nodes {
			nd.stop()
		}
		for _, nd := range nodes {
			errs = append(errs, <-nd.done)
			if !o.Keep {
				os.RemoveAll(nd.dir)
			}
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	for i := range n {
		dir, err := os.MkdirTemp(o.DataDir, fmt.Sprintf("beaver-bench-n%d-", i+1))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		id := fmt.Sprintf("n%d", i+1)
		cfg := config.Default()
		cfg.DataDir = dir
		cfg.Listen = "127.0.0.1:0"
		cfg.MetricsListen = "127.0.0.1:0"
		cfg.Workers = o.Workers
		cfg.Cluster.Enabled = true
		cfg.Cluster.NodeID = id
		cfg.Cluster.RaftListen = peers[i][len(id)+1:]
		cfg.Cluster.Bootstrap = true
		cfg.Cluster.Peers = peers
		if o.RaftLogStore != "" {
			cfg.Cluster.LogStore = o.RaftLogStore
		}
		s, err := server.New(server.Options{Config: cfg, Logger: o.Logger.With("node", id), Version: "bench"})
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: node %s: %w", id, err)
		}
		runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		nd := &clusterNode{id: id, dir: dir, s: s, stop: stop, done: make(chan error, 1)}
		go func() { nd.done <- s.Run(runCtx) }()
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		select {
		case <-nd.s.Ready():
		case err := <-nd.done:
			nd.done <- err // for stopAll
			return nil, fmt.Errorf("bench: starting node %s: %w", nd.id, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	leader, err := waitLeader(ctx, nodes)
	if err != nil {
		return nil, err
	}
	tgt := leader
	if o.ClusterTarget == TargetFollower {
		for _, nd := range nodes {
			if nd != leader {
				tgt = nd
				break
			}
		}
	}
	lrep, trep := leader.s.Replica(), tgt.s.Replica()
	base := "http://" + tgt.s.Addr().String()
	c := client.New(base)
	hc := &http.Client{Timeout: 10 * time.Second}
	return &target{
		name:        clusterName(n, tgt.id, leader.id),
		url:         base,
		c:           c,
		dir:         tgt.dir,
		usageSource: "self",
		metricsURL:  "http://" + tgt.s.MetricsAddr().String() + "/metrics",
		hc:          hc,
		usage:       func(context.Context) (Usage, error) { return selfUsage() },
		counts: func(_ context.Context, q string) (api.StateCounts, error) {
			return replicaCounts(lrep, q), nil
		},
		changed: lrep.Changed,
		// A lease that waits 0s is answered from the node's own state
		// when it holds no pending job: a follower must have applied the
		// fill first.
		settle: func(ctx context.Context) error { return replica.ReadBarrier(ctx, trep) },
		close: func() error {
			c.Close()
			hc.CloseIdleConnections()
			return stopAll()
		},
	}, nil
}

func clusterName(n int, target, leader string) string {
	if target == leader {
		return fmt.Sprintf("in-process cluster of %d, clients on the leader %s", n, leader)
	}
	return fmt.Sprintf("in-process cluster of %d, clients on the follower %s (leader %s)", n, target, leader)
}

// waitLeader waits until one node leads and every node names it as the
// leader.
func waitLeader(ctx context.Context, nodes []*clusterNode) (*clusterNode, error) {
	deadline := time.Now().Add(clusterReadyTimeout)
	for {
		var leader *clusterNode
		for _, nd := range nodes {
			if l, _ := replica.Leading(nd.s.Replica()); l {
				leader = nd
			}
		}
		if leader != nil {
			agreed := true
			for _, nd := range nodes {
				cs := nd.s.Replica().Status().Cluster
				if cs == nil || cs.LeaderID != leader.id {
					agreed = false
				}
			}
			if agreed {
				return leader, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench: no leader that every node knows within %s", clusterReadyTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
