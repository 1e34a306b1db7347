package raftlog

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/vfs/vfstest"
)

var (
	pcPoints = flag.Int("raftlog.powercut.points", 1500, "power cuts TestPowerCut makes and recovers from")
	pcSeed   = flag.Uint64("raftlog.powercut.seed", 0, "seed of TestPowerCut (0: from the clock; the seed is logged)")
)

// TestPowerCut drives a store on the fault-injecting in-memory file system
// (vfstest: unsynced writes lost or torn at a sector at a power cut),
// cuts the power at a random operation (inside a batch's write or
// fdatasync, a segment's creation, a compaction's deletes, during recovery
// itself), reopens the store on what the disk kept and checks it against a
// model of the calls that returned nil:
//
//   - the store opens (a torn tail is repaired, never refused);
//   - it holds exactly the acknowledged state (entries with their terms
//     and data, first and last index, stable-store keys), plus, for the
//     one call the cut interrupted, any prefix of its entries (StoreLogs)
//     or its effect or none (DeleteRange, Set);
//   - once a call failed (the cut, or an injected fdatasync failure), every
//     later write fails too.
//
// The workload is raft's: batches of entries, conflicts that delete the
// tail and store new entries of a later term in its place, compaction of
// the head (and sometimes of everything, then the log starting again at a
// later index), entries after a gap (which delete the log before them),
// and term and vote changes.
func TestPowerCut(t *testing.T) {
	points := *pcPoints
	if testing.Short() {
		points = min(points, 200)
	}
	seed := *pcSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -raftlog.powercut.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	st := pcStats{}
	for run := 0; st.cuts < points && !t.Failed(); run++ {
		h := &pcHarness{t: t, rng: rand.New(rand.NewPCG(rng.Uint64(), 3)), fsys: vfstest.New(rng.Uint64()),
			dir: "/data/raft/log", st: &st, run: run, model: newModel()}
		h.o = Options{FS: h.fsys, SegmentSize: int64(1024 << h.rng.IntN(4))}
		for epoch := 0; epoch < 30 && st.cuts < points && !t.Failed(); epoch++ {
			h.epoch = epoch
			h.runEpoch()
		}
	}
	t.Logf("%d runs, %d power cuts (%d during recovery), %d injected fdatasync failures, %d torn tails cut; "+
		"calls: %d acknowledged, %d interrupted (%d of them reached the disk, fully or in part)",
		st.runs, st.cuts, st.openCuts, st.syncFaults, st.torn, st.acked, st.interrupted, st.survived)
}

type pcStats struct {
	runs, cuts, openCuts, syncFaults, torn int
	acked, interrupted, survived           int
}

// model is the store's state as the acknowledged calls made it.
type model struct {
	first uint64 // 0: empty
	ents  []*raft.Log
	kv    map[string]string
	term  uint64
	next  uint64 // the index the next batch starts at when the log is empty
}

func newModel() *model { return &model{kv: map[string]string{}, term: 1, next: 1} }

func (m *model) clone() *model {
	c := *m
	c.ents = slices.Clone(m.ents)
	c.kv = maps.Clone(m.kv)
	return &c
}

func (m *model) last() uint64 {
	if len(m.ents) == 0 {
		return 0
	}
	return m.ents[len(m.ents)-1].Index
}

// pcCall is one store call and its effect on the model.
type pcCall struct {
	name   string
	do     func(s *Store) error
	apply  func(m *model)
	prefix []*raft.Log // StoreLogs: any prefix of these may survive a failure
	gap    bool        // StoreLogs after a gap: the log is deleted first
}

type pcHarness struct {
	t          *testing.T
	rng        *rand.Rand
	fsys       *vfstest.FS
	dir        string
	o          Options
	st         *pcStats
	run, epoch int
	model      *model
	pending    *pcCall // the call a crash interrupted, if any
	salt       int
}

func (h *pcHarness) errorf(format string, args ...any) {
	h.t.Helper()
	h.t.Errorf("run %d epoch %d: %s", h.run, h.epoch, fmt.Sprintf(format, args...))
}

