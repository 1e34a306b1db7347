package raftlog

import (
	"fmt"

	"github.com/beaver-raft/beaver-raft/internal/wal"
)

// view is the state the records describe: the entries (where each one's
// current record is) and the stable store. Replay at Open and the append
// callbacks build it with the same apply, record by record in log order,
// so what an open store shows is what a restart recovers.
type view struct {
	first uint64    // index of idx[0]; 0 while the log is empty
	idx   []wal.Pos // idx[i]: the record of entry first+i
	kv    map[string][]byte
	cpLSN uint64 // LSN of the newest checkpoint record, 0 if none
}

func (v *view) empty() bool { return len(v.idx) == 0 }

// last is the index of the last entry, 0 if none.
func (v *view) last() uint64 {
	if len(v.idx) == 0 {
		return 0
	}
	return v.first + uint64(len(v.idx)) - 1
}

func (v *view) reset() {
	v.first = 0
	v.idx = v.idx[:0]
}

// apply applies the record at pos. The rules:
//
//   - entry i: the log must be empty (then it starts at i, whatever i is)
//     or end at i-1; the entry is appended.
//   - truncate-tail n: entries after n are deleted (all, if n is below the
//     first).
//   - checkpoint f: entries before f are deleted (all, if f is past the
//     last), and its keys replace the stable store.
//   - set k v: the stable store maps k to v.
//
// The only error is an entry that does not follow the log; the store never
// writes one, so at Open it is damage.
func (v *view) apply(o *op, pos wal.Pos) error {
	switch o.kind {
	case recEntry:
		if !v.empty() && o.index != v.last()+1 {
			return fmt.Errorf("entry %d does not follow the last entry %d", o.index, v.last())
		}
		if v.empty() {
			v.first = o.index
		}
		v.idx = append(v.idx, pos)
	case recTruncTail:
		switch {
		case v.empty() || o.index >= v.last():
		case o.index < v.first:
			v.reset()
		default:
			v.idx = v.idx[:o.index-v.first+1]
		}
	case recCheckpoint:
		v.kv = o.kv
		v.cpLSN = pos.LSN
		switch {
		case v.empty() || o.index <= v.first:
		case o.index > v.last():
			v.reset()
		default:
			n := o.index - v.first
			// A new array once the dropped front is most of the old one,
			// so memory follows the log's length, not its history.
			if rest := uint64(len(v.idx)) - n; uint64(cap(v.idx)) > 4*rest+1024 {
				v.idx = append(make([]wal.Pos, 0, rest+rest/4+64), v.idx[n:]...)
			} else {
				v.idx = v.idx[n:]
			}
			v.first = o.index
		}
	case recSet:
		v.kv[o.key] = o.val
	}
	return nil
}
