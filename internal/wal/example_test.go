package wal_test

import (
	"fmt"
	"os"

	"github.com/beaver-raft/beaver-raft/internal/wal"
)

func Example() {
	dir, _ := os.MkdirTemp("", "wal-example")
	defer os.RemoveAll(dir)

	l, err := wal.Open(dir, wal.Options{}) // SyncAlways: Append returns after fdatasync
	if err != nil {
		panic(err)
	}
	for _, s := range []string{"enqueue a", "enqueue b", "complete a"} {
		lsn, err := l.Append(1, []byte(s))
		if err != nil {
			panic(err)
		}
		fmt.Println("appended", lsn)
	}
	l.Close()

	l, err = wal.Open(dir, wal.Options{}) // recovers, then replays
	if err != nil {
		panic(err)
	}
	defer l.Close()
	l.Replay(2, func(lsn uint64, typ uint8, data []byte) error {
		fmt.Printf("replay %d: %s\n", lsn, data)
		return nil
	})
	// Output:
	// appended 1
	// appended 2
	// appended 3
	// replay 2: enqueue b
	// replay 3: complete a
}
