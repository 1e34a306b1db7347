package raftrep

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/beaver-raft/beaver-raft/internal/replica/raftrep/raftlog"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// Raft log stores (Options.LogStore, cluster.log_store).
const (
	// LogStoreWAL is raft's log and stable store on Beaver-Raft's WAL
	// (package raftlog): one fdatasync per batch, group commit.
	LogStoreWAL = "wal"
	// LogStoreBolt is raft-boltdb: a bolt B+tree, two fdatasyncs per batch.
	LogStoreBolt = "bolt"
	// DefaultLogStore is the store of a new data directory: the WAL
	// measured faster side by side (docs/cluster.md, Performance).
	DefaultLogStore = LogStoreWAL
)

// Where each store lives in the raft directory.
func boltPath(rdir string) string  { return filepath.Join(rdir, "raft.db") }
func walLogDir(rdir string) string { return filepath.Join(rdir, "log") }

// ErrTwoLogStores: the raft directory holds both stores; which one holds
// the node's log cannot be guessed.
var ErrTwoLogStores = errors.New("raft directory holds two log stores")

// logStoreOnDisk reports which store the raft directory rdir holds:
// LogStoreBolt (raft.db), LogStoreWAL (log/ with a segment), or "" (none).
func logStoreOnDisk(rdir string) (string, error) {
	_, err := os.Stat(boltPath(rdir))
	hasBolt := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	hasWAL := false
	names, err := os.ReadDir(walLogDir(rdir))
	switch {
	case err == nil:
		for _, e := range names {
			if strings.HasSuffix(e.Name(), ".wal") {
				hasWAL = true
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	switch {
	case hasBolt && hasWAL:
		return "", fmt.Errorf("%w: %s (bolt) and %s (wal); move the one that is not this node's log away",
			ErrTwoLogStores, boltPath(rdir), walLogDir(rdir))
	case hasBolt:
		return LogStoreBolt, nil
	case hasWAL:
		return LogStoreWAL, nil
	}
	return "", nil
}

// chooseLogStore decides the store of the raft directory rdir: the one
// it already holds, whatever want says (a node never starts with an empty
// log beside its old one; want applies to new data directories), or want
// (default DefaultLogStore) for a new one.
func chooseLogStore(rdir, want string, log *slog.Logger) (string, error) {
	if want == "" {
		want = DefaultLogStore
	}
	if want != LogStoreWAL && want != LogStoreBolt {
		return "", fmt.Errorf("unknown raft log store %q (want %s or %s)", want, LogStoreWAL, LogStoreBolt)
	}
	have, err := logStoreOnDisk(rdir)
	if err != nil {
		return "", err
	}
	if have != "" && have != want {
		log.Warn("the data directory holds a raft log of the other store; keeping it (cluster.log_store applies to new data directories)",
			"log_store", have, "configured", want, "dir", rdir)
		return have, nil
	}
	return want, nil
}

// logStore is an open raft log and stable store.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// openLogStore opens the store kind in the raft directory rdir; fsys (nil:
// the OS's) is the WAL store's file system.
func openLogStore(kind, rdir string, fsys vfs.FS, log *slog.Logger) (logStore, error) {
	switch kind {
	case LogStoreBolt:
		s, err := raftboltdb.New(raftboltdb.Options{Path: boltPath(rdir)})
		if err != nil {
			return nil, fmt.Errorf("open raft log %s: %w", boltPath(rdir), err)
		}
		return s, nil
	case LogStoreWAL:
		s, err := raftlog.Open(walLogDir(rdir), raftlog.Options{FS: fsys, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open raft log %s: %w", walLogDir(rdir), err)
		}
		if r := s.Recovery(); r.WAL.TornFile != "" {
			log.Warn("raft log: cut a torn tail (an unacknowledged write cut by a crash)", "file", r.WAL.TornFile,
				"offset", r.WAL.TornOffset, "bytes", r.WAL.TornBytes, "reason", r.WAL.TornReason, "broken_copy", r.WAL.BrokenPath)
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown raft log store %q", kind)
}
