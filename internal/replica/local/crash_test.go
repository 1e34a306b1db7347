package local

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// The crash test re-executes the test binary as a child that proposes from
// many goroutines and reports every acknowledgement on stdout; the parent
// SIGKILLs it at a random moment and checks that the reopened directory holds
// everything acknowledged.

const crashChildEnv = "BEAVER_CRASH_CHILD_DIR"

var crashIterations = flag.Int("crash.iterations", 50, "kill/recover iterations of TestCrashRecovery")

func fixedClock() time.Time { return time.Unix(0, clockNow) }

// crashChild runs until it is killed. Lines it prints:
//
//	ready
//	enq <id> <payload>   an enqueue was acknowledged
//	done <id>            a completion was acknowledged
func crashChild(dir string) {
	o := Options{Dir: dir, SnapshotEvery: 300, SegmentSize: 64 << 10}
	r, err := Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	// Each line is one write(2) of less than PIPE_BUF bytes to the pipe,
	// so a kill never leaves half a line.
	say := func(format string, args ...any) {
		os.Stdout.Write([]byte(fmt.Sprintf(format+"\n", args...)))
	}
	say("ready")
	pid := os.Getpid()
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				p := fmt.Sprintf(`{"p":%d,"g":%d,"i":%d}`, pid, g, i)
				res, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(), Jobs: []fsm.JobSpec{{Type: "t", Payload: p}}})
				if err != nil {
					return
				}
				say("enq %d %s", res.Enqueued[0].ID, p)
			}
		}()
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				l, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindLease, Now: time.Now().UnixNano(), Queues: []string{"default"}, Max: 8, Worker: "crash"})
				if err != nil {
					return
				}
				acks := make([]fsm.Ack, len(l.Jobs))
				for i, j := range l.Jobs {
					acks[i] = fsm.Ack{ID: j.ID, LeaseID: j.LeaseID, Result: `"ok"`}
				}
				if len(acks) == 0 {
					continue
				}
				a, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindAck, Now: time.Now().UnixNano(), Acks: acks})
				if err != nil {
					return
				}
				for i, e := range a.AckErrs {
					if e == nil {
						say("done %d", acks[i].ID)
					}
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := map[uint64]string{} // id -> payload
	done := map[uint64]bool{}
	totalAcks := 0
	for it := 0; it < *crashIterations; it++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 1<<16), 1<<20)
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("iteration %d: child did not start: %q %s", it, lines.Text(), stderr.String())
		}
		// Kill after a random number of acknowledgements, so the moment
		// varies without the test depending on timing.
		killAfter := 50 + rng.IntN(3000)
		n := 0
		for lines.Scan() {
			f := strings.SplitN(lines.Text(), " ", 3)
			id, _ := strconv.ParseUint(f[1], 10, 64)
			switch f[0] {
			case "enq":
				acked[id] = f[2]
			case "done":
				done[id] = true
			}
			n++
			if n == killAfter {
				cmd.Process.Kill()
			}
		}
		cmd.Wait()
		if n < killAfter {
			t.Fatalf("iteration %d: child exited after %d lines: %s", it, n, stderr.String())
		}
		totalAcks += n

		r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true})
		if err != nil {
			t.Fatalf("iteration %d: reopen: %v", it, err)
		}
		r.Read(func(m *fsm.Machine) {
			for id, p := range acked {
				j, ok := m.Get(id)
				if !ok || j.Payload != p {
					t.Fatalf("iteration %d: acknowledged job %d lost or changed: %+v", it, id, j)
				}
				if done[id] && j.State != fsm.StateCompleted {
					t.Fatalf("iteration %d: job %d's completion was acknowledged, state %s", it, id, j.State)
				}
			}
			if m.Len() < len(acked) {
				t.Fatalf("iteration %d: %d jobs, %d acknowledged", it, m.Len(), len(acked))
			}
		})
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills, %d acknowledged enqueues, %d acknowledged completions, all present", *crashIterations, len(acked), len(done))
}
