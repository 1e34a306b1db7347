package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

var killRounds = flag.Int("e2e.kills", 3, "SIGKILL/restart rounds in TestKill9UnderLoad")

// TestKill9UnderLoad enqueues from 8 producers while in-process workers run
// noop jobs and 2 remote workers complete "remote" jobs, SIGKILLs the server
// at a random moment, restarts it, and repeats. At the end every acknowledged
// job must be completed, and no job whose completion was acknowledged may be
// handed out again.
func TestKill9UnderLoad(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	acked := map[string]string{}   // id -> type
	completed := map[string]bool{} // remote jobs whose completion was acknowledged
	var violations []string
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var seq atomic.Int64

	remoteWorker := func(ctx context.Context, c *client.Client) {
		for ctx.Err() == nil {
			lr, err := c.Lease(ctx, api.LeaseRequest{Types: []string{"remote"}, Max: 10, Wait: "100ms", Worker: "e2e"})
			if err != nil {
				return
			}
			for _, j := range lr.Jobs {
				mu.Lock()
				if completed[j.ID] {
					violations = append(violations, "job "+j.ID+" was leased again after its completion was acknowledged")
				}
				mu.Unlock()
				if _, err := c.Complete(ctx, j.ID, api.CompleteRequest{LeaseID: j.LeaseID, Result: []byte(`"ok"`)}); err == nil {
					mu.Lock()
					completed[j.ID] = true
					mu.Unlock()
				}
			}
		}
	}

	for round := 0; round < *killRounds; round++ {
		p := startServer(t, dir, "--workers", "4", "--snapshot-every-records", "700", "--wal-segment-size", "64KiB")
		c := p.client()
		// everything acknowledged so far is still there
		mu.Lock()
		for id := range acked {
			if _, err := c.Get(context.Background(), id); err != nil {
				violations = append(violations, fmt.Sprintf("round %d: acknowledged job %s lost: %v", round, id, err))
			}
		}
		mu.Unlock()

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		killAfter := int64(200 + rng.IntN(800))
		var n atomic.Int64
		killed := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					typ := "noop"
					if seq.Add(1)%2 == 0 {
						typ = "remote"
					}
					e, err := c.Enqueue(ctx, api.EnqueueRequest{Type: typ, Payload: []byte(fmt.Sprintf(`{"n":%d}`, seq.Load()))})
					if err != nil {
						continue
					}
					mu.Lock()
					acked[e.ID] = typ
					mu.Unlock()
					if n.Add(1) == killAfter {
						close(killed)
					}
				}
			}()
		}
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() { defer wg.Done(); remoteWorker(ctx, c) }()
		}
		<-killed
		p.kill()
		cancel()
		wg.Wait()
		c.Close()
	}

	// last start: let everything finish
	p := startServer(t, dir, "--workers", "4")
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); remoteWorker(ctx, c) }()
	deadline := time.Now().Add(60 * time.Second)
	mu.Lock()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	mu.Unlock()
	for _, id := range ids {
		for {
			j, err := c.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("acknowledged job %s lost: %v", id, err)
			}
			if j.State == api.StateCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s still %s after 60s", id, j.State)
			}
			// wait for the next change the cheap way: a long poll that
			// returns when anything is enqueued or acknowledged
			c.Lease(context.Background(), api.LeaseRequest{Types: []string{"never-exists"}, Max: 1, Wait: "50ms"})
		}
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("%d violations:\n%s", len(violations), strings.Join(violations, "\n"))
	}
	t.Logf("%d kills, %d acknowledged enqueues, %d acknowledged remote completions; all completed, none lost", *killRounds, len(acked), len(completed))
}

func TestAuthAndNonLoopback(t *testing.T) {
	p := startServer(t, t.TempDir(), "--auth-token", "s3cret")
	ctx := context.Background()
	_, err := p.client().Enqueue(ctx, api.EnqueueRequest{Type: "noop"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
	_, err = p.client(client.WithToken("wrong")).Enqueue(ctx, api.EnqueueRequest{Type: "noop"})
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := p.client(client.WithToken("s3cret")).Enqueue(ctx, api.EnqueueRequest{Type: "noop"}); err != nil {
		t.Fatalf("right token: %v", err)
	}

	// a non-loopback address without a token is refused at start
	_, stderr, err := runCLI(t, "", "run", "--data-dir", t.TempDir(), "--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(stderr, "token") {
		t.Fatalf("non-loopback without a token: err %v, stderr %q", err, stderr)
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	p := startServer(t, t.TempDir(), "--workers", "1", "--limits-max-payload", "1KiB")
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
	}{
		{"unknown field", "/v1/jobs", "application/json", `{"type":"noop","bogus":1}`, 400},
		{"missing type", "/v1/jobs", "application/json", `{"payload":1}`, 400},
		{"bad duration", "/v1/jobs", "application/json", `{"type":"noop","timeout":"soon"}`, 400},
		{"bad queue", "/v1/jobs", "application/json", `{"type":"noop","queue":"no spaces"}`, 400},
		{"invalid json", "/v1/jobs", "application/json", `{"type":`, 400},
		{"payload too large", "/v1/jobs", "application/json", `{"type":"noop","payload":"` + strings.Repeat("x", 2000) + `"}`, 413},
		{"batch with one bad job", "/v1/jobs/batch", "application/json", `{"jobs":[{"type":"noop"},{"type":""}]}`, 400},
		{"wrong content type", "/v1/jobs", "text/plain", `{"type":"noop"}`, 415},
	} {
		resp, err := http.Post(p.api+tc.path, tc.ctype, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	st, err := p.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if total := st.Jobs.Pending + st.Jobs.Scheduled + st.Jobs.InFlight + st.Jobs.Completed + st.Jobs.Failed + st.Jobs.Canceled; total != 0 {
		t.Fatalf("rejected requests stored %d jobs: %+v", total, st.Jobs)
	}
	if st.WAL.LastLSN != 0 {
		t.Fatalf("rejected requests wrote to the WAL: last LSN %d", st.WAL.LastLSN)
	}
}

func TestGracefulStopAndRestart(t *testing.T) {
	dir := t.TempDir()
	p := startServer(t, dir, "--workers", "2")
	c := p.client()
	e, err := c.Enqueue(context.Background(), api.EnqueueRequest{Type: "remote-later"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.logs())
	}
	if !strings.Contains(p.logs(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.logs())
	}
	p2 := startServer(t, dir)
	j, err := p2.client().Get(context.Background(), e.ID)
	if err != nil || j.State != api.StatePending {
		t.Fatalf("after a graceful restart: %+v %v", j, err)
	}
	if !strings.Contains(p2.logs(), "records_replayed=0") {
		t.Errorf("a graceful stop should snapshot, leaving nothing to replay:\n%s", p2.logs())
	}
}
