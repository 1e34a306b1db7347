package local

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/snapshot"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

var corruptFlips = flag.Int("corrupt.flips", 100, "random bit flips in TestBitFlipsAreDetected")

// corruptionFixture builds a data directory with snapshots at LSNs about
// 60 and 110 (and 160 when three is set) and several WAL segments (some
// before, some after the newest snapshot), and returns its digest. The
// state fits in one page, so a delta is nearly as large as a base: with
// ratio 0.5 every snapshot after the first is a delta and a new base (two
// chains are kept), with ratio 10 the snapshots are one base and deltas.
func corruptionFixture(t *testing.T, dir string, ratio float64, three bool) [32]byte {
	t.Helper()
	o := Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40, SegmentSize: 2 << 10, Clock: fixedClock, SnapshotDeltaRatio: ratio}
	r, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1e9)
	n := 150
	if three {
		n = 200
	}
	for i := 0; i < n; i++ {
		now += 1e6
		res, err := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindEnqueue, Now: now,
			Jobs: []fsm.JobSpec{{Type: "t", Payload: fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", i%40))}}})
		if err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
		if i%3 == 0 {
			l, _ := r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindLease, Now: now, Queues: []string{"default"}, Max: 1})
			for _, j := range l.Jobs {
				r.Propose(context.Background(), &fsm.Command{Kind: fsm.KindAck, Now: now, Acks: []fsm.Ack{{ID: j.ID, LeaseID: j.LeaseID, Result: `"ok"`}}})
			}
		}
		if i == 60 || i == 110 || i == 160 {
			if err := r.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := digest(r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBitFlipsAreDetected flips one random bit in a random WAL segment or
// snapshot file (base or delta) of a stopped server's directory and reopens
// it. A flip in the WAL must refuse to start with an error naming the file
// and offset. A flip in a snapshot file must fall back (to the file before
// it in its chain, or to the older chain) and recover the same state; in the
// directory of a single chain, a flip in its base, which has nothing to fall
// back to now that the WAL before it is gone, must refuse naming the file
// and offset. Nothing may ever open with a different state.
func TestBitFlipsAreDetected(t *testing.T) {
	for _, fx := range []struct {
		name          string
		ratio         float64
		three         bool
		fulls, deltas int
	}{
		{"two-chains", 0.5, false, 2, 1},
		{"one-chain", 10, true, 1, 2},
	} {
		t.Run(fx.name, func(t *testing.T) {
			pristine := t.TempDir()
			want := corruptionFixture(t, pristine, fx.ratio, fx.three)
			segs, _ := filepath.Glob(filepath.Join(pristine, "wal", "*.wal"))
			fulls, _ := filepath.Glob(filepath.Join(pristine, "snapshots", "*.snap"))
			deltas, _ := filepath.Glob(filepath.Join(pristine, "snapshots", "*.delta"))
			if len(segs) < 3 || len(fulls) != fx.fulls || len(deltas) != fx.deltas {
				t.Fatalf("fixture has %d segments, snapshots %v and %v", len(segs), fulls, deltas)
			}
			bitFlips(t, pristine, want, segs, fulls, deltas, fx.fulls == 1)
		})
	}
}

func bitFlips(t *testing.T, pristine string, want [32]byte, segs, fulls, deltas []string, baseIsFatal bool) {
	files := append(append(append([]string{}, segs...), fulls...), deltas...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var walRefused, snapFellBack, baseRefused int
	for i := 0; i < *corruptFlips; i++ {
		dir := filepath.Join(t.TempDir(), "data")
		copyTree(t, pristine, dir)
		src := files[rng.IntN(len(files))]
		rel, _ := filepath.Rel(pristine, src)
		path := filepath.Join(dir, rel)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		off := rng.IntN(len(b))
		b[off] ^= 1 << rng.IntN(8)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(Options{Dir: dir, NoSnapshotOnClose: true, Clock: fixedClock})
		isWAL := strings.HasSuffix(path, ".wal")
		fatal := isWAL || (baseIsFatal && strings.HasSuffix(path, ".snap"))
		switch {
		case fatal && err == nil:
			got := digest(r)
			r.Close()
			t.Fatalf("flip %d: bit flip at %s offset %d was not detected (state equal: %v)", i, rel, off, got == want)
		case isWAL:
			var ce *wal.CorruptionError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), filepath.Base(path)) || !strings.Contains(err.Error(), "offset") {
				t.Fatalf("flip %d at %s offset %d: the error must be a corruption error naming the file and offset: %v", i, rel, off, err)
			}
			walRefused++
		case fatal:
			var ce *snapshot.CorruptionError
			if !errors.As(err, &ce) || ce.File != path || !strings.Contains(err.Error(), "missing") {
				t.Fatalf("flip %d at %s offset %d: the error must name the damaged base, its offset and the missing records: %v", i, rel, off, err)
			}
			baseRefused++
		case err != nil:
			t.Fatalf("flip %d at %s offset %d: a damaged snapshot file must fall back: %v", i, rel, off, err)
		default:
			got := digest(r)
			rec := r.Recovery()
			r.Close()
			if got != want {
				t.Fatalf("flip %d at %s offset %d: recovered a different state (recovery %+v)", i, rel, off, rec)
			}
			snapFellBack++
		}
	}
	t.Logf("%d bit flips: %d in WAL segments refused with file and offset named, %d in snapshot files recovered the same state, %d in the only base refused naming it", *corruptFlips, walRefused, snapFellBack, baseRefused)
}
