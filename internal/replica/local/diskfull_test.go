package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

// spaceFS is a vfstest.FS that reports its free space (capacity - used) as
// vfs.StatFS. Test-only.
type spaceFS struct {
	*vfstest.FS
	mu       sync.Mutex
	capacity int64
}

var _ vfs.StatFS = (*spaceFS)(nil)

func newSpaceFS(seed uint64) *spaceFS {
	return &spaceFS{FS: vfstest.New(seed), capacity: vfstest.Unlimited}
}

func (s *spaceFS) setCapacity(n int64) {
	s.mu.Lock()
	s.capacity = n
	s.mu.Unlock()
	s.FS.SetCapacity(n)
}

// fillTo leaves room bytes of free space.
func (s *spaceFS) fillTo(room int64) { s.setCapacity(s.Used() + room) }

func (s *spaceFS) FreeSpace(string) (uint64, error) {
	s.mu.Lock()
	c := s.capacity
	s.mu.Unlock()
	if c == vfstest.Unlimited {
		return 1 << 40, nil
	}
	return uint64(max(c-s.Used(), 0)), nil
}

// isDiskFull: err is what Propose returns for a command refused because
// the disk is full.
func isDiskFull(err error) bool {
	return errors.Is(err, replica.ErrDiskFull) && errors.Is(err, wal.ErrDiskFull) &&
		errors.Is(err, syscall.ENOSPC) && !errors.Is(err, replica.ErrFailed)
}

func enqueueCmd(now int64, payload string) *fsm.Command {
	return &fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "t", Payload: payload}}}
}

func jobState(r *Replica, id uint64) string {
	s := "missing"
	r.Read(func(m *fsm.Machine) {
		if j, ok := m.Get(id); ok {
			s = j.State.String()
		}
	})
	return s
}

