package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

var (
	kills      = flag.Int("e2e.kills", 100, "SIGKILL/restart rounds of TestKillLoop")
	killReport = flag.String("e2e.report", "", "write the kill loop's figures as JSON to this file")
)

// checker records what clients saw acknowledged.
type checker struct {
	mu          sync.Mutex
	sent        map[string]bool   // every payload ever sent (acknowledged or not)
	acked       map[string]string // job id -> payload, enqueue acknowledged
	completed   map[string]bool   // remote job ids whose completion was acknowledged
	leased      map[string]int    // remote job id -> times leased
	leasedRound map[string]int    // remote job id -> round of its last lease
	violations  []string
	duplicates  int // remote jobs handed out again after a crash (in flight when it died)
}

func (c *checker) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) < 50 {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

// TestKillLoop runs the real binary under load from 8 producers, its
// in-process workers (noop jobs) and 4 remote workers ("remote" jobs),
// SIGKILLs it at a random moment between 20 ms and 1 s (every tenth time
// right after it logs the start of a snapshot or a WAL segment rotation),
// restarts it on the same data directory, and repeats. It checks that no
// acknowledged enqueue is lost, that no job appears that was never sent,
// that no remote job whose completion was acknowledged is handed out again,
// and that jobs are handed out again only if they were in flight at a crash
// (those are counted as duplicates). -e2e.kills sets the number of kills.
func TestKillLoop(t *testing.T) {
	dir := t.TempDir()
	ck := &checker{sent: map[string]bool{}, acked: map[string]string{}, completed: map[string]bool{}, leased: map[string]int{}, leasedRound: map[string]int{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	var seq atomic.Int64
	var maxReady time.Duration
	var duringSnapshotOrRotation int
	args := []string{"--workers", "4", "--snapshot-every-records", "400", "--wal-segment-size", "64KiB", "--log-level", "debug"}

	for round := 0; round < *kills; round++ {
		started := time.Now()
		p := startServer(t, dir, args...)
		maxReady = max(maxReady, time.Since(started))
		c := p.client()
		if round%10 == 0 {
			ck.verifyAcked(t, c, round) // and at the end: jobs are never purged here
		}
		if round > 0 && round%100 == 0 {
			ck.mu.Lock()
			t.Logf("round %d: acknowledged enqueues %d, remote completions %d, violations %d, duplicates %d, max start-to-ready %v",
				round, len(ck.acked), len(ck.completed), len(ck.violations), ck.duplicates, maxReady.Round(time.Millisecond))
			ck.mu.Unlock()
		}

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() { defer wg.Done(); ck.produce(ctx, c, g, &seq) }()
		}
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() { defer wg.Done(); ck.remoteWorker(ctx, c, round) }()
		}
		if round%10 == 9 {
			// kill right after the server logs a snapshot start or a rotation
			if p.waitLog(ctx, 5*time.Second, "writing snapshot", "rotated segment") {
				duringSnapshotOrRotation++
			}
		} else {
			timer := time.NewTimer(time.Duration(20+rng.IntN(981)) * time.Millisecond)
			<-timer.C
		}
		p.kill()
		cancel()
		wg.Wait()
		c.Close()
	}

	// a last start: everything acknowledged must complete
	p := startServer(t, dir, "--workers", "4")
	c := p.client()
	defer c.Close()
	ck.verifyAcked(t, c, *kills)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ck.remoteWorker(ctx, c, *kills) }()
	ck.waitAllCompleted(t, c)
	cancel()
	wg.Wait()
	ck.verifyNoStrangers(t, c)

	ck.mu.Lock()
	defer ck.mu.Unlock()
	t.Logf("kills %d (%d right after a snapshot start or segment rotation), acknowledged enqueues %d, acknowledged remote completions %d, lost 0, duplicates %d, max start-to-ready %v",
		*kills, duringSnapshotOrRotation, len(ck.acked), len(ck.completed), ck.duplicates, maxReady.Round(time.Millisecond))
	if *killReport != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"kills": *kills, "kills_during_snapshot_or_rotation": duringSnapshotOrRotation,
			"acknowledged_enqueues": len(ck.acked), "acknowledged_completions": len(ck.completed),
			"lost": len(ck.violations), "duplicates": ck.duplicates, "max_start_to_ready_ms": maxReady.Milliseconds(),
		}, "", "  ")
		os.WriteFile(*killReport, b, 0o644)
	}
	if len(ck.violations) > 0 {
		t.Fatalf("%d violations:\n%s", len(ck.violations), strings.Join(ck.violations, "\n"))
	}
}

