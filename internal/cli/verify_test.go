package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

// verifyFixture makes a stopped server's data directory with 40,000 jobs,
// a base and two deltas.
func verifyFixture(t *testing.T, segmentSize int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	r, err := local.Open(local.Options{Dir: dir, NoSnapshotOnClose: true, SnapshotEvery: 1 << 40, SegmentSize: segmentSize,
		Clock: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]fsm.JobSpec, 1000)
	for i := range specs {
		specs[i] = fsm.JobSpec{Type: "t", Payload: fmt.Sprintf(`{"i":%d}`, i)}
	}
	propose := func(c *fsm.Command) {
		if _, err := r.Propose(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 40; i++ {
		propose(&fsm.Command{Kind: fsm.KindEnqueue, Now: int64(i), Jobs: specs})
	}
	for s := 0; s < 3; s++ {
		if err := r.Snapshot(); err != nil {
			t.Fatal(err)
		}
		propose(&fsm.Command{Kind: fsm.KindEnqueue, Now: int64(100 + s), Jobs: specs[:1]})
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func flip(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x08
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCommand(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		dir := verifyFixture(t, 0)
		out := run(t, "", "verify", "--data-dir", dir).must(t, 0).stdout
		for _, s := range []string{"3 files, 1 complete chains", "base of chain 1", "delta 2 of chain 1", "and 2 deltas", "would open this directory and lose nothing"} {
			if !strings.Contains(out, s) {
				t.Fatalf("output lacks %q:\n%s", s, out)
			}
		}
	})
	t.Run("damaged-delta", func(t *testing.T) {
		dir := verifyFixture(t, 0)
		deltas, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.delta"))
		flip(t, deltas[1])
		out := run(t, "", "verify", "--data-dir", dir).must(t, 1).stdout
		for _, s := range []string{"DAMAGED", "skipping " + deltas[1], "would open this directory and lose nothing"} {
			if !strings.Contains(out, s) {
				t.Fatalf("output lacks %q:\n%s", s, out)
			}
		}
	})
	t.Run("only-base-damaged-wal-whole", func(t *testing.T) {
		// The gap of issue 10: 'wal verify' said "ok: no damage" and the
		// server refused, though the WAL held every record since LSN 1.
		dir := verifyFixture(t, 0)
		base, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.snap"))
		flip(t, base[0])
		out := run(t, "", "wal", "verify", "--data-dir", dir).must(t, 0).stdout
		if !strings.Contains(out, "the WAL only") || !strings.Contains(out, "beaver-raft verify") {
			t.Fatalf("wal verify must say it checked the WAL only:\n%s", out)
		}
		out = run(t, "", "verify", "--data-dir", dir).must(t, 1).stdout
		for _, s := range []string{"DAMAGED", "rebuild the state from the WAL, from LSN 1", "lose nothing"} {
			if !strings.Contains(out, s) {
				t.Fatalf("output lacks %q:\n%s", s, out)
			}
		}
		r, err := local.Open(local.Options{Dir: dir, NoSnapshotOnClose: true})
		if err != nil {
			t.Fatalf("the server refuses what verify said it opens: %v", err)
		}
		r.Close()
	})
	t.Run("refused", func(t *testing.T) {
		dir := verifyFixture(t, 64<<10) // small segments: the WAL before the base is gone
		base, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.snap"))
		flip(t, base[0])
		res := run(t, "", "verify", "--data-dir", dir).must(t, 2)
		if !strings.Contains(res.stdout, "REFUSE") || !strings.Contains(res.stdout, "missing") || !strings.Contains(res.stdout, base[0]+" at offset") {
			t.Fatalf("output must refuse naming the file, offset and missing records:\n%s", res.stdout)
		}
		if _, err := local.Open(local.Options{Dir: dir, NoSnapshotOnClose: true}); err == nil {
			t.Fatal("the server opens what verify said it refuses")
		}
	})
}