// waitForEnqueue retries an enqueue while it fails with ErrDiskFull, for at
// most 10 s (the WAL checks free space every second), and returns the job.
func waitForEnqueue(t *testing.T, r *Replica, now int64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := r.Propose(context.Background(), enqueueCmd(now, `"after"`))
		if err == nil {
			return res.Enqueued[0].ID
		}
		if !isDiskFull(err) || time.Now().After(deadline) {
			t.Fatalf("enqueue after space was freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
}

// diskFullScenario runs the same story on any storage: fill is called to
// fill the disk, free to free it again.
func diskFullScenario(t *testing.T, r *Replica, fill, free func()) (acked, canceled, leased, added uint64, ids []uint64) {
	t.Helper()
	for i := range 4 {
		ids = append(ids, enqueue(t, r, clockNow+int64(i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	l := propose(t, r, &fsm.Command{Kind: fsm.KindLease, Now: clockNow + 10, Queues: []string{"default"}, Max: 2})
	if len(l.Jobs) != 2 {
		t.Fatalf("leased %d jobs", len(l.Jobs))
	}

	fill()
	big := `"` + strings.Repeat("x", 20000) + `"`
	if _, err := r.Propose(context.Background(), enqueueCmd(clockNow+11, big)); !isDiskFull(err) {
		t.Fatalf("enqueue on a full disk: %v, want ErrDiskFull and ENOSPC", err)
	}
	if st := r.Status(); !st.DiskFull || st.Failed != nil {
		t.Fatalf("status when the disk is full: DiskFull %v, Failed %v", st.DiskFull, st.Failed)
	}
	for i := range 3 {
		if _, err := r.Propose(context.Background(), enqueueCmd(clockNow+12+int64(i), `"small"`)); !isDiskFull(err) {
			t.Fatalf("enqueue while disk-full: %v", err)
		}
	}
	// Everything but enqueues keeps working.
	acked, leased, canceled = l.Jobs[0].ID, l.Jobs[1].ID, ids[3]
	if res := propose(t, r, &fsm.Command{Kind: fsm.KindAck, Now: clockNow + 20, Acks: []fsm.Ack{{ID: acked, LeaseID: l.Jobs[0].LeaseID, Result: `"done"`}}}); res.Err != nil {
		t.Fatalf("ack while disk-full: %v", res.Err)
	}
	if res := propose(t, r, &fsm.Command{Kind: fsm.KindHeartbeat, Now: clockNow + 21, ID: leased, LeaseID: l.Jobs[1].LeaseID, LeaseFor: int64(time.Minute)}); res.Err != nil {
		t.Fatalf("heartbeat while disk-full: %v", res.Err)
	}
	if res := propose(t, r, &fsm.Command{Kind: fsm.KindCancel, Now: clockNow + 22, ID: canceled}); res.Err != nil {
		t.Fatalf("cancel while disk-full: %v", res.Err)
	}
	propose(t, r, &fsm.Command{Kind: fsm.KindTick, Now: clockNow + 23})
	if st := r.Status(); !st.DiskFull {
		t.Fatal("left disk-full with no space freed")
	}

	free()
	added = waitForEnqueue(t, r, clockNow+30)
	if st := r.Status(); st.DiskFull || st.Failed != nil {
		t.Fatalf("status after space was freed: DiskFull %v, Failed %v", st.DiskFull, st.Failed)
	}
	return acked, canceled, leased, added, ids
}

// checkAfterReopen checks what survived: every acknowledged command, and
// none of the refused enqueues.
func checkAfterReopen(t *testing.T, r *Replica, acked, canceled, leased, added uint64, ids []uint64) {
	t.Helper()
	if got := jobState(r, acked); got != "completed" {
		t.Errorf("acked job %d is %s", acked, got)
	}
	if got := jobState(r, canceled); got != "canceled" {
		t.Errorf("canceled job %d is %s", canceled, got)
	}
	if got := jobState(r, leased); got != "pending" { // in flight at the crash: requeued
		t.Errorf("leased job %d is %s", leased, got)
	}
	if got := jobState(r, ids[2]); got != "pending" {
		t.Errorf("job %d is %s", ids[2], got)
	}
	if got := jobState(r, added); got != "pending" {
		t.Errorf("job enqueued after the disk-full state is %s", got)
	}
	var n int
	r.Read(func(m *fsm.Machine) { n = m.Len() })
	if n != len(ids)+1 {
		t.Errorf("%d jobs after reopen, want %d: a refused enqueue was applied", n, len(ids)+1)
	}
}

func TestDiskFullReplica(t *testing.T) {
	fsys := newSpaceFS(1)
	o := Options{Dir: t.TempDir(), FS: fsys, Clock: fixedClock, ReserveBytes: 64 << 10, SegmentSize: 256 << 10,
		SnapshotEvery: 1 << 40, NoSnapshotOnClose: true}
	r := open(t, o)
	fsys.SyncAll() // the data directory's own entry (created by Open) is durable
	acked, canceled, leased, added, ids := diskFullScenario(t, r,
		func() { fsys.fillTo(1000) },
		func() { fsys.setCapacity(vfstest.Unlimited) })

	// The power goes: nothing acknowledged is lost, nothing refused appears.
	fsys.PowerCut()
	r.Close()
	fsys.Restart()
	r = open(t, o)
	defer r.Close()
	if rec := r.Recovery(); rec.TornBytes != 0 {
		t.Errorf("torn tail after reopen: %+v", rec)
	}
	checkAfterReopen(t, r, acked, canceled, leased, added, ids)
}

// TestFailedFsyncReplica: a failed fdatasync stops the log for good, and
// Status says why.
func TestFailedFsyncReplica(t *testing.T) {
	fsys := newSpaceFS(2)
	dir := t.TempDir()
	r := open(t, Options{Dir: dir, FS: fsys, Clock: fixedClock, NoSnapshotOnClose: true})
	defer r.Close()
	id := enqueue(t, r, clockNow, `1`)
	fsys.Inject(vfstest.Fault{Op: vfstest.OpSync, Match: func(p string) bool { return strings.HasSuffix(p, ".wal") }, Err: syscall.EIO})
	_, err := r.Propose(context.Background(), enqueueCmd(clockNow+1, `2`))
	if !errors.Is(err, replica.ErrFailed) || !errors.Is(err, wal.ErrFailed) || !errors.Is(err, syscall.EIO) || errors.Is(err, replica.ErrDiskFull) {
		t.Fatalf("enqueue with a failing fdatasync: %v", err)
	}
	// Every command fails now, completions too.
	if _, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindCancel, Now: clockNow + 2, ID: id}); !errors.Is(err, replica.ErrFailed) {
		t.Fatalf("cancel after a failed fdatasync: %v", err)
	}
	st := r.Status()
	if !errors.Is(st.Failed, replica.ErrFailed) || st.DiskFull {
		t.Fatalf("status: Failed %v, DiskFull %v", st.Failed, st.DiskFull)
	}
	if msg := st.Failed.Error(); !strings.Contains(msg, "fdatasync") || !strings.Contains(msg, "input/output error") {
		t.Fatalf("Status().Failed does not say why: %q", msg)
	}
}
