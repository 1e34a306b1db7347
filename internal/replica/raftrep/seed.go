package raftrep

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"github.com/beaver-raft/beaver-raft/internal/replica/raftrep/raftlog"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// SeedOptions configure Seed.
type SeedOptions struct {
	Dir    string
	NodeID string
	Peers  []Peer // the cluster's voters (this node included); empty: this node alone at Addr
	Addr   string // this node's raft address, when Peers is empty
	// LogStore is the raft log store to create (LogStoreWAL or
	// LogStoreBolt; default DefaultLogStore).
	LogStore string
	Logger   *slog.Logger
}

// SeededDir is where Seed moves the single-node files it seeded from.
const SeededDir = "single-node.seeded"

// seedIndex and seedTerm place the seeded state in raft's history: after
// the bootstrap entry (index 1, term 1) a fresh node would hold, so a
// seeded node is always more up to date than a fresh one and wins its
// votes.
const (
	seedIndex = 2
	seedTerm  = 1
)

// Seed turns a single-node data directory into a cluster node's: it
// recovers the single-node state (snapshot + WAL), writes it as the node's
// first raft snapshot with the cluster's configuration, and moves wal/ and
// snapshots/ into single-node.seeded/ (kept, never deleted). The other
// nodes of the cluster start empty, without --bootstrap, and receive the
// state from the seeded node's snapshot.
func Seed(o SeedOptions) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if IsClusterDir(o.Dir) {
		return fmt.Errorf("%s already holds a cluster node's state", o.Dir)
	}
	if !local.HasState(o.Dir) {
		return fmt.Errorf("%s holds no single-node state to seed from", o.Dir)
	}
	servers := make([]raft.Server, 0, len(o.Peers))
	self := false
	for _, p := range o.Peers {
		servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
		self = self || p.ID == o.NodeID
	}
	if len(servers) == 0 {
		if o.Addr == "" {
			return errors.New("seed: give the cluster's peers or this node's raft address")
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(o.NodeID), Address: raft.ServerAddress(o.Addr), Suffrage: raft.Voter})
		self = true
	}
	if !self {
		return fmt.Errorf("seed: the peers must include this node (%s)", o.NodeID)
	}
	kind := o.LogStore
	if kind == "" {
		kind = DefaultLogStore
	}
	if kind != LogStoreWAL && kind != LogStoreBolt {
		return fmt.Errorf("seed: unknown raft log store %q (want %s or %s)", kind, LogStoreWAL, LogStoreBolt)
	}
	rep, err := local.Open(local.Options{Dir: o.Dir, NoSnapshotOnClose: true, Logger: o.Logger})
	if err != nil {
		return fmt.Errorf("seed: recover the single-node state: %w", err)
	}
	snap := rep.Capture()
	jobs := snap.Jobs()
	dir := raftDir(o.Dir)
	werr := func() error {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, newHCLog(o.Logger))
		if err != nil {
			return err
		}
		_, trans := raft.NewInmemTransport("")
		defer trans.Close()
		sink, err := snaps.Create(1, seedIndex, seedTerm, raft.Configuration{Servers: servers}, 1, trans)
		if err != nil {
			return err
		}
		if _, err := snap.WriteTo(sink); err != nil {
			sink.Cancel()
			return err
		}
		if err := sink.Close(); err != nil {
			return err
		}
		// The log store is made under a temporary name and renamed into
		// place last: a directory with a log store is a cluster node's.
		final := boltPath(dir)
		if kind == LogStoreWAL {
			final = walLogDir(dir)
		}
		tmp := final + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
		var store logStore
		if kind == LogStoreWAL {
			store, err = raftlog.Open(tmp, raftlog.Options{Logger: o.Logger})
		} else {
			store, err = raftboltdb.New(raftboltdb.Options{Path: tmp})
		}
		if err != nil {
			return err
		}
		if err := store.SetUint64([]byte("CurrentTerm"), seedTerm); err != nil {
			store.Close()
			return err
		}
		if err := store.Close(); err != nil {
			return err
		}
		return vfs.OS.Rename(tmp, final)
	}()
	if cerr := rep.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("seed: write the raft snapshot: %w", werr)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	keep := filepath.Join(o.Dir, SeededDir)
	if err := os.MkdirAll(keep, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"wal", "snapshots"} {
		if _, err := os.Stat(filepath.Join(o.Dir, name)); err == nil {
			if err := os.Rename(filepath.Join(o.Dir, name), filepath.Join(keep, name)); err != nil {
				return err
			}
		}
	}
	if err := syncDir(o.Dir); err != nil {
		return err
	}
	o.Logger.Info("seeded the cluster from the single-node state", "jobs", jobs, "raft_index", seedIndex, "kept", keep, "log_store", kind)
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
