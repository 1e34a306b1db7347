package raftlog

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countingStore counts the kinds of DeleteRange raft asks for.
type countingStore struct {
	*Store
	tails, heads atomic.Int64
}

func (c *countingStore) DeleteRange(min, max uint64) error {
	first, _ := c.FirstIndex()
	if min > first {
		c.tails.Add(1)
	} else {
		c.heads.Add(1)
	}
	return c.Store.DeleteRange(min, max)
}

type raftNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	store *countingStore
	fsm   *raft.MockFSM
	trans *raft.InmemTransport
	r     *raft.Raft
}

func startRaftNode(t *testing.T, id, dir string) *raftNode {
	t.Helper()
	s := mustOpen(t, filepath.Join(dir, "log"), Options{SegmentSize: 8 << 10})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	must(t, err)
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	n := &raftNode{id: raft.ServerID(id), addr: addr, dir: dir, store: &countingStore{Store: s}, fsm: &raft.MockFSM{}, trans: trans}
	cfg := raft.DefaultConfig()
	cfg.LocalID = n.id
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 200 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold = 64
	cfg.SnapshotInterval = 100 * time.Millisecond
	cfg.TrailingLogs = 100
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	logs, err := raft.NewLogCache(32, n.store)
	must(t, err)
	n.r, err = raft.NewRaft(cfg, n.fsm, logs, n.store, snaps, trans)
	must(t, err)
	return n
}

func (n *raftNode) stop(t *testing.T) {
	t.Helper()
	must(t, n.r.Shutdown().Error())
	must(t, n.trans.Close())
	must(t, n.store.Close())
}

func connect(nodes []*raftNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

func waitLeader(t *testing.T, nodes []*raftNode, not *raftNode) *raftNode {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n != not && n.r.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil
}

// applyN applies commands from..from+n-1 through the leader. Those whose
// outcome a lost leadership made unknown are sent again (from the first
// one that failed), so a command may be applied twice; converge counts
// each once.
func applyN(t *testing.T, nodes []*raftNode, from, n int) {
	t.Helper()
	for end := from + n; from < end; {
		leader := waitLeader(t, nodes, nil)
		var futures []raft.ApplyFuture
		for i := from; i < end; i++ {
			futures = append(futures, leader.r.Apply([]byte(fmt.Sprintf("cmd-%d", i)), 5*time.Second))
		}
		failed := -1
		for i, f := range futures {
			if err := f.Error(); err != nil && failed < 0 {
				t.Logf("cmd-%d: %v; sending again", from+i, err)
				failed = i
			}
		}
		if failed < 0 {
			return
		}
		from += failed
	}
}

// distinct is the commands of logs in the order of their first
// application.
func distinct(logs [][]byte) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range logs {
		if !seen[string(l)] {
			seen[string(l)] = true
			out = append(out, string(l))
		}
	}
	return out
}

// converge waits until every node's state machine applied the same
// sequence, holding commands cmd-0..cmd-(n-1) in order.
func converge(t *testing.T, nodes []*raftNode, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		ref := nodes[0].fsm.Logs()
		for _, nd := range nodes {
			logs := nd.fsm.Logs()
			if len(distinct(logs)) != n || len(logs) != len(ref) {
				ok = false
				break
			}
			for i := range logs {
				if !bytes.Equal(logs[i], ref[i]) {
					t.Fatalf("node %s applied %q at %d, node %s %q", nd.id, logs[i], i, nodes[0].id, ref[i])
				}
			}
		}
		if ok {
			for i, l := range distinct(ref) {
				if want := fmt.Sprintf("cmd-%d", i); l != want {
					t.Fatalf("command %d is %q, want %q", i, l, want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			for _, nd := range nodes {
				t.Logf("node %s applied %d", nd.id, len(nd.fsm.Logs()))
			}
			t.Fatalf("state machines did not converge on %d commands", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three hashicorp/raft nodes on this store: replication, an isolated
// leader whose uncommitted entries conflict (DeleteRange at the tail on
// it), snapshots and compaction (DeleteRange at the head), and a restart
// of every node from its directory.
func TestRaftCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a raft cluster")
	}
	base := t.TempDir()
	var nodes []*raftNode
	for i := range 3 {
		nodes = append(nodes, startRaftNode(t, fmt.Sprintf("n%d", i+1), filepath.Join(base, fmt.Sprintf("n%d", i+1))))
	}
	connect(nodes)
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	must(t, nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	waitLeader(t, nodes, nil)
	applyN(t, nodes, 0, 150)
	converge(t, nodes, 150)

	// Isolate the leader and let it append entries no one else gets.
	old := waitLeader(t, nodes, nil)
	old.trans.DisconnectAll()
	for _, n := range nodes {
		if n != old {
			n.trans.Disconnect(old.addr)
		}
	}
	var lost []raft.ApplyFuture
	for i := range 10 {
		lost = append(lost, old.r.Apply([]byte(fmt.Sprintf("lost-%d", i)), time.Second))
	}
	leader := waitLeader(t, nodes, old)
	applyN(t, []*raftNode{leader}, 150, 40)
	for _, f := range lost {
		if f.Error() == nil {
			t.Fatal("an isolated leader committed an entry")
		}
	}
	connect(nodes)
	converge(t, nodes, 190)
	if old.store.tails.Load() == 0 {
		t.Fatal("the old leader never deleted its conflicting entries")
	}
	heads := int64(0)
	for _, n := range nodes {
		heads += n.store.heads.Load()
	}
	if heads == 0 {
		t.Fatal("no compaction after snapshots")
	}
	t.Logf("tail deletes on the old leader: %d; compactions: %d", old.store.tails.Load(), heads)

	// Restart every node from its directory.
	for _, n := range nodes {
		n.stop(t)
	}
	for i, n := range nodes {
		nodes[i] = startRaftNode(t, string(n.id), n.dir)
	}
	connect(nodes)
	applyN(t, nodes, 190, 20)
	converge(t, nodes, 210)
	for _, n := range nodes {
		n.stop(t)
	}
}