func (h *pcHarness) runEpoch() {
	if h.epoch == 0 {
		h.st.runs++
	}
	// Open, sometimes with the power cut during recovery.
	if h.rng.IntN(8) == 0 {
		h.fsys.PowerCutAfter(1 + h.rng.IntN(6))
		s, err := Open(h.dir, h.o)
		if err == nil {
			s.Close()
		}
		if h.fsys.Down() {
			h.st.cuts++
			h.st.openCuts++
		}
		h.fsys.PowerCutAfter(0)
		h.fsys.Restart()
	}
	s, err := Open(h.dir, h.o)
	if err != nil {
		h.errorf("Open after a cut: %v", err)
		return
	}
	if s.Recovery().WAL.TornFile != "" {
		h.st.torn++
	}
	if !h.verify(s) {
		s.Close()
		return
	}
	// Arm the cut (or, one time in ten, an fdatasync failure first).
	failSync := h.rng.IntN(10) == 0
	if failSync {
		h.fsys.Inject(vfstest.Fault{Op: vfstest.OpSync, After: 1 + h.rng.IntN(20), Lose: h.rng.IntN(2) == 0,
			Match: func(p string) bool { return strings.HasSuffix(p, ".wal") }})
	} else {
		h.fsys.PowerCutAfter(1 + h.rng.IntN(60))
	}
	failed := false
	for range 40 {
		c := h.nextCall()
		err := c.do(s)
		if failed {
			if err == nil {
				h.errorf("%s succeeded after an earlier write failed", c.name)
			}
			continue
		}
		if err != nil {
			if !h.fsys.Down() && !errors.Is(err, ErrFailed) {
				h.errorf("%s: %v", c.name, err)
			}
			if !h.fsys.Down() && failSync {
				h.st.syncFaults++
			}
			h.pending = c
			h.st.interrupted++
			failed = true
			if h.fsys.Down() {
				break
			}
			continue
		}
		h.st.acked++
		c.apply(h.model)
	}
	s.Close()
	h.fsys.ClearFaults()
	h.fsys.PowerCutAfter(0)
	if !h.fsys.Down() {
		h.fsys.PowerCut() // every epoch ends with a power loss
	}
	h.st.cuts++
	h.fsys.Restart()
}

// nextCall draws the next call of raft's workload.
func (h *pcHarness) nextCall() *pcCall {
	m := h.model
	r := h.rng.IntN(100)
	switch {
	case r < 8 && m.first != 0 && len(m.ents) > 1:
		// a conflict: delete a tail, the next entries come in a later term
		from := m.first + 1 + uint64(h.rng.IntN(len(m.ents)-1))
		to := m.last() + uint64(h.rng.IntN(3))
		return &pcCall{name: fmt.Sprintf("DeleteRange(%d, %d) tail", from, to),
			do: func(s *Store) error { return s.DeleteRange(from, to) },
			apply: func(m *model) {
				m.ents = m.ents[:from-m.first]
				m.term++
			}}
	case r < 14 && m.first != 0:
		// compaction: the head, or (one time in five) everything, after
		// which the log starts again further on (a snapshot restored)
		to := m.first + uint64(h.rng.IntN(len(m.ents)))
		all := h.rng.IntN(5) == 0
		if all {
			to = m.last()
		}
		from := m.first - uint64(h.rng.IntN(int(m.first)))
		return &pcCall{name: fmt.Sprintf("DeleteRange(%d, %d) head", from, to),
			do: func(s *Store) error { return s.DeleteRange(from, to) },
			apply: func(m *model) {
				if to >= m.last() {
					m.next = m.last() + 1 + uint64(h.rng.IntN(50))
					m.first, m.ents = 0, nil
					return
				}
				m.ents = m.ents[to+1-m.first:]
				m.first = to + 1
			}}
	case r < 22:
		key := []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"}[h.rng.IntN(3)]
		val := fmt.Sprintf("%s=%d/%d", key, m.term, h.rng.IntN(1000))
		return &pcCall{name: "Set " + key,
			do:    func(s *Store) error { return s.Set([]byte(key), []byte(val)) },
			apply: func(m *model) { m.kv[key] = val }}
	}
	start := m.next
	gap := false
	if m.first != 0 {
		start = m.last() + 1
		if h.rng.IntN(40) == 0 {
			// after a snapshot was installed and the crash came before
			// raft deleted the old log
			start += 1 + uint64(h.rng.IntN(30))
			gap = true
		}
	}
	n := 1 + h.rng.IntN(40)
	if h.rng.IntN(4) == 0 {
		n = 1
	}
	logs := make([]*raft.Log, n)
	for i := range logs {
		h.salt++
		size := h.rng.IntN(200)
		if h.rng.IntN(10) == 0 {
			size = 600 + h.rng.IntN(3000) // across sectors
		}
		data := bytes.Repeat([]byte{byte(h.salt) | 1}, size)
		copy(data, fmt.Sprintf("%d/%d/%d", start+uint64(i), m.term, h.salt))
		logs[i] = &raft.Log{Index: start + uint64(i), Term: m.term, Type: raft.LogCommand, Data: data,
			AppendedAt: time.Unix(int64(h.salt), 0)}
	}
	return &pcCall{name: fmt.Sprintf("StoreLogs(%d..%d)", start, start+uint64(n)-1),
		do: func(s *Store) error { return s.StoreLogs(logs) },
		apply: func(m *model) {
			if gap {
				m.first, m.ents = 0, nil
			}
			if m.first == 0 {
				m.first = start
			}
			m.ents = append(m.ents, logs...)
		},
		prefix: logs, gap: gap}
}

