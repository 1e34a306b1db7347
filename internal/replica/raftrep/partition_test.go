package raftrep

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

var (
	partitionSeed   = flag.Uint64("partition.seed", 0, "seed of TestPartitions' fault schedule (0: time-based, printed)")
	partitionRounds = flag.Int("partition.rounds", 4, "fault rounds of TestPartitions")
)

// TestPartitions runs producers and a worker against a 5-node cluster while
// a seeded random schedule isolates the leader, splits the nodes into a
// minority and a majority, and heals. At the end every node holds the same
// state, every acknowledged enqueue is there, and no job whose completion
// was acknowledged was ever leased again.
func TestPartitions(t *testing.T) {
	seed := *partitionSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -partition.seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := newCluster(t, 5, nil)
	all := ids(c)
	c.leader(15 * time.Second)

	ctx, stop := context.WithCancel(context.Background())
	var (
		mu        sync.Mutex
		acked     = map[string]uint64{} // unique key -> id, acknowledged enqueues
		completed = map[uint64]bool{}   // acknowledged completions
		violation []string
	)
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("p%d-%d", p, i)
				node := c.nodes[(p+i)%len(c.nodes)]
				// a node in a minority waits for a leader: give up on it
				// after a while and go on with the next key on another node
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				id, err := enqueue(cctx, node, key)
				cancel()
				if err != nil {
					continue // not acknowledged: nothing to check
				}
				mu.Lock()
				acked[key] = id
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() { // one worker: lease, then complete
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			node := c.nodes[i%len(c.nodes)]
			res, err := node.Propose(ctx, &fsm.Command{Kind: fsm.KindLease, Now: time.Now().UnixNano(),
				Queues: []string{"default"}, Max: 10, Worker: "w", LeaseFor: int64(2 * time.Second)})
			if err != nil || len(res.Jobs) == 0 {
				continue
			}
			mu.Lock()
			for _, j := range res.Jobs {
				if completed[j.ID] {
					violation = append(violation, fmt.Sprintf("job %d leased again after its completion was acknowledged", j.ID))
				}
			}
			mu.Unlock()
			acks := make([]fsm.Ack, len(res.Jobs))
			for k, j := range res.Jobs {
				acks[k] = fsm.Ack{ID: j.ID, LeaseID: j.LeaseID}
			}
			ares, err := node.Propose(ctx, &fsm.Command{Kind: fsm.KindAck, Now: time.Now().UnixNano(), Acks: acks})
			if err != nil {
				continue
			}
			mu.Lock()
			for k, e := range ares.AckErrs {
				if e == nil {
					completed[acks[k].ID] = true
				}
			}
			mu.Unlock()
		}
	}()

	for round := range *partitionRounds {
		l := c.leader(20 * time.Second)
		switch rng.IntN(3) {
		case 0:
			t.Logf("round %d: isolate the leader n%d", round, l+1)
			c.net.partition([]string{all[l]}, all)
		case 1:
			perm := rng.Perm(len(all))
			minority := []string{all[perm[0]], all[perm[1]]}
			t.Logf("round %d: split %v from the rest", round, minority)
			c.net.partition(minority, all)
		case 2:
			perm := rng.Perm(len(all))
			t.Logf("round %d: isolate n%d", round, perm[0]+1)
			c.net.partition([]string{all[perm[0]]}, all)
		}
		c.leader(20 * time.Second) // the majority elects (or keeps) a leader
		waitWrites(t, c, 20, &mu, acked)
		c.net.heal()
		waitWrites(t, c, 20, &mu, acked)
	}
	stop()
	wg.Wait()
	c.sameState(30 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	for _, v := range violation {
		t.Error(v)
	}
	if len(acked) == 0 {
		t.Fatal("no enqueue was acknowledged")
	}
	for i, r := range c.nodes {
		r.Read(func(m *fsm.Machine) {
			for key, id := range acked {
				j, ok := m.Get(id)
				if !ok || j.UniqueKey != key {
					t.Errorf("n%d: acknowledged enqueue %s (job %d) is missing", i+1, key, id)
				}
			}
			for id := range completed {
				if j, ok := m.Get(id); !ok || j.State != fsm.StateCompleted {
					t.Errorf("n%d: acknowledged completion of job %d is not completed", i+1, id)
				}
			}
		})
	}
	t.Logf("%d enqueues and %d completions acknowledged", len(acked), len(completed))
}

// waitWrites waits until n more enqueues are acknowledged.
func waitWrites(t *testing.T, c *cluster, n int, mu *sync.Mutex, acked map[string]uint64) {
	t.Helper()
	mu.Lock()
	want := len(acked) + n
	mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got := len(acked)
		mu.Unlock()
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes stalled at %d acknowledged enqueues", got)
		}
		// wait for the next applied entry on the leader
		l := c.leader(20 * time.Second)
		wctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.nodes[l].h.WaitApplied(wctx, c.nodes[l].h.Applied()+1)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
}

var _ = replica.ErrNotLeader
