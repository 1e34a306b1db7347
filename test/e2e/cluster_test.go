package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// This file is the harness of the cluster tests: n real server processes
// on fixed free ports of 127.0.0.1, each restartable on its data
// directory with the same flags. Only the test goroutine starts, kills,
// stops and continues processes.

// clusterNode is one node of a testCluster.
type clusterNode struct {
	id      string
	dir     string
	api     string // http://127.0.0.1:port, the same across restarts
	raft    string // host:port of --raft-listen
	args    []string
	c       *client.Client
	p       *proc // nil while the node is down
	stopped bool  // SIGSTOPped
	starts  int
}

type testCluster struct {
	t     *testing.T
	nodes []*clusterNode
	http  *http.Client
}

// freePorts returns n distinct ports of 127.0.0.1 that were free a moment
// ago: all are held open together, then closed.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], ports[i] = ln, ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// clusterLayout names the addresses of a cluster: raftDial[i] is the
// address the others dial to reach node i (--peer and --raft-advertise);
// it is --raft-listen unless a proxy stands in front of the node.
type clusterLayout struct {
	apiPorts, metPorts, raftPorts []int
	raftDial                      []string
}

func newLayout(t *testing.T, n int) clusterLayout {
	ports := freePorts(t, 3*n)
	l := clusterLayout{apiPorts: ports[:n], metPorts: ports[n : 2*n], raftPorts: ports[2*n:]}
	for i := 0; i < n; i++ {
		l.raftDial = append(l.raftDial, fmt.Sprintf("127.0.0.1:%d", l.raftPorts[i]))
	}
	return l
}

// startCluster starts the nodes of layout, every one with --bootstrap and
// the same --peer list (a user's way), plus extra flags, and waits until
// they agree on a leader.
func startCluster(t *testing.T, l clusterLayout, extra ...string) *testCluster {
	t.Helper()
	root := t.TempDir()
	tc := &testCluster{t: t, http: &http.Client{}}
	t.Cleanup(tc.killAll)
	var peers []string
	for i := range l.raftPorts {
		peers = append(peers, "--peer", fmt.Sprintf("n%d=%s", i+1, l.raftDial[i]))
	}
	for i := range l.raftPorts {
		n := &clusterNode{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(root, fmt.Sprintf("n%d", i+1)),
			api:  fmt.Sprintf("http://127.0.0.1:%d", l.apiPorts[i]),
			raft: fmt.Sprintf("127.0.0.1:%d", l.raftPorts[i])}
		n.args = []string{"run", "--data-dir", n.dir,
			"--listen", fmt.Sprintf("127.0.0.1:%d", l.apiPorts[i]),
			"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", l.metPorts[i]),
			"--cluster", "--node-id", n.id, "--raft-listen", n.raft, "--bootstrap"}
		if l.raftDial[i] != n.raft {
			n.args = append(n.args, "--raft-advertise", l.raftDial[i])
		}
		n.args = append(append(n.args, peers...), extra...)
		n.c = client.New(n.api)
		tc.nodes = append(tc.nodes, n)
	}
	for _, n := range tc.nodes {
		if err := tc.start(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tc.waitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return tc
}

func (tc *testCluster) start(n *clusterNode) error {
	p, err := launch(n.args)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.id, err)
	}
	n.p, n.stopped = p, false
	n.starts++
	return nil
}

// kill SIGKILLs node n and waits for its end.
func (tc *testCluster) kill(n *clusterNode) {
	if n.p != nil {
		n.p.kill()
		tc.saveLog(n)
		n.p, n.stopped = nil, false
	}
}

func (tc *testCluster) signal(n *clusterNode, sig syscall.Signal) {
	if n.p != nil {
		n.p.cmd.Process.Signal(sig)
		n.stopped = sig == syscall.SIGSTOP
	}
}

func (tc *testCluster) killAll() {
	for _, n := range tc.nodes {
		tc.kill(n)
		n.c.Close()
	}
}

// saveLog keeps the log of a process that ended beside its data directory
// (the test's temporary directory), and its tail for a failure report.
func (tc *testCluster) saveLog(n *clusterNode) {
	os.WriteFile(filepath.Join(filepath.Dir(n.dir), fmt.Sprintf("%s.%d.log", n.id, n.starts)), []byte(n.p.logs()), 0o644)
}

// logTails returns the last lines of every running node's log.
func (tc *testCluster) logTails(lines int) string {
	var b strings.Builder
	for _, n := range tc.nodes {
		if n.p == nil {
			continue
		}
		l := strings.Split(strings.TrimSpace(n.p.logs()), "\n")
		fmt.Fprintf(&b, "--- %s (start %d)\n%s\n", n.id, n.starts, strings.Join(l[max(0, len(l)-lines):], "\n"))
	}
	return b.String()
}