// verify checks the reopened store against the model and the interrupted
// call, and makes the model what the store holds.
func (h *pcHarness) verify(s *Store) bool {
	h.t.Helper()
	cands := []*model{h.model}
	if c := h.pending; c != nil {
		if c.prefix != nil {
			base := h.model
			if c.gap { // the log deleted, then any prefix of the entries
				base = h.model.clone()
				base.first, base.ents = 0, nil
				cands = append(cands, base)
			}
			for k := 1; k <= len(c.prefix); k++ {
				m := base.clone()
				if m.first == 0 {
					m.first = c.prefix[0].Index
				}
				m.ents = append(m.ents, c.prefix[:k]...)
				cands = append(cands, m)
			}
		} else {
			m := h.model.clone()
			c.apply(m)
			cands = append(cands, m)
		}
	}
	var diffs []string
	for i, m := range cands {
		d := h.diff(s, m)
		if d == "" {
			if i > 0 {
				h.st.survived++
			}
			// the store's state is now the model; the log starts again
			// where the chosen candidate says
			next := h.model.next
			h.model = m
			if i > 0 && h.pending.prefix == nil {
				h.model.next = max(next, m.next)
			}
			h.pending = nil
			return true
		}
		diffs = append(diffs, d)
	}
	call := "none"
	if h.pending != nil {
		call = h.pending.name
	}
	h.errorf("recovered store matches no allowed state (interrupted call: %s):\n%s", call, strings.Join(diffs, "\n"))
	return false
}

// diff describes how s differs from m ("" if it does not).
func (h *pcHarness) diff(s *Store, m *model) string {
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != m.first || last != m.last() {
		return fmt.Sprintf("  entries %d..%d, model %d..%d", first, last, m.first, m.last())
	}
	for _, w := range m.ents {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			return fmt.Sprintf("  GetLog(%d): %v", w.Index, err)
		}
		if !sameLog(&got, w) {
			return fmt.Sprintf("  entry %d: term %d, model term %d (data equal: %v)", w.Index, got.Term, w.Term, bytes.Equal(got.Data, w.Data))
		}
	}
	for _, k := range []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"} {
		got, err := s.Get([]byte(k))
		want, ok := m.kv[k]
		switch {
		case !ok && err == nil:
			return fmt.Sprintf("  key %s = %q, model: not set", k, got)
		case ok && (err != nil || string(got) != want):
			return fmt.Sprintf("  key %s = %q (%v), model %q", k, got, err, want)
		}
	}
	return ""
}
