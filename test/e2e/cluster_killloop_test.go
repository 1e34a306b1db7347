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
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

var (
	clusterDuration = flag.Duration("e2e.cluster.duration", 60*time.Second, "load time of TestClusterKillLoop (a leader kill every 5s)")
	clusterNodes    = flag.Int("e2e.cluster.nodes", 3, "nodes of TestClusterKillLoop (3 or 5)")
	clusterReport   = flag.String("e2e.cluster.report", "", "write the cluster kill loop's figures as JSON to this file")
)

// The schedule of TestClusterKillLoop.
const (
	killEvery     = 5 * time.Second
	stopFor       = 2 * time.Second
	stopAfterKill = 1500 * time.Millisecond // a follower is stopped this long after some kills
	workerLease   = 5 * time.Second
	requestLimit  = 20 * time.Second // bounds every call of the load
)

// clusterChecker records what the clients of a cluster saw acknowledged.
// Times are the test process's monotonic clock.
type clusterChecker struct {
	mu         sync.Mutex
	sent       map[string]bool    // unique keys ever sent
	acked      map[string]string  // unique key -> job id of its 201
	acks       []ackEvent         // every 201
	leases     map[string][]lease // job id -> the leases workers received
	completed  map[string]doneJob // job id -> acknowledged completion
	faults     []fault            // kills, stops, continues
	errs       map[string]int     // counts of failed calls by kind
	violations []string
}

type ackEvent struct{ sent, got time.Time }

type lease struct {
	attempt int
	at      time.Time
	worker  string
}

type doneJob struct {
	attempt int
	at      time.Time
}

type fault struct {
	at   time.Time
	what string
}

func newClusterChecker() *clusterChecker {
	return &clusterChecker{sent: map[string]bool{}, acked: map[string]string{}, leases: map[string][]lease{},
		completed: map[string]doneJob{}, errs: map[string]int{}}
}

func (ck *clusterChecker) violate(format string, args ...any) {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	ck.violateLocked(format, args...)
}

func (ck *clusterChecker) violateLocked(format string, args ...any) {
	if len(ck.violations) < 50 {
		ck.violations = append(ck.violations, fmt.Sprintf(format, args...))
	}
}

func (ck *clusterChecker) count(kind string, err error) {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	code := client.ErrorCode(err)
	if code == "" {
		code = "no answer"
	}
	ck.errs[kind+": "+code]++
}

func (ck *clusterChecker) fault(what string) {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	ck.faults = append(ck.faults, fault{time.Now(), what})
}

