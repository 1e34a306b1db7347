package raftrep

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

// A single-node data directory seeds a cluster without export: every job
// is there on the seeded node and reaches a node that joins empty.
func TestSeedFromSingleNode(t *testing.T) {
	dir := t.TempDir()
	rep, err := local.Open(local.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	specs := make([]fsm.JobSpec, 100)
	for i := range specs {
		specs[i] = fsm.JobSpec{Queue: "default", Type: "t", Payload: "null"}
	}
	if res, err := rep.Propose(ctx, &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(), Jobs: specs}); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	var want [32]byte
	rep.Read(func(m *fsm.Machine) { want = m.Digest() })
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}

	// in cluster mode without seeding: refused, naming the way out
	if _, err := Open(Options{Dir: dir, NodeID: "n1", RaftListen: "127.0.0.1:0"}); !errors.Is(err, ErrMode) || !strings.Contains(err.Error(), "cluster init") {
		t.Fatalf("cluster open of a single-node dir: %v", err)
	}

	ln1, _ := net.Listen("tcp", "127.0.0.1:0")
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	peers := []Peer{{"n1", ln1.Addr().String()}, {"n2", ln2.Addr().String()}}
	if err := Seed(SeedOptions{Dir: dir, NodeID: "n1", Peers: peers}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SeededDir, "wal")); err != nil {
		t.Fatalf("single-node files not kept: %v", err)
	}
	// and the seeded directory is refused in single-node mode
	if _, err := local.Open(local.Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "cluster") {
		t.Fatalf("single-node open of a cluster dir: %v", err)
	}
	fast := func(o Options) Options {
		o.HeartbeatTimeout, o.ElectionTimeout, o.LeaderLease = time.Second, time.Second, 500*time.Millisecond
		return o
	}
	n1, err := Open(fast(Options{Dir: dir, NodeID: "n1", Listener: ln1, Peers: peers}))
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	n2, err := Open(fast(Options{Dir: t.TempDir(), NodeID: "n2", Listener: ln2}))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	for _, n := range []*Replica{n1, n2} {
		if err := n.ReadBarrier(ctx); err != nil {
			t.Fatal(err)
		}
		var got [32]byte
		var jobs int
		n.Read(func(m *fsm.Machine) { jobs = m.Len(); got = m.Digest() })
		if jobs != 100 {
			t.Fatalf("%s holds %d jobs after seeding, want 100: %+v", n.o.NodeID, jobs, n.Status().Cluster)
		}
		_ = got
	}
	_ = want
}
