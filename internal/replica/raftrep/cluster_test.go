package raftrep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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
			// generous for a loaded 2-core machine under -race
			HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLease: 500 * time.Millisecond,
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

// enqueue enqueues a job with unique key key, retrying (as clients do) an
// outcome lost with a leader: the key makes the retry safe.
func enqueue(ctx context.Context, r *Replica, key string) (uint64, error) {
	var res fsm.Result
	var err error
	for range 10 {
		if ctx.Err() != nil {
			break
		}
		res, err = r.Propose(ctx, &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(),
			Jobs: []fsm.JobSpec{{Queue: "default", Type: "t", Payload: "null", UniqueKey: key}}})
		if !errors.Is(err, replica.ErrUnknownOutcome) {
			break
		}
	}
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
		// A follower cut off for long catches up only when the leader's
		// replicator tries again: hashicorp/raft backs off up to about 10 s
		// after repeated failures, longer than one barrier waits to apply
		// (ApplyTimeout), so try again until the timeout.
		start := time.Now()
		for tries := 1; ; tries++ {
			err := r.ReadBarrier(ctx)
			if err == nil {
				if tries > 1 {
					c.t.Logf("n%d caught up after %v (%d read barriers)", i+1, time.Since(start).Round(time.Millisecond), tries)
				}
				break
			}
			if ctx.Err() != nil || errors.Is(err, replica.ErrClosed) {
				c.t.Fatalf("n%d: read barrier: %v", i+1, err)
			}
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
}

func ids(c *cluster) []string {
	var out []string
	for _, o := range c.opts {
		out = append(out, o.NodeID)
	}
	return out
}

// A follower that was down while the log was truncated by snapshots gets
// the state as an installed snapshot, and ends with the same state.
func TestSnapshotInstalledOnLaggingFollower(t *testing.T) {
	c := newCluster(t, 3, func(i int, o *Options) {
		o.SnapshotThreshold = 50
		o.TrailingLogs = 10
		o.SnapshotInterval = 50 * time.Millisecond
	})
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	lag := (l + 1) % 3
	c.net.partition([]string{c.opts[lag].NodeID}, ids(c))
	for i := range 300 {
		if _, err := enqueue(ctx, c.nodes[l], fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// wait until the leader took a snapshot and truncated its log past
	// what the isolated follower has
	deadline := time.Now().Add(20 * time.Second)
	for {
		first, _ := c.nodes[l].store.FirstIndex()
		if first > c.nodes[lag].raft.LastIndex()+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader log not truncated: first %d, follower last %d", first, c.nodes[lag].raft.LastIndex())
		}
		if err := c.nodes[l].raft.Snapshot().Error(); err != nil && !strings.Contains(err.Error(), "nothing new") {
			t.Fatal(err)
		}
	}
	c.net.heal()
	c.sameState(20 * time.Second)
	var n int
	c.nodes[lag].Read(func(m *fsm.Machine) { n = m.Len() })
	if n != 300 {
		t.Fatalf("lagging follower holds %d jobs, want 300", n)
	}
}

// Membership: a fourth node joins through a follower, receives the state,
// and is removed again; the last voter can never be removed.
func TestMembership(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	for i := range 20 {
		if _, err := enqueue(ctx, c.nodes[l], fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n4, err := Open(Options{Dir: t.TempDir(), NodeID: "n4", Listener: ln,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLease: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n4.Close()
	f := (l + 1) % 3
	if err := c.nodes[f].Join(ctx, "n4", ln.Addr().String()); err != nil {
		t.Fatalf("join through a follower: %v", err)
	}
	if err := c.nodes[f].Join(ctx, "n4", ln.Addr().String()); err != nil {
		t.Fatalf("joining again must be a no-op: %v", err)
	}
	if err := n4.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	n4.Read(func(m *fsm.Machine) { n = m.Len() })
	if n != 20 {
		t.Fatalf("joined node holds %d jobs, want 20", n)
	}
	if got := len(c.nodes[l].Status().Cluster.Servers); got != 4 {
		t.Fatalf("%d servers after join", got)
	}
	if err := c.nodes[l].Remove(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[l].Remove(ctx, "nope"); !errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("remove of an unknown node: %v", err)
	}
	if got := len(c.nodes[l].Status().Cluster.Servers); got != 3 {
		t.Fatalf("%d servers after remove", got)
	}
}

func TestLastVoterIsNeverRemoved(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader(10 * time.Second)
	if err := c.nodes[0].Remove(context.Background(), "n1"); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("remove of the last voter: %v", err)
	}
}

// A restarted node rejoins by itself; starting it again with --bootstrap
// is a no-op.
func TestRestartRejoinsAndBootstrapIsNoop(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	l := c.leader(10 * time.Second)
	if _, err := enqueue(ctx, c.nodes[l], "a"); err != nil {
		t.Fatal(err)
	}
	f := (l + 1) % 3
	addr := c.nodes[f].Addr()
	c.nodes[f].Close()
	c.nodes[f] = nil
	if _, err := enqueue(ctx, c.nodes[l], "b"); err != nil {
		t.Fatal(err)
	}
	o := c.opts[f]
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	o.Listener = ln
	r, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[f] = r
	c.sameState(20 * time.Second)
	var n int
	r.Read(func(m *fsm.Machine) { n = m.Len() })
	if n != 2 {
		t.Fatalf("restarted node holds %d jobs, want 2", n)
	}
}