// TestClusterKillLoop runs a cluster of real processes (-e2e.cluster.nodes)
// under load for -e2e.cluster.duration: producers on every node enqueue
// "remote" jobs with a unique key each (its payload carries the key) and
// retry a 503 or a lost answer with the same key, on the next node;
// remote workers on every node lease with a 5s lease and acknowledge the
// completion at once. Every 5s the leader is SIGKILLed and restarted on its
// data directory with the same flags, and after some kills a follower is
// SIGSTOPped for 2s. Then the load stops, the workers drain, and the test
// checks that every acknowledged enqueue is a completed job, that no job
// was leased again after its completion was acknowledged, that every job
// leased more than once was in flight at a fault, and that every node holds
// the same jobs.
func TestClusterKillLoop(t *testing.T) {
	nodes := *clusterNodes
	if nodes != 3 && nodes != 5 {
		t.Fatalf("-e2e.cluster.nodes %d: 3 or 5", nodes)
	}
	tc := startCluster(t, newLayout(t, nodes), "--workers", "2")
	ck := newClusterChecker()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var load sync.WaitGroup
	var seq atomic.Int64
	for i := range tc.nodes {
		for g := 0; g < 2; g++ {
			load.Add(1)
			go func() { defer load.Done(); ck.produce(ctx, tc, i, &seq) }()
		}
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var work sync.WaitGroup
	for _, n := range tc.nodes {
		for w := 0; w < 2; w++ {
			work.Add(1)
			go func() { defer work.Done(); ck.work(workCtx, n.c, fmt.Sprintf("%s-w%d", n.id, w)) }()
		}
	}

	// The fault schedule: a leader kill every killEvery; after every third
	// kill, a follower stopped for stopFor.
	var kills, stops int
	var killTimes []time.Time
	var electionTimes []time.Duration
	end := time.Now().Add(*clusterDuration)
	tick := time.NewTicker(killEvery)
	for round := 0; time.Now().Add(killEvery).Before(end) || round == 0; round++ {
		<-tick.C
		if err := tc.exitedByItself(); err != nil {
			stopLoad()
			stopWork()
			load.Wait()
			work.Wait()
			t.Fatalf("round %d: %v", round, err)
		}
		l, err := tc.waitLeader(30 * time.Second)
		if err != nil {
			stopLoad()
			stopWork()
			load.Wait()
			work.Wait()
			t.Fatalf("round %d: %v", round, err)
		}
		killAt := time.Now()
		tc.kill(l)
		ck.fault("kill " + l.id)
		kills++
		killTimes = append(killTimes, killAt)
		if err := tc.start(l); err != nil {
			stopLoad()
			stopWork()
			load.Wait()
			work.Wait()
			t.Fatalf("round %d: restart: %v", round, err)
		}
		if nl, err := tc.waitLeader(30 * time.Second); err == nil {
			electionTimes = append(electionTimes, time.Since(killAt))
			if round%3 == 1 {
				// stop a follower (not the node just restarted: the
				// leader and it make the quorum meanwhile)
				var cands []*clusterNode
				for _, n := range tc.nodes {
					if n != nl && n != l {
						cands = append(cands, n)
					}
				}
				f := cands[rng.IntN(len(cands))]
				if d := time.Until(killAt.Add(stopAfterKill)); d > 0 {
					timer := time.NewTimer(d)
					<-timer.C
				}
				tc.signal(f, syscall.SIGSTOP)
				ck.fault("stop " + f.id)
				stops++
				timer := time.NewTimer(stopFor)
				<-timer.C
				tc.signal(f, syscall.SIGCONT)
				ck.fault("continue " + f.id)
			}
		}
	}
	tick.Stop()
	if d := time.Until(end); d > 0 {
		// the load runs to its end, past the last kill
		timer := time.NewTimer(d)
		<-timer.C
	}
	stopLoad()
	load.Wait()
	loadEnd := time.Now()

	// Drain: the workers go on until nothing is left to run (jobs in
	// flight at a kill come back when their lease expires).
	drainErr := waitDrained(tc, 3*time.Minute)
	if err := tc.exitedByItself(); err != nil {
		ck.violate("%v", err)
	}
	stopWork()
	work.Wait()
	drain := time.Since(loadEnd)
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

	// kill to the first acknowledged enqueue sent after the kill
	var toAck []time.Duration
	ck.mu.Lock()
	for _, k := range killTimes {
		first := time.Time{}
		for _, a := range ck.acks {
			if !a.sent.Before(k) && (first.IsZero() || a.got.Before(first)) {
				first = a.got
			}
		}
		if !first.IsZero() {
			toAck = append(toAck, first.Sub(k))
		}
	}
	slices.Sort(toAck)
	slices.Sort(electionTimes)
	med, worst := quantile(toAck, 0.5), quantile(toAck, 1)
	errs := fmt.Sprint(ck.errs)
	t.Logf("nodes %d, load %v, kills %d, stops %d, acknowledged enqueues %d (of %d keys sent), jobs %d, acknowledged completions %d, acknowledged enqueues lost %d, jobs run more than once %d, drain %v",
		nodes, *clusterDuration, kills, stops, len(ck.acked), len(ck.sent), len(jobs), len(ck.completed), dups.lost, dups.duplicates, drain.Round(time.Millisecond))
	t.Logf("kill to the next acknowledged enqueue: median %v, max %v (%d kills measured); kill to a leader known to every node (the restarted one included): median %v, max %v",
		med.Round(time.Millisecond), worst.Round(time.Millisecond), len(toAck),
		quantile(electionTimes, 0.5).Round(time.Millisecond), quantile(electionTimes, 1).Round(time.Millisecond))
	t.Logf("keys enqueued twice (first outcome unknown, completed before the retry): %d; failed calls: %s", dups.twice, errs)
	if *clusterReport != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"nodes": nodes, "load_seconds": clusterDuration.Seconds(), "kills": kills, "follower_stops": stops,
			"acknowledged_enqueues": len(ck.acked), "keys_sent": len(ck.sent), "jobs": len(jobs),
			"acknowledged_completions": len(ck.completed), "lost": dups.lost, "duplicates": dups.duplicates, "keys_enqueued_twice": dups.twice,
			"violations":          len(ck.violations),
			"kill_to_next_ack_ms": map[string]int64{"median": med.Milliseconds(), "max": worst.Milliseconds(), "measured": int64(len(toAck))},
			"kill_to_leader_ms":   map[string]int64{"median": quantile(electionTimes, 0.5).Milliseconds(), "max": quantile(electionTimes, 1).Milliseconds()},
			"drain_ms":            drain.Milliseconds(), "failed_calls": ck.errs,
		}, "", "  ")
		if err := os.WriteFile(*clusterReport, b, 0o644); err != nil {
			t.Error(err)
		}
	}
	if len(ck.violations) > 0 {
		ck.mu.Unlock()
		t.Fatalf("%d violations:\n%s", len(ck.violations), strings.Join(ck.violations, "\n"))
	}
	ck.mu.Unlock()
	for _, n := range tc.nodes {
		if err := n.p.stop(); err != nil {
			t.Errorf("node %s: SIGTERM: %v\n%s", n.id, err, tc.logTails(20))
		}
		n.p = nil
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// produce enqueues jobs with fresh unique keys through node home, until ctx
// is done. A key is retried until a 201, on the next node after a failure.
func (ck *clusterChecker) produce(ctx context.Context, tc *testCluster, home int, seq *atomic.Int64) {
	ni := home
	backoff := time.NewTimer(0)
	<-backoff.C
	for ctx.Err() == nil {
		n := seq.Add(1)
		key := fmt.Sprintf("k%d", n)
		// every third job runs on the nodes' own worker pools (a noop),
		// the others on the remote workers, whose leases are recorded
		typ := "remote"
		if n%3 == 0 {
			typ = "noop"
		}
		payload := fmt.Sprintf(`{"key":%q}`, key)
		ck.mu.Lock()
		ck.sent[key] = true
		ck.mu.Unlock()
		for ctx.Err() == nil {
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, requestLimit)
			e, err := tc.nodes[ni].c.Enqueue(rctx, api.EnqueueRequest{Type: typ, Payload: json.RawMessage(payload), UniqueKey: key, MaxAttempts: 1000, Timeout: "5s"})
			cancel()
			if err == nil {
				ck.mu.Lock()
				if _, ok := ck.acked[key]; !ok {
					ck.acked[key] = e.ID
				}
				ck.acks = append(ck.acks, ackEvent{sent, time.Now()})
				ck.mu.Unlock()
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !isRetryable(err) {
				ck.violate("enqueue %s on %s: %v", key, tc.nodes[ni].id, err)
				break
			}
			ck.count("enqueue", err)
			ni = (ni + 1) % len(tc.nodes)
			// a little pause, so that a cluster without a leader is not
			// hammered (the load's pace, not a synchronisation)
			backoff.Reset(20 * time.Millisecond)
			select {
			case <-backoff.C:
			case <-ctx.Done():
				backoff.Stop()
				return
			}
		}
	}
}

// work leases "remote" jobs through c and acknowledges their completion at
// once, until ctx is done.
func (ck *clusterChecker) work(ctx context.Context, c *client.Client, name string) {
	pause := time.NewTimer(0)
	<-pause.C
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, requestLimit)
		lr, err := c.Lease(rctx, api.LeaseRequest{Types: []string{"remote"}, Max: 20, Wait: "500ms", Lease: workerLease.String(), Worker: name})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ck.count("lease", err)
			pause.Reset(20 * time.Millisecond)
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
				return
			}
			continue
		}
		if len(lr.Jobs) == 0 {
			continue
		}
		now := time.Now()
		acks := make([]api.AckItem, 0, len(lr.Jobs))
		attempts := map[string]int{}
		ck.mu.Lock()
		for _, j := range lr.Jobs {
			ck.leases[j.ID] = append(ck.leases[j.ID], lease{j.Attempt, now, name})
			attempts[j.ID] = j.Attempt
			acks = append(acks, api.AckItem{ID: j.ID, LeaseID: j.LeaseID, Result: json.RawMessage(`"ok"`)})
		}
		ck.mu.Unlock()
		// the ack is not cut by ctx: the drain ends it
		actx, cancel := context.WithTimeout(context.Background(), requestLimit)
		res, err := c.Ack(actx, api.AckRequest{Acks: acks})
		cancel()
		if err != nil {
			ck.count("ack", err)
			continue
		}
		got := time.Now()
		ck.mu.Lock()
		for _, r := range res.Results {
			if !r.OK {
				ck.errs["ack: rejected (stale lease)"]++
				continue
			}
			if d, ok := ck.completed[r.ID]; ok {
				ck.violateLocked("job %s: completion acknowledged twice (attempts %d and %d)", r.ID, d.attempt, attempts[r.ID])
			}
			ck.completed[r.ID] = doneJob{attempts[r.ID], got}
		}
		ck.mu.Unlock()
	}
}

