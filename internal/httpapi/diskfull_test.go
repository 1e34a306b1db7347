package httpapi

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
)

// spaceFS is a vfstest.FS that reports its free space (capacity - used) as
// vfs.StatFS. Test-only.
type spaceFS struct {
	*vfstest.FS
	mu       sync.Mutex
	capacity int64
}

var _ vfs.StatFS = (*spaceFS)(nil)

func (s *spaceFS) setCapacity(n int64) {
	s.mu.Lock()
	s.capacity = n
	s.mu.Unlock()
	s.FS.SetCapacity(n)
}

func (s *spaceFS) FreeSpace(string) (uint64, error) {
	s.mu.Lock()
	c := s.capacity
	s.mu.Unlock()
	if c == vfstest.Unlimited {
		return 1 << 40, nil
	}
	return uint64(max(c-s.Used(), 0)), nil
}

// syncBuffer is a bytes.Buffer for a logger used by several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestDiskFull: with the disk full, enqueues answer 507 with a clear
// message while completions keep working; enqueues work again once space
// is freed.
func TestDiskFull(t *testing.T) {
	fsys := &spaceFS{FS: vfstest.New(1), capacity: vfstest.Unlimited}
	rep, err := local.Open(local.Options{Dir: t.TempDir(), FS: fsys, ReserveBytes: 64 << 10, SegmentSize: 256 << 10,
		SnapshotEvery: 1 << 40, NoSnapshotOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	s := newServer(t, func(*testing.T) replica.Replica { return rep }, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	s.enqueue(`{"type":"t","payload":1}`)
	s.enqueue(`{"type":"t","payload":2}`)
	jobs := s.lease(api.LeaseRequest{Max: 2})
	if len(jobs) != 2 {
		t.Fatalf("leased %d jobs", len(jobs))
	}

	fsys.setCapacity(fsys.Used() + 500)
	big := fmt.Sprintf(`{"type":"t","payload":%q}`, strings.Repeat("x", 20000))
	for _, req := range []struct{ path, body string }{
		{"/v1/jobs", big},            // fails in the WAL: the log enters the disk-full state
		{"/v1/jobs", `{"type":"t"}`}, // refused at once
		{"/v1/jobs/batch", `{"jobs":[{"type":"t"},{"type":"t"}]}`}, // likewise
	} {
		msg := s.callErr("POST", req.path, req.body, http.StatusInsufficientStorage, api.CodeInsufficientStorage)
		if msg != msgDiskFull {
			t.Errorf("POST %s: message %q, want %q", req.path, msg, msgDiskFull)
		}
	}
	if !rep.Status().DiskFull {
		t.Fatal("replica not disk-full")
	}

	// Completions, failures and heartbeats keep working.
	var j api.Job
	s.call("POST", "/v1/jobs/"+jobs[0].ID+"/heartbeat", api.HeartbeatRequest{LeaseID: jobs[0].LeaseID}, http.StatusOK, &j)
	s.call("POST", "/v1/jobs/"+jobs[0].ID+"/complete", api.CompleteRequest{LeaseID: jobs[0].LeaseID, Result: []byte(`"ok"`)}, http.StatusOK, &j)
	if j.State != api.StateCompleted {
		t.Fatalf("completed job is %s", j.State)
	}
	s.call("POST", "/v1/jobs/"+jobs[1].ID+"/fail", api.FailRequest{LeaseID: jobs[1].LeaseID, Error: "boom", RetryIn: "1h"}, http.StatusOK, &j)
	if j.State != api.StateScheduled {
		t.Fatalf("failed job is %s", j.State)
	}
	// The server is still ready: it serves reads and completions.
	s.call("GET", "/readyz", nil, http.StatusOK, nil)
	if strings.Contains(logs.String(), "request failed") {
		t.Errorf("disk-full answers were logged as failures:\n%s", logs.String())
	}

	fsys.setCapacity(vfstest.Unlimited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.do("POST", "/v1/jobs", `{"type":"t"}`)
		if r.status == http.StatusCreated {
			break
		}
		if r.status != http.StatusInsufficientStorage || time.Now().After(deadline) {
			t.Fatalf("enqueue after space was freed: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
	if rep.Status().DiskFull {
		t.Fatal("still disk-full")
	}
}

// TestLogFailed: after a failed fdatasync the server answers 503 and says
// why, and /readyz reports not ready with the reason.
func TestLogFailed(t *testing.T) {
	fsys := vfstest.New(2)
	rep, err := local.Open(local.Options{Dir: t.TempDir(), FS: fsys, NoSnapshotOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, func(*testing.T) replica.Replica { return rep }, nil)
	id := s.enqueue(`{"type":"t"}`).ID
	fsys.Inject(vfstest.Fault{Op: vfstest.OpSync, Match: func(p string) bool { return strings.HasSuffix(p, ".wal") }, Err: syscall.EIO})
	for _, req := range []struct{ path, body string }{
		{"/v1/jobs", `{"type":"t"}`},
		{"/v1/jobs/" + id + "/cancel", ""},
	} {
		msg := s.callErr("POST", req.path, req.body, http.StatusServiceUnavailable, api.CodeUnavailable)
		if !strings.Contains(msg, "write-ahead log failed") || !strings.Contains(msg, "restart") ||
			!strings.Contains(msg, "fdatasync") || !strings.Contains(msg, "input/output error") {
			t.Errorf("POST %s: message %q does not say why", req.path, msg)
		}
	}
	msg := s.callErr("GET", "/readyz", nil, http.StatusServiceUnavailable, api.CodeUnavailable)
	if !strings.Contains(msg, "log failed") || !strings.Contains(msg, "input/output error") {
		t.Errorf("readyz message %q does not say why", msg)
	}
}

// TestDiskFullMessages: the 507 of an enqueue and of a command that may use
// the reserve (which fails only once the reserve is used up too).
func TestDiskFullMessages(t *testing.T) {
	rep := newMemReplica()
	s := newServer(t, func(*testing.T) replica.Replica { return rep }, nil)
	id := s.enqueue(`{"type":"t"}`).ID
	rep.setErr(fmt.Errorf("%w: %w", replica.ErrDiskFull, syscall.ENOSPC))
	if msg := s.callErr("POST", "/v1/jobs", `{"type":"t"}`, 507, api.CodeInsufficientStorage); msg != msgDiskFull {
		t.Errorf("enqueue: %q", msg)
	}
	if msg := s.callErr("POST", "/v1/jobs/"+id+"/cancel", nil, 507, api.CodeInsufficientStorage); msg != msgReserveFull {
		t.Errorf("cancel: %q", msg)
	}
	rep.setErr(fmt.Errorf("%w: fdatasync: %w", replica.ErrFailed, syscall.ENOSPC))
	if msg := s.callErr("POST", "/v1/jobs", `{"type":"t"}`, 503, api.CodeUnavailable); !strings.Contains(msg, "restarted") {
		t.Errorf("failed log with ENOSPC: %q", msg)
	}
}
