package raftrep

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica/host"
)

// raftFSM is the state machine behind raft: the same fsm.Machine, hosted
// by the same host as the single-node replica. Raft calls it from its one
// FSM goroutine.
type raftFSM struct {
	h *host.Host
	// restoredIndex tells Restore the raft index of the snapshot it is
	// given (raft does not pass it): the newest snapshot of the store.
	restoredIndex func() uint64
}

var (
	_ raft.BatchingFSM = (*raftFSM)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

// applied is what ApplyBatch returns per entry: the command's result (nil
// for entries that carry no command).
type applied struct {
	res fsm.Result
	err error // the entry did not decode (never expected: raft checks it)
}

func (f *raftFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies a batch of committed entries under one lock.
func (f *raftFSM) ApplyBatch(logs []*raft.Log) []any {
	indexes := make([]uint64, len(logs))
	cmds := make([]*fsm.Command, len(logs))
	out := make([]any, len(logs))
	size := 0
	for i, l := range logs {
		indexes[i] = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := fsm.DecodeCommand(l.Data)
		if err != nil {
			// Every replica fails the same entry the same way.
			out[i] = &applied{err: fmt.Errorf("raft entry %d: %w", l.Index, err)}
			continue
		}
		cmds[i] = &c
		size += len(l.Data)
	}
	res := make([]fsm.Result, len(logs))
	f.h.ApplyBatch(indexes, cmds, res, size)
	for i := range logs {
		if cmds[i] != nil {
			out[i] = &applied{res: res[i]}
		}
	}
	return out
}

// Snapshot captures the state (O(pages), copy on write); Persist streams
// it while commands keep applying.
func (f *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, _ := f.h.Capture()
	return &fsmSnapshot{s: s}, nil
}

// Restore replaces the state with a snapshot's: the same body as our
// snapshot files.
func (f *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m := fsm.New()
	if err := m.Restore(rc); err != nil {
		return fmt.Errorf("restore raft snapshot: %w", err)
	}
	f.h.Reset(m, f.restoredIndex())
	return nil
}

type fsmSnapshot struct{ s *fsm.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