// waitDrained polls the cluster's status (a linearizable read through any
// node that answers) until no job is pending, scheduled or in flight.
func waitDrained(tc *testCluster, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last api.StateCounts
	for i := 0; ; i++ {
		var st api.Status
		if err := tc.getJSON(tc.nodes[i%len(tc.nodes)], "/v1/status", 10*time.Second, &st); err == nil {
			if st.Jobs.Pending+st.Jobs.Scheduled+st.Jobs.InFlight == 0 {
				return nil
			}
			last = st.Jobs
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jobs still unfinished after %v: %+v", limit, last)
		}
		<-tick.C
	}
}

type dupFigures struct {
	lost       int // acknowledged enqueues without their job
	duplicates int // jobs run more than once
	twice      int // keys with two jobs
}

// verify checks the final jobs against what was acknowledged; lease is the
// workers' lease. It returns the duplicate figures.
func (ck *clusterChecker) verify(jobs []api.Job, leaseFor time.Duration) dupFigures {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	var f dupFigures
	byID := make(map[string]api.Job, len(jobs))
	byKey := map[string][]api.Job{}
	for _, j := range jobs {
		byID[j.ID] = j
		var p struct{ Key string }
		if err := json.Unmarshal(j.Payload, &p); err != nil || p.Key != j.UniqueKey || !ck.sent[p.Key] {
			ck.violateLocked("job %s (key %q, payload %s) was never enqueued", j.ID, j.UniqueKey, j.Payload)
		}
		byKey[j.UniqueKey] = append(byKey[j.UniqueKey], j)
		if j.State != api.StateCompleted {
			ck.violateLocked("job %s (key %s) is %s after the drain", j.ID, j.UniqueKey, j.State)
		}
	}
	// 0 acknowledged enqueues lost
	for key, id := range ck.acked {
		j, ok := byID[id]
		switch {
		case !ok:
			f.lost++
			ck.violateLocked("acknowledged enqueue of %s (job %s) lost", key, id)
		case j.UniqueKey != key:
			ck.violateLocked("acknowledged enqueue of %s answered job %s, which holds key %s", key, id, j.UniqueKey)
		}
	}
	for _, js := range byKey {
		if len(js) > 1 {
			f.twice++
		}
	}
	// acknowledged completions hold, and are never followed by a lease
	for id, d := range ck.completed {
		j, ok := byID[id]
		if !ok || j.State != api.StateCompleted || j.Attempt != d.attempt {
			ck.violateLocked("job %s: completion of attempt %d acknowledged, now %+v", id, d.attempt, j)
		}
		for _, l := range ck.leases[id] {
			if l.attempt > d.attempt {
				ck.violateLocked("job %s leased again (attempt %d by %s, %v after) after the completion of attempt %d was acknowledged",
					id, l.attempt, l.worker, l.at.Sub(d.at).Round(time.Millisecond), d.attempt)
			}
		}
	}
	// a job runs more than once only if it was in flight at a fault
	for _, j := range jobs {
		if j.Attempt <= 1 {
			continue
		}
		f.duplicates++
		ls := ck.leases[j.ID]
		for _, l := range ls {
			if l.attempt <= 1 {
				continue
			}
			// the lease before: seen (then a fault must fall within it) or
			// lost with its answer (then a fault shortly before this one)
			from, to := l.at.Add(-30*time.Second), l.at
			if k := slices.IndexFunc(ls, func(p lease) bool { return p.attempt == l.attempt-1 }); k >= 0 {
				from, to = ls[k].at.Add(-stopFor-time.Second), ls[k].at.Add(leaseFor+time.Second)
			}
			if !slices.ContainsFunc(ck.faults, func(f fault) bool { return !f.at.Before(from) && !f.at.After(to) }) {
				ck.violateLocked("job %s: attempt %d leased by %s with no kill or stop while attempt %d was in flight", j.ID, l.attempt, l.worker, l.attempt-1)
			}
		}
	}
	return f
}
