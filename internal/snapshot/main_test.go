package snapshot

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTime is a fixed creation time: tests never read the clock either.
var testTime = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

// testLogger returns a logger writing to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openStore opens a store in a fresh temp directory.
func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(filepath.Join(t.TempDir(), "snapshots"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// publish writes a snapshot with the given body in one Write and closes it.
func publish(t testing.TB, s *Store, lsn uint64, body []byte) Meta {
	t.Helper()
	k, err := s.Create(lsn, testTime)
	if err != nil {
		t.Fatalf("Create(%d): %v", lsn, err)
	}
	if _, err := k.Write(body); err != nil {
		t.Fatalf("Write: %v", err)
	}
	m, err := k.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	return m
}

// readBody opens m and reads the body to its end, returning what was read
// and the first error other than io.EOF (from OpenBody or from reading).
func readBody(s *Store, m Meta) ([]byte, error) {
	rc, err := s.OpenBody(m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// dirNames lists the directory's entries.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// lsns returns the LSNs of metas, in order.
func lsns(metas []Meta) []uint64 {
	out := make([]uint64, 0, len(metas))
	for _, m := range metas {
		out = append(out, m.LSN)
	}
	return out
}

// requireCorrupt fails t unless err is a *CorruptionError naming file.
func requireCorrupt(t testing.TB, err error, file, what string) *CorruptionError {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: got %v, want an error wrapping ErrCorrupt", what, err)
	}
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v is not a *CorruptionError", what, err)
	}
	if ce.File != file {
		t.Fatalf("%s: CorruptionError.File = %q, want %q", what, ce.File, file)
	}
	msg := err.Error()
	if !strings.Contains(msg, file) || !strings.Contains(msg, "offset") {
		t.Fatalf("%s: message %q does not name the file and the offset", what, msg)
	}
	return ce
}
