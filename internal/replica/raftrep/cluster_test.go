package raftrep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster is an in-process cluster on loopback TCP, every node with its
// own data directory, all bootstrapped with the same peers.
type cluster struct {
	t     *testing.T
	nodes []*Replica
	opts  []Options
	net   *faultNet
}

func newCluster(t *testing.T, n int, tweak func(i int, o *Options)) *cluster {
	t.Helper()
	c := &cluster{t: t, net: newFaultNet()}
	var peers []Peer
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: ln.Addr().String()})
	}
	for i := range n {
		o := Options{
			Dir: t.TempDir(), NodeID: peers[i].ID, Listener: lns[i], Bootstrap: true, Peers: peers,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLease: 150 * time.Millisecond,
			ApplyTimeout: 5 * time.Second,
			Dial:         c.net.dialer(peers[i].ID, peers),
		}
		if tweak != nil {
			tweak(i, &o)
		}
		c.opts = append(c.opts, o)
		r, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, r)
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) close() {
	for _, r := range c.nodes {
		if r != nil {
			r.Close()
		}
	}
}

// leader waits for a node to lead (at most timeout) and returns its index.
func (c *cluster) leader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for i, r := range c.nodes {
			if r == nil {
				continue
			}
			if l, _ := r.Leading(); l {
				return i
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader after %v", timeout)
		}
		// wait for any node's leadership to change
		chs := make([]<-chan struct{}, 0, len(c.nodes))
		for _, r := range c.nodes {
			if r != nil {
				_, ch := r.Leading()
				chs = append(chs, ch)
			}
		}
		waitAny(chs, time.Until(deadline))
	}
}

func waitAny(chs []<-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	done := make(chan struct{})
	defer close(done)
	fired := make(chan struct{}, len(chs))
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				fired <- struct{}{}
			case <-done:
			}
		}()
	}
	select {
	case <-fired:
	case <-t.C:
	}
}

func enqueue(ctx context.Context, r *Replica, key string) (uint64, error) {
	res, err := r.Propose(ctx, &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(),
		Jobs: []fsm.JobSpec{{Queue: "default", Type: "t", Payload: "null", UniqueKey: key}}})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	return res.Enqueued[0].ID, nil
}

// digests waits until every live node applied the same index and returns
// their state digests.
func (c *cluster) sameState(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var want [32]byte
	for i, r := range c.nodes {
		if r == nil {
			continue
		}
		if err := r.ReadBarrier(ctx); err != nil {
			c.t.Fatalf("n%d: read barrier: %v", i+1, err)
		}
	}
	// Every node has applied at least the leader's commit index; wait for
	// equal applied indexes (a write in flight may still land).
	first := true
	for i, r := range c.nodes {
		if r == nil {
			continue
		}
		var d [32]byte
		r.Read(func(m *fsm.Machine) { d = m.Digest() })
		if first {
			want, first = d, false
		} else if d != want {
			c.t.Errorf("n%d: state digest differs", i+1)
		}
	}
}

func TestElectionForwardingAndFailover(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	follower := (l + 1) % 3
	// a write through the leader and one through a follower (forwarded)
	if _, err := enqueue(ctx, c.nodes[l], "a"); err != nil {
		t.Fatal(err)
	}
	id, err := enqueue(ctx, c.nodes[follower], "b")
	if err != nil {
		t.Fatalf("forwarded enqueue: %v", err)
	}
	// a linearizable read on the follower sees it
	if err := c.nodes[follower].ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	var ok bool
	c.nodes[follower].Read(func(m *fsm.Machine) { _, ok = m.Get(id) })
	if !ok {
		t.Fatalf("follower does not see job %d after a read barrier", id)
	}
	// a rejection crosses the wire as the same error
	res, err := c.nodes[follower].Propose(ctx, &fsm.Command{Kind: fsm.KindCancel, Now: time.Now().UnixNano(), ID: 999})
	if err != nil || !errors.Is(res.Err, fsm.ErrNotFound) {
		t.Fatalf("forwarded cancel of a missing job: %v, %v", res.Err, err)
	}
	// kill the leader: the others elect a new one and keep every job
	c.nodes[l].Close()
	c.nodes[l] = nil
	nl := c.leader(10 * time.Second)
	if _, err := enqueue(ctx, c.nodes[nl], "c"); err != nil {
		t.Fatal(err)
	}
	// a retry of an enqueue with the same unique key is a duplicate
	res, err = c.nodes[nl].Propose(ctx, &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(),
		Jobs: []fsm.JobSpec{{Queue: "default", Type: "t", Payload: "null", UniqueKey: "b"}}})
	if err != nil || !res.Enqueued[0].Duplicate || res.Enqueued[0].ID != id {
		t.Fatalf("re-enqueue of key b: %+v, %v", res, err)
	}
	c.sameState(10 * time.Second)
	var n int
	c.nodes[nl].Read(func(m *fsm.Machine) { n = m.Len() })
	if n != 3 {
		t.Fatalf("%d jobs after failover, want 3", n)
	}
	st := c.nodes[nl].Status()
	if st.Role != "leader" || st.Cluster == nil || len(st.Cluster.Servers) != 3 {
		t.Fatalf("status %+v", st)
	}
	_ = replica.ErrNotLeader
}