func (ck *checker) produce(ctx context.Context, c *client.Client, g int, seq *atomic.Int64) {
	for ctx.Err() == nil {
		n := seq.Add(1)
		typ := "noop"
		if n%2 == 0 {
			typ = "remote"
		}
		payload := fmt.Sprintf(`{"g":%d,"n":%d}`, g, n)
		ck.mu.Lock()
		ck.sent[payload] = true
		ck.mu.Unlock()
		e, err := c.Enqueue(ctx, api.EnqueueRequest{Type: typ, Payload: []byte(payload)})
		if err != nil {
			continue
		}
		ck.mu.Lock()
		ck.acked[e.ID] = payload
		ck.mu.Unlock()
	}
}

func (ck *checker) remoteWorker(ctx context.Context, c *client.Client, round int) {
	for ctx.Err() == nil {
		lr, err := c.Lease(ctx, api.LeaseRequest{Types: []string{"remote"}, Max: 10, Wait: "100ms", Lease: "30s", Worker: "killloop"})
		if err != nil {
			continue
		}
		acks := make([]api.AckItem, 0, len(lr.Jobs))
		ck.mu.Lock()
		for _, j := range lr.Jobs {
			if ck.completed[j.ID] {
				ck.violations = append(ck.violations, fmt.Sprintf("round %d: job %s handed out again after its completion was acknowledged", round, j.ID))
			}
			if ck.leased[j.ID] > 0 {
				// handed out again: only allowed if it was in flight at a
				// crash (leased in an earlier round, never acknowledged)
				if ck.leasedRound[j.ID] == round {
					ck.violations = append(ck.violations, fmt.Sprintf("round %d: job %s handed out twice without a crash", round, j.ID))
				}
				ck.duplicates++
			}
			ck.leased[j.ID]++
			ck.leasedRound[j.ID] = round
			acks = append(acks, api.AckItem{ID: j.ID, LeaseID: j.LeaseID, Result: json.RawMessage(`"ok"`)})
		}
		ck.mu.Unlock()
		if len(acks) == 0 {
			continue
		}
		res, err := c.Ack(ctx, api.AckRequest{Acks: acks})
		if err != nil {
			continue
		}
		ck.mu.Lock()
		for _, r := range res.Results {
			if r.OK {
				ck.completed[r.ID] = true
			}
		}
		ck.mu.Unlock()
	}
}

// verifyAcked checks every acknowledged job exists with its payload.
func (ck *checker) verifyAcked(t *testing.T, c *client.Client, round int) {
	t.Helper()
	ck.mu.Lock()
	ids := make(map[string]string, len(ck.acked))
	for id, p := range ck.acked {
		ids[id] = p
	}
	done := make(map[string]bool, len(ck.completed))
	for id := range ck.completed {
		done[id] = true
	}
	ck.mu.Unlock()
	found := map[string]api.Job{}
	cursor := ""
	for {
		lr, err := c.List(context.Background(), client.ListOptions{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range lr.Jobs {
			found[j.ID] = j
		}
		if lr.NextCursor == "" {
			break
		}
		cursor = lr.NextCursor
	}
	for id, p := range ids {
		j, ok := found[id]
		if !ok {
			ck.violate("round %d: acknowledged job %s (%s) lost", round, id, p)
			continue
		}
		if string(j.Payload) != p {
			ck.violate("round %d: job %s payload %s, acknowledged %s", round, id, j.Payload, p)
		}
		if done[id] && j.State != api.StateCompleted {
			ck.violate("round %d: job %s completion acknowledged, state %s", round, id, j.State)
		}
	}
}

// verifyNoStrangers checks every job held was sent by a producer.
func (ck *checker) verifyNoStrangers(t *testing.T, c *client.Client) {
	t.Helper()
	cursor := ""
	for {
		lr, err := c.List(context.Background(), client.ListOptions{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		ck.mu.Lock()
		for _, j := range lr.Jobs {
			if !ck.sent[string(j.Payload)] {
				ck.violations = append(ck.violations, fmt.Sprintf("job %s with payload %s was never enqueued", j.ID, j.Payload))
			}
		}
		ck.mu.Unlock()
		if lr.NextCursor == "" {
			return
		}
		cursor = lr.NextCursor
	}
}

func (ck *checker) waitAllCompleted(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Jobs.Pending+st.Jobs.Scheduled+st.Jobs.InFlight == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still unfinished after 2 minutes: %+v", st.Jobs)
		}
		// a long poll on a type nobody enqueues returns at the next change
		c.Lease(context.Background(), api.LeaseRequest{Types: []string{"never-enqueued"}, Max: 1, Wait: "100ms"})
	}
}

// waitLog waits until the server logs a line containing one of subs.
func (p *proc) waitLog(ctx context.Context, limit time.Duration, subs ...string) bool {
	p.logMu.Lock()
	from := p.log.Len()
	p.logMu.Unlock()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		p.logMu.Lock()
		tail := p.log.String()[from:]
		p.logMu.Unlock()
		if slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(tail, s) }) {
			return true
		}
		select {
		case <-p.logged:
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}
