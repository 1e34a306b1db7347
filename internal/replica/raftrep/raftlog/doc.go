// Package raftlog is the cluster's raft log and stable store on Beaver-Raft's
// own WAL (internal/wal): a raft.LogStore, raft.StableStore and
// raft.MonotonicLogStore whose every write is one group-committed append
// with one fdatasync per batch.
//
// # Why
//
// raft-boltdb stores a batch of entries in a bolt transaction: B+tree pages,
// then two fdatasyncs (data, then meta page). hashicorp/raft stores every
// batch on the leader and then on a follower before it commits, so a write
// waits for four fdatasyncs in a row. Here a batch is one write and one
// fdatasync, shared by concurrent callers.
//
// # Records
//
// The directory is a WAL (segments, CRC-32C framed records, torn-tail
// repair; see internal/wal). Each record's type byte says what it is; its
// payload starts with a format version (1). docs/wire-format-raftlog.md has
// the byte layouts.
//
//   - entry (1): a raft.Log, every field (Index, Term, Type, Data,
//     Extensions, AppendedAt).
//   - truncate-tail (2): entries after index n are deleted.
//   - checkpoint (3): entries before index f are deleted, and the whole
//     stable store.
//   - set (4): one stable-store key and its value.
//
// The store's state is what applying the records in log order gives (see
// view.apply): an entry must follow the last one unless the log is empty,
// when it may start anywhere (after raft deleted everything to restore a
// snapshot); truncate-tail and checkpoint cut the ends; set and checkpoint
// make the stable store. Open replays every record to rebuild it, and the
// append callbacks apply each record the same way once it is durable, so an
// open store shows exactly what a restart would recover.
//
// # Reads and memory
//
// The store keeps, per entry, where its current record is (LSN and byte
// offset, 16 bytes), not the entry: GetLog reads the record with a
// positioned read of its segment and checks its CRC. Memory is 16 bytes per
// entry in the log, which raft bounds by compacting after each snapshot (the
// trailing logs plus what the next snapshot covers). raftrep wraps the store
// in raft.LogCache, which keeps the newest entries for replication.
//
// # Deleting entries
//
// Nothing is cut out of a file except a torn tail at Open. A follower that
// drops conflicting entries (DeleteRange at the tail) appends a
// truncate-tail record; entries it stores next with the same indexes are new
// records that replace the old ones. Compaction after a snapshot
// (DeleteRange at the head) appends a checkpoint record with the new first
// index and the stable store, waits until it is durable, then deletes the
// oldest segments that hold only records before both that checkpoint and
// the first entry's record (wal.Log.TruncateBefore, one directory fsync per
// segment): replaying what is left gives the same state, because every
// current entry's record is at or after the first one's and the checkpoint
// holds the stable store and the first index. A range in the middle of the
// log is refused (raft never asks for one).
//
// The store is monotonic (raft.MonotonicLogStore): after restoring a
// snapshot raft deletes the whole log instead of leaving a gap. Entries that
// start after a gap all the same (a crash between installing a snapshot and
// deleting the log) make StoreLogs write a checkpoint that deletes the log
// first, so the records still never have a gap; entries at or before the
// last one are refused (ErrNotContiguous), as raft deletes conflicting
// entries before it stores others.
//
// # The stable store
//
// Stable-store keys (raft's current term and vote) are records in the same
// WAL rather than a separate file: a Set is then one more record in the
// next group commit instead of a write, fsync, rename and directory fsync of
// its own, and the term and the entries can never disagree about which came
// first. Compaction never loses them: every checkpoint carries them all, and
// no segment after the newest checkpoint is deleted.
//
// # Durability and failures
//
// StoreLogs, DeleteRange and Set return once their records are fdatasynced
// (wal.SyncAlways). Any failed write (a failed write or fdatasync, ENOSPC
// included) fails the WAL for good (wal.Options.NoSpaceFails) and the store:
// the call returns the error, and every later write returns ErrFailed
// without touching the disk, so raft stops (a leader steps down, a follower
// refuses entries) rather than build on data that may not be on disk. A
// failed fdatasync is never retried. Reads keep working; reopening the store
// (restarting the node) recovers it from what the disk holds.
//
// At Open, a torn tail of the last segment (an unacknowledged write cut by a
// crash) is cut off and reported (internal/wal's rule, with a .broken copy);
// any other damage, including a record that does not decode or an entry that
// does not follow the log, is refused with a *wal.CorruptionError naming the
// segment file, offset and LSN.
package raftlog