// exitedByItself returns an error naming every node whose process ended
// without being killed by the test.
func (tc *testCluster) exitedByItself() error {
	var errs []string
	for _, n := range tc.nodes {
		if n.p == nil {
			continue
		}
		select {
		case <-n.p.exited:
			l := strings.Split(strings.TrimSpace(n.p.logs()), "\n")
			errs = append(errs, fmt.Sprintf("node %s exited by itself (%v):\n%s", n.id, n.p.err, strings.Join(l[max(0, len(l)-10):], "\n")))
		default:
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// getJSON GETs path of node n into out, within limit.
func (tc *testCluster) getJSON(n *clusterNode, path string, limit time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.api+path, nil)
	if err != nil {
		return err
	}
	resp, err := tc.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return &client.Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// leader returns the running node that says it leads (the highest term
// if more than one says so), or nil.
func (tc *testCluster) leader() (*clusterNode, uint64) {
	var best *clusterNode
	var term uint64
	for _, n := range tc.nodes {
		if n.p == nil || n.stopped {
			continue
		}
		var st api.Status
		if err := tc.getJSON(n, "/v1/status?stale=true", time.Second, &st); err != nil || st.Cluster == nil {
			continue
		}
		if st.Role == "leader" && st.Cluster.Term >= term {
			best, term = n, st.Cluster.Term
		}
	}
	return best, term
}

// waitLeader polls until a running node leads and every running node
// knows it as the leader.
func (tc *testCluster) waitLeader(limit time.Duration) (*clusterNode, error) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if l, _ := tc.leader(); l != nil && tc.allFollow(l) {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader known to every running node after %v:\n%s", limit, tc.logTails(20))
		}
		<-tick.C
	}
}

func (tc *testCluster) allFollow(l *clusterNode) bool {
	for _, n := range tc.nodes {
		if n.p == nil || n.stopped {
			continue
		}
		var st api.Status
		if err := tc.getJSON(n, "/v1/status?stale=true", time.Second, &st); err != nil || st.Cluster == nil || st.Cluster.LeaderID != l.id {
			return false
		}
	}
	return true
}

// jobDigest is what must be the same on every node: one line per job.
func jobDigest(j api.Job) string {
	return j.ID + " " + j.State + " " + strconv.Itoa(j.Attempt) + " " + j.UniqueKey + " " + string(j.Payload)
}

// listAll returns every job of node n (local state with stale, else
// linearizable), in id order.
func (tc *testCluster) listAll(n *clusterNode, stale bool) ([]api.Job, error) {
	var all []api.Job
	cursor := ""
	for {
		q := "/v1/jobs?limit=1000"
		if stale {
			q += "&stale=true"
		}
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var lr api.ListResponse
		if err := tc.getJSON(n, q, 30*time.Second, &lr); err != nil {
			return nil, err
		}
		all = append(all, lr.Jobs...)
		if lr.NextCursor == "" {
			return all, nil
		}
		cursor = lr.NextCursor
	}
}

// waitSameState polls until every running node, after a linearizable
// read, holds the same jobs in its own state (read with ?stale=true).
func (tc *testCluster) waitSameState(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		diff, err := tc.compareNodes()
		if err == nil && diff == "" {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = diff
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes differ after %v: %s", limit, last)
		}
		<-tick.C
	}
}

func (tc *testCluster) compareNodes() (string, error) {
	var ref []api.Job
	var refID string
	for _, n := range tc.nodes {
		var st api.Status
		if err := tc.getJSON(n, "/v1/status", 10*time.Second, &st); err != nil { // the linearizable read
			return "", fmt.Errorf("node %s: %w", n.id, err)
		}
		jobs, err := tc.listAll(n, true)
		if err != nil {
			return "", fmt.Errorf("node %s: %w", n.id, err)
		}
		if ref == nil {
			ref, refID = jobs, n.id
			continue
		}
		if len(jobs) != len(ref) {
			return fmt.Sprintf("node %s holds %d jobs, node %s %d", n.id, len(jobs), refID, len(ref)), nil
		}
		for i := range jobs {
			if a, b := jobDigest(jobs[i]), jobDigest(ref[i]); a != b {
				return fmt.Sprintf("job %d: node %s %q, node %s %q", i, n.id, a, refID, b), nil
			}
		}
	}
	return "", nil
}

// isRetryable reports whether an error of a write means that nothing was
// acknowledged and the same request may be sent again: a 503 (not_leader,
// unavailable, unknown_outcome) or no answer at all.
func isRetryable(err error) bool {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status == http.StatusServiceUnavailable
	}
	return true
}
