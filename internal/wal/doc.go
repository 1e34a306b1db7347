// Package wal is Beaver-Raft's write-ahead log: a segmented, bytes-only
// record log with group commit, torn-tail recovery and truncation.
//
// The log knows nothing of jobs. A record is an opaque payload plus a type
// byte, and gets a log sequence number (LSN): 1 for the first record of a new
// log, then +1 per record, across segments, for ever (truncation removes old
// records but never reuses an LSN).
//
// # Usage
//
//	l, err := wal.Open(dir, wal.Options{})        // recovers, or fails with *CorruptionError
//	err = l.Replay(snapshotLSN+1, apply)           // rebuild state
//	lsn, err := l.Append(typ, data)                // returns once durable
//	l.AppendAsync(typ, data, func(lsn uint64, err error) { ... })
//	l.AppendAsyncClass(typ, data, wal.ClassReserve, done) // may use the reserve when the disk is full
//	err = l.TruncateBefore(snapshotLSN + 1)        // after a snapshot covers the old records
//	err = l.Close()
//
// Random reads, for a caller that indexes its records (the raft log store,
// internal/replica/raftrep/raftlog): AppendAsyncPos and ReplayPos report
// each record's Pos (LSN and byte offset in its segment), and ReadAt reads a
// record back with a positioned read, checking its CRC and LSN again.
//
//	l.AppendAsyncPos(typ, data, wal.ClassNormal, func(pos wal.Pos, err error) { ... })
//	typ, data, err := l.ReadAt(pos, buf)
//
// Offline: Verify checks a directory with Open's rules and changes nothing;
// Repair cuts the log at its first bad record, keeping .broken copies.
//
// # Disk format
//
// A log is a directory (mode 0700) of segment files (mode 0600) named
// %020d.wal after the LSN of their first record, e.g.
// 00000000000000000001.wal. Only the newest segment, the active one, is
// written; the writer rotates to a new segment once a batch leaves the
// active one larger than Options.SegmentSize. Other files in the directory
// (the .broken copies, the reserve file described under Disk full) are
// ignored. All integers are little-endian.
//
// Segment header, 16 bytes:
//
//	 0                   8                  16
//	+-------------------+-------------------+
//	| magic "BVRWAL01"  | u64 first LSN     |
//	+-------------------+-------------------+
//
// Records follow the header back to back. Every record starts at an offset
// that is a multiple of 8, so its two length words (8 bytes) never straddle
// a 512-byte sector and cannot be torn by a crash:
//
//	 0        4        8                16     17       20       24
//	+--------+--------+----------------+------+--------+--------+--------------+---------+
//	| u32 n  | u32 ^n | u64 LSN        | type | 0 0 0  | CRC32C | payload (n)  | 0-pad   |
//	+--------+--------+----------------+------+--------+--------+--------------+---------+
//
// n is the payload length (at most MaxRecordSize, 64 MiB) and ^n its bitwise
// complement: a flipped bit in the length is detected as such instead of
// being read as a record running past the end of the file. The CRC is
// CRC-32C (Castagnoli) over bytes 8..20 (LSN, type, reserved) followed by the
// payload. The padding brings the record to a multiple of 8 bytes: a record
// takes 24 + n rounded up to 8 bytes. The reserved and padding bytes are
// zero, and are checked.
//
// docs/wire-format-wal.md has the same with worked examples.
//
// # Durability and crash assumptions
//
// Durability rests on these assumptions about the storage stack:
//
//   - fdatasync (vfs.File.Sync) returning nil means the data written before
//     it, and the file size, survive a power loss.
//   - fsync of the directory (vfs.FS.SyncDir) makes creates, renames and
//     deletes durable. Every create and delete in the log directory is
//     followed by one.
//   - Data written but not yet synced may be lost, partly or wholly, at
//     sector (512-byte) granularity; a lost sector reads back as zeros or is
//     cut off by a shorter file, never as other garbage. (Filesystems that
//     can expose stale blocks after a crash, such as ext4 data=writeback,
//     break this; the consequence is a refused start, never silent loss.)
//   - A failed fdatasync leaves the file's durable content unknown. The log
//     never retries one: it fails the batch and every later append
//     (ErrFailed) until it is reopened and recovered. This holds whatever
//     the error, ENOSPC included, and for any other failed write,
//     ftruncate or close of a segment, with one exception: a write that
//     fails with ENOSPC (see Disk full).
//     A Sync waiting when the log fails is answered with the failure.
//
// Sync modes and what a crash can lose of the acknowledged records:
//
//   - SyncAlways (default): nothing. A callback runs after the fdatasync of
//     its batch returned.
//   - SyncInterval: a process crash loses nothing; a power loss loses up to
//     Options.SyncInterval (plus one fdatasync) of acknowledged records.
//   - SyncNever: a process crash loses nothing; a power loss loses whatever
//     the kernel had not written back from the active segment, up to the
//     whole segment. Segments are synced when rotated and on Close.
//
// In every mode a segment is synced before the next one is created, so only
// the last segment can ever have a torn tail.
//
// # Group commit
//
// AppendAsync assigns the LSN and copies the encoded record into the
// current batch under a mutex, and returns. One writer goroutine takes one
// batch at a time (at most 4 MiB or 4096 records), fills in the CRCs, issues
// one write and, with SyncAlways, one fdatasync, then hands the batch to a
// completion goroutine, which calls the callbacks in LSN order while the
// writer goes on with the next batch. Records appended during an fdatasync
// accumulate into the next batch: that is the group commit. Close drains the
// queue, syncs, and stops both goroutines. Appenders block (backpressure)
// while more than Options.MaxQueued bytes wait for the writer.
//
// # Disk full
//
// A write of a batch that fails with ENOSPC (and only with ENOSPC) is not a
// failure of the log: nothing of the batch was acknowledged, and the
// partial write is our own. The writer cuts the active segment back to its
// size before the batch (ftruncate, then fdatasync, so recovery never sees
// the partial write as a torn tail), fails the batch's appends with
// ErrDiskFull (which also matches syscall.ENOSPC) and enters the disk-full
// state. If the ftruncate or its fdatasync fails, the log fails instead
// (ErrFailed), as above. Records queued behind the batch are renumbered so
// that the batch's LSNs are reused and the log has no gap. Creating the
// next segment at rotation can fail with ENOSPC too (creating the file,
// writing its header, its fdatasync or the directory's): the half-made
// file is removed (then the directory is fsynced), the log enters the
// disk-full state and goes on writing to the current segment, which may
// then grow past SegmentSize; it rotates again once the state ends.
//
// Options.ReserveBytes (0: none) makes the log keep a reserve file,
// <dir>/reserve, of that many bytes, allocated with fallocate where the
// file system supports it (zeros are written otherwise) and fsynced at
// Open. Entering the disk-full state deletes it (and fsyncs the directory)
// so that the space it held can be used. While disk-full:
//
//   - ClassNormal appends (AppendAsync, Append) fail at once with
//     ErrDiskFull and do not touch the disk; those already queued when the
//     state began fail the same way.
//   - ClassReserve appends (AppendAsyncClass, AppendClass) are written as
//     usual, into the freed reserve. Once that is used up they fail with
//     ErrDiskFull too, each such write being cut back as above.
//
// Every Options.FreeSpaceInterval (1 s) the writer reads the free space of
// the file system (vfs.StatFS, statfs on Linux). Once at least
// 2 × ReserveBytes + SegmentSize bytes are free, it re-creates the reserve
// file and leaves the state: ClassNormal appends succeed again within about
// one interval. Where free space cannot be read, re-creating the reserve is
// the test; with no reserve either, the log leaves the state at the next
// check and a new ENOSPC brings it back. Stats and DiskFull report the
// state; entering it logs a warning and leaving it logs at info level.
//
// If Open cannot create the reserve file for lack of space, the log opens
// in the disk-full state.
//
// With Options.NoSpaceFails there is no disk-full state: ENOSPC fails the
// log like any other I/O error, so no append can succeed after an earlier
// one failed and the log on disk is always a prefix of the appends (what
// the raft log store needs).
//
// # Recovery
//
// Open reads every segment in order and checks: the header magic, that the
// header's first LSN matches the file name, that every record's framing, CRC,
// reserved and padding bytes are right, and that LSNs are continuous within
// and across segments. It is conservative: only a torn tail is ever cut off.
//
// A bad record in the last segment is a torn tail when
//
//   - it runs past the end of the file (short header or body), or
//   - its length words are both zero (the rest of the file is then usually
//     zeros), or
//   - its CRC fails and at least one 512-byte sector piece of its header and
//     payload (split at file offsets that are multiples of 512) is all
//     zeros, as etcd's isTornEntry does; the padding does not count, it is
//     zero by construction;
//
// and in every case only if no intact record with an LSN at or above the
// expected one follows it anywhere in the file (scanned at 8-byte steps).
// A last segment shorter than its header, or all zeros, is a torn segment
// creation. For a torn tail Open copies the whole segment to
// <segment>.broken (or .broken.1, .broken.2, ... if taken; not for an empty
// file), fsyncs the copy and the directory, truncates the segment at the
// torn record's start (or rewrites its header), fsyncs it, logs a warning
// and reports the cut in Log.Recovery.
//
// Anything else is corruption and Open returns a *CorruptionError (matching
// ErrCorrupt) naming the file, the offset and the expected LSN: a CRC
// mismatch without a zeroed sector, disagreeing length words, an LSN gap or
// repeat, a missing or misnamed segment, a bad header, any bad record in a
// segment that is not the last, or an intact record after a torn-looking
// one. The operator inspects it (Verify) and may run Repair, which cuts the
// log at the first bad record and deletes later segments, keeping .broken
// copies and reporting the LSN and byte ranges removed.
//
// One consequence: in SyncInterval and SyncNever modes, and for a batch that
// was being synced when the power went, the kernel may have written later
// sectors of the unsynced tail but not earlier ones. Recovery then sees an
// intact record after a damaged one and refuses to start rather than guess;
// Repair resolves it. With SyncAlways every record after the cut was
// unacknowledged.
package wal
