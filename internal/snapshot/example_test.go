package snapshot_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/snapshot"
)

func Example() {
	dir, err := os.MkdirTemp("", "snapshots")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, err := snapshot.Open(filepath.Join(dir, "snapshots"), snapshot.Options{Keep: 2})
	if err != nil {
		panic(err)
	}

	// Publish: stream the body into a sink, then Close.
	takeSnapshot := func(lsn uint64, body string) {
		sink, err := store.Create(lsn, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
		if err != nil {
			panic(err)
		}
		defer sink.Cancel() // no-op after a successful Close
		if _, err := io.WriteString(sink, body); err != nil {
			panic(err)
		}
		m, err := sink.Close()
		if err != nil {
			panic(err)
		}
		fmt.Println("published", filepath.Base(m.Path), m.Size, "bytes")
	}
	takeSnapshot(100, "state at 100")
	takeSnapshot(200, "state at 200")
	takeSnapshot(300, "state at 300")

	// Restore: the newest snapshot that checks out.
	m, err := store.RestoreNewest(func(m snapshot.Meta, body io.Reader) error {
		b, err := io.ReadAll(body)
		fmt.Printf("restoring %q\n", b)
		return err
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("restored LSN", m.LSN, "; replay the WAL from", m.LSN+1)

	list, _ := store.List()
	for _, m := range list {
		fmt.Println("kept", m.LSN)
	}
	// Output:
	// published snap-00000000000000000100.snap 76 bytes
	// published snap-00000000000000000200.snap 76 bytes
	// published snap-00000000000000000300.snap 76 bytes
	// restoring "state at 300"
	// restored LSN 300 ; replay the WAL from 301
	// kept 300
	// kept 200
}
