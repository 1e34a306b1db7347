package raftrep

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"github.com/beaver-raft/beaver-raft/internal/replica/raftrep/raftlog"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// openAlone opens a one-node cluster on dir with the given log store
// setting.
func openAlone(t *testing.T, dir, store string) (*Replica, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(Options{Dir: dir, NodeID: "n1", Listener: ln, Bootstrap: true, LogStore: store,
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLease: 500 * time.Millisecond})
	if err != nil {
		ln.Close()
	}
	return r, err
}

func jobsOf(t *testing.T, r *Replica) int {
	t.Helper()
	if err := r.ReadBarrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	r.Read(func(m *fsm.Machine) { n = m.Len() })
	return n
}

// A data directory keeps the log store it holds whatever the setting says:
// a node never starts with an empty log beside its old one.
func TestExistingLogStoreIsKept(t *testing.T) {
	for _, c := range []struct{ created, configured string }{
		{LogStoreBolt, ""}, // a node of an older version: the default changed
		{LogStoreBolt, LogStoreWAL},
		{LogStoreWAL, LogStoreBolt},
	} {
		t.Run(c.created+"-then-"+c.configured, func(t *testing.T) {
			dir := t.TempDir()
			r, err := openAlone(t, dir, c.created)
			if err != nil {
				t.Fatal(err)
			}
			if r.kind != c.created {
				t.Fatalf("new directory got store %s, want %s", r.kind, c.created)
			}
			if _, err := enqueue(context.Background(), r, "a"); err != nil {
				t.Fatal(err)
			}
			r.Close()
			if !IsClusterDir(dir) {
				t.Fatalf("IsClusterDir(%s) is false for a %s store", dir, c.created)
			}
			r, err = openAlone(t, dir, c.configured)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.kind != c.created {
				t.Fatalf("reopened with %q: store %s, want the existing %s", c.configured, r.kind, c.created)
			}
			if n := jobsOf(t, r); n != 1 {
				t.Fatalf("reopened node holds %d jobs, want 1", n)
			}
			if _, err := enqueue(context.Background(), r, "b"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The default store of a new data directory is the WAL.
func TestDefaultLogStore(t *testing.T) {
	dir := t.TempDir()
	r, err := openAlone(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.kind != DefaultLogStore || DefaultLogStore != LogStoreWAL {
		t.Fatalf("store %s, default %s", r.kind, DefaultLogStore)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft", "raft.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("raft.db exists beside the WAL store: %v", err)
	}
	if _, err := enqueue(context.Background(), r, "a"); err != nil {
		t.Fatal(err)
	}
}

// A raft directory with both stores is refused, naming both.
func TestTwoLogStoresRefused(t *testing.T) {
	dir := t.TempDir()
	r, err := openAlone(t, dir, LogStoreWAL)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = openAlone(t, t.TempDir(), LogStoreBolt)
	if err != nil {
		t.Fatal(err)
	}
	bolt := filepath.Join(r.o.Dir, "raft", "raft.db")
	r.Close()
	b, err := os.ReadFile(bolt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raft", "raft.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openAlone(t, dir, "")
	if !errors.Is(err, ErrTwoLogStores) {
		t.Fatalf("Open with both stores: %v, want ErrTwoLogStores", err)
	}
	if !IsClusterDir(dir) {
		t.Fatal("a directory with two log stores is not a cluster directory")
	}
	if _, err := openAlone(t, t.TempDir(), "leveldb"); err == nil {
		t.Fatal("unknown log store accepted")
	}
}

// Seed creates the log store it is asked for, holding the seeded term.
func TestSeedWritesTheChosenStore(t *testing.T) {
	for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			rep, err := local.Open(local.Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rep.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(),
				Jobs: []fsm.JobSpec{{Queue: "default", Type: "t", Payload: "null"}}}); err != nil {
				t.Fatal(err)
			}
			if err := rep.Close(); err != nil {
				t.Fatal(err)
			}
			if err := Seed(SeedOptions{Dir: dir, NodeID: "n1", Addr: "127.0.0.1:1", LogStore: kind}); err != nil {
				t.Fatal(err)
			}
			rdir := filepath.Join(dir, "raft")
			if got, err := logStoreOnDisk(rdir); err != nil || got != kind {
				t.Fatalf("seeded store %q (%v), want %s", got, err, kind)
			}
			s, err := openLogStore(kind, rdir, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != seedTerm {
				t.Fatalf("seeded term %d, %v", term, err)
			}
			for _, tmp := range []string{"raft.db.tmp", "log.tmp"} {
				if _, err := os.Stat(filepath.Join(rdir, tmp)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s left behind", tmp)
				}
			}
		})
	}
}

// syncFailFS fails every fdatasync of a WAL segment once armed.
type syncFailFS struct {
	vfs.FS
	fail atomic.Bool
}

func (f *syncFailFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".wal") {
		return file, err
	}
	return &syncFailFile{File: file, fs: f}, nil
}

type syncFailFile struct {
	vfs.File
	fs *syncFailFS
}

func (f *syncFailFile) Sync() error {
	if f.fs.fail.Load() {
		return errors.New("injected fdatasync failure")
	}
	return f.File.Sync()
}

// A failed fdatasync of the raft log fails the write (never acknowledged),
// and the node reports the failure (readyz and status answer it) until it
// is restarted; the restarted node holds every acknowledged write.
func TestFailedLogSyncIsReported(t *testing.T) {
	dir := t.TempDir()
	fsys := &syncFailFS{FS: vfs.OS}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(Options{Dir: dir, NodeID: "n1", Listener: ln, Bootstrap: true, LogFS: fsys,
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLease: 500 * time.Millisecond,
		ApplyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := enqueue(ctx, r, "a"); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Failed != nil {
		t.Fatalf("failed before the fault: %v", st.Failed)
	}
	fsys.fail.Store(true)
	if _, err := r.Propose(ctx, &fsm.Command{Kind: fsm.KindEnqueue, Now: time.Now().UnixNano(),
		Jobs: []fsm.JobSpec{{Queue: "default", Type: "t", Payload: "null", UniqueKey: "b"}}}); err == nil {
		t.Fatal("an enqueue whose raft log fdatasync failed was acknowledged")
	}
	st := r.Status()
	if !errors.Is(st.Failed, replica.ErrFailed) || !errors.Is(st.Failed, raftlog.ErrFailed) {
		t.Fatalf("status after the failure: %v", st.Failed)
	}
	// Raft is stopped before its next election (which would panic on the
	// term it cannot store); the node stays up and refuses writes.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); r.Status().Role != "shutdown"; {
		if time.Now().After(deadline) {
			t.Fatalf("raft not stopped after its log failed: role %s", r.Status().Role)
		}
		<-tick.C
	}
	if _, err := enqueue(ctx, r, "c"); !errors.Is(err, replica.ErrFailed) {
		t.Fatalf("enqueue on a node whose log failed: %v, want ErrFailed", err)
	}
	if st := r.Status(); !errors.Is(st.Failed, raftlog.ErrFailed) {
		t.Fatalf("status once raft stopped: %v", st.Failed)
	}
	r.Close()

	fsys.fail.Store(false)
	r, err = openAlone(t, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Status(); st.Failed != nil {
		t.Fatalf("failed after a restart: %v", st.Failed)
	}
	var keys []string
	if err := r.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	r.Read(func(m *fsm.Machine) {
		for id := uint64(1); id <= 2; id++ {
			if j, ok := m.Get(id); ok {
				keys = append(keys, j.UniqueKey)
			}
		}
	})
	if len(keys) == 0 || keys[0] != "a" {
		t.Fatalf("restarted node holds %v, want the acknowledged job a", keys)
	}
}
