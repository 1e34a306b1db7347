package e2e

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	partitionNodes  = flag.Int("e2e.partition.nodes", 3, "nodes of TestClusterPartitions (3 or 5)")
	partitionRounds = flag.Int("e2e.partition.rounds", 4, "partitions of TestClusterPartitions")
	partitionSeed   = flag.Uint64("e2e.partition.seed", 0, "seed of TestClusterPartitions' schedule (0: from the clock, logged)")
)

// How long a partition of TestClusterPartitions lasts: long enough for the
// majority to elect a leader (election timeout 500ms) and commit under it.
const partitionFor = 3 * time.Second

// TestClusterPartitions runs a cluster of real processes behind a link
// proxy (linkProxy) under the load of TestClusterKillLoop (producers on
// every node retrying with the same unique key, remote workers on every
// node), and cuts links while every process keeps running: the leader
// isolated, a follower isolated, the leader cut off from one follower in
// one direction only, and (with 5 nodes) a split of 2 against 3. Each
// partition lasts partitionFor and heals; then the load stops, the workers
// drain, and the test checks that every node holds the same jobs, every
// acknowledged enqueue is a completed job, no job was leased again after
// its completion was acknowledged, and every job run twice was in flight
// at a partition.
func TestClusterPartitions(t *testing.T) {
	nodes := *partitionNodes
	if nodes != 3 && nodes != 5 {
		t.Fatalf("-e2e.partition.nodes %d: 3 or 5", nodes)
	}
	seed := *partitionSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("schedule seed %d (-e2e.partition.seed)", seed)
	rng := rand.New(rand.NewPCG(seed, 11))

	l := newLayout(t, nodes)
	var ids []string
	for i := range nodes {
		ids = append(ids, fmt.Sprintf("n%d", i+1))
	}
	proxy, dial, err := newLinkProxy(ids, l.raftDial)
	if err != nil {
		t.Fatal(err)
	}
	l.raftDial = dial
	tc := startCluster(t, l, "--workers", "2", "--raft-apply-timeout", "4s")
	t.Cleanup(proxy.close) // runs before the nodes are killed: cleanups run last first

	// the proxy carries the cluster: the first leader reached every
	// follower through it
	if l0, err := tc.waitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	} else {
		for _, id := range ids {
			if id != l0.id && proxy.identified(l0.id, id) == 0 {
				t.Fatalf("the link proxy saw no connection from leader %s to %s", l0.id, id)
			}
		}
	}

	ck := newClusterChecker()
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var load sync.WaitGroup
	var seq atomic.Int64
	for i := range tc.nodes {
		load.Add(1)
		go func() { defer load.Done(); ck.produce(ctx, tc, i, &seq) }()
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var work sync.WaitGroup
	for _, n := range tc.nodes {
		work.Add(1)
		go func() { defer work.Done(); ck.work(workCtx, n.c, n.id+"-w") }()
	}
	stopAll := func() {
		stopLoad()
		stopWork()
		load.Wait()
		work.Wait()
	}

	kinds := []string{"isolate leader", "isolate follower", "leader cut one way"}
	if nodes == 5 {
		kinds = append(kinds, "split 2/3")
	}
	var done []string
	for round := 0; round < *partitionRounds; round++ {
		leader, err := tc.waitLeader(30 * time.Second)
		if err != nil {
			stopAll()
			t.Fatalf("round %d: %v", round, err)
		}
		var follower []string
		for _, id := range ids {
			if id != leader.id {
				follower = append(follower, id)
			}
		}
		kind := kinds[round%len(kinds)]
		if round >= len(kinds) {
			kind = kinds[rng.IntN(len(kinds))]
		}
		what := kind
		switch kind {
		case "isolate leader":
			proxy.isolate(leader.id)
			what += " " + leader.id
		case "isolate follower":
			f := follower[rng.IntN(len(follower))]
			proxy.isolate(f)
			what += " " + f
		case "leader cut one way":
			// the leader's appends to f are lost, f's messages to the
			// leader arrive: f keeps calling elections the leader hears
			f := follower[rng.IntN(len(follower))]
			proxy.block(leader.id, f)
			what += fmt.Sprintf(" (%s -> %s)", leader.id, f)
		case "split 2/3":
			perm := rng.Perm(nodes)
			var a, b []string
			for k, i := range perm {
				if k < 2 {
					a = append(a, ids[i])
				} else {
					b = append(b, ids[i])
				}
			}
			proxy.split(a, b)
			what += fmt.Sprintf(" %v | %v", a, b)
		}
		ck.fault("partition: " + what)
		done = append(done, what)
		healAt := time.Now().Add(partitionFor)
		if kind == "isolate leader" {
			// the cut is real: the others elect a leader of their own
			if nl, err := tc.newLeaderBesides(leader, 3*partitionFor); err != nil {
				ck.violate("round %d: %s: %v", round, what, err)
			} else {
				what += ", " + nl.id + " elected"
				done[len(done)-1] = what
			}
		}
		if d := time.Until(healAt); d > 0 {
			timer := time.NewTimer(d)
			<-timer.C
		}
		proxy.heal()
		ck.fault("heal")
		if err := tc.exitedByItself(); err != nil {
			stopAll()
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if _, err := tc.waitLeader(30 * time.Second); err != nil {
		stopAll()
		t.Fatal(err)
	}
	// a little load after the last heal, so that writes cross the healed
	// cluster too
	last := time.NewTimer(partitionFor)
	<-last.C
	stopLoad()
	load.Wait()

	drainErr := waitDrained(tc, 2*time.Minute)
	stopWork()
	work.Wait()
	if drainErr != nil {
		t.Fatalf("%v\n%s", drainErr, tc.logTails(30))
	}
	if err := tc.waitSameState(30 * time.Second); err != nil {
		ck.violate("%v", err)
	}
	jobs, err := tc.listAll(tc.nodes[0], false)
	if err != nil {
		t.Fatal(err)
	}
	dups := ck.verify(jobs, workerLease)
	ck.mu.Lock()
	defer ck.mu.Unlock()
	t.Logf("nodes %d, partitions %d: %s", nodes, len(done), strings.Join(done, "; "))
	t.Logf("acknowledged enqueues %d (of %d keys sent), jobs %d, acknowledged completions %d, lost %d, run more than once %d, keys enqueued twice %d; failed calls: %v",
		len(ck.acked), len(ck.sent), len(jobs), len(ck.completed), dups.lost, dups.duplicates, dups.twice, ck.errs)
	if len(ck.acked) == 0 || len(ck.completed) == 0 {
		t.Fatalf("the load achieved nothing: %d acknowledged enqueues, %d completions", len(ck.acked), len(ck.completed))
	}
	if len(ck.violations) > 0 {
		t.Fatalf("%d violations:\n%s", len(ck.violations), strings.Join(ck.violations, "\n"))
	}
}

// newLeaderBesides polls until a node other than old says it leads in a
// term above old's, and returns it.
func (tc *testCluster) newLeaderBesides(old *clusterNode, limit time.Duration) (*clusterNode, error) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if l, _ := tc.leader(); l != nil && l != old {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader besides %s after %v", old.id, limit)
		}
		<-tick.C
	}
}
