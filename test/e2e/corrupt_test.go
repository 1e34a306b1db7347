package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
)

// TestCorruptWALRefusedVerifiedRepaired: a flipped bit in the middle of the
// WAL makes the server refuse to start naming the file; `wal verify` says
// the same; `repair` cuts the log keeping a .broken copy; the server then
// starts with the records before the damage.
func TestCorruptWALRefusedVerifiedRepaired(t *testing.T) {
	dir := t.TempDir()
	p := startServer(t, dir, "--workers", "1", "--wal-segment-size", "64KiB", "--snapshot-every-records", "1000000")
	c := p.client()
	for i := 0; i < 40; i++ {
		if _, err := c.Enqueue(context.Background(), api.EnqueueRequest{Type: "later", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	p.kill() // no snapshot on the way out: everything is in the WAL

	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	b, _ := os.ReadFile(segs[0])
	b[len(b)/2] ^= 0x08
	os.WriteFile(segs[0], b, 0o600)

	if _, err := tryStart(dir, "--workers", "1"); err == nil || !strings.Contains(err.Error(), filepath.Base(segs[0])) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("start on a damaged WAL: %v", err)
	}
	out, _, err := runCLI(t, "", "wal", "verify", "--data-dir", dir)
	if err == nil || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("wal verify: err %v\n%s", err, out)
	}
	out, stderr, err := runCLI(t, "", "repair", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "removed") || !strings.Contains(out, ".broken") {
		t.Fatalf("repair: %v\n%s\n%s", err, out, stderr)
	}
	p2 := startServer(t, dir, "--workers", "1")
	st, err := p2.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Jobs.Pending == 0 || st.Jobs.Pending >= 40 {
		t.Fatalf("after repair: %d pending jobs, want the ones before the damage", st.Jobs.Pending)
	}
	t.Logf("repair output:\n%s", out)
}
