// Package snapshot stores snapshot bodies as files, atomically, and gives
// them back for restore, detecting any corruption.
//
// The body is produced by the state machine and is opaque here: bytes
// streamed to a Sink (never held whole in memory; bodies reach hundreds of
// MB). This package frames it with a header that says which WAL record the
// snapshot covers and a trailer that carries its length and CRC-32C.
//
// # Files
//
// A Store owns one directory (data/snapshots, mode 0700). A snapshot that
// includes every WAL record up to and including LSN n is the file
//
//	snap-<n as 20 decimal digits>.snap      e.g. snap-00000000000000001234.snap
//
// of mode 0600, and a delta snapshot (see Deltas and chains) is
//
//	snap-<n as 20 decimal digits>.delta     e.g. snap-00000000000000001300.delta
//
// While being written either is a temp file snap-<n>.snap.<seq>.tmp (or
// snap-<n>.delta.<seq>.tmp) in the same directory. Other names are never
// listed, read or deleted.
//
// # Deltas and chains
//
// A delta holds only what changed since its parent, a full snapshot or an
// earlier delta; its body is the state machine's delta encoding, opaque
// here like a full body. A version-2 header (kind delta) is followed by a
// 32-byte link block naming the parent and the chain's full base, each by
// LSN and body CRC, so chains are assembled (Catalog) from headers and
// trailers alone: base, then each delta whose parent is the previous file.
// Pruning keeps and deletes whole chains. docs/wire-format-snapshot.md has
// the byte layout.
//
// # Format (version 1: full snapshots; version 2 adds deltas)
//
// All integers are little-endian. CRC-32C is the Castagnoli CRC of
// hash/crc32 (hardware-accelerated on amd64 and arm64).
//
//	offset  size  field
//	------  ----  -----------------------------------------------------------
//	     0    40  header
//	    40     N  body: opaque bytes, N = file size - 64
//	40 + N    24  trailer
//
// Header, 40 bytes:
//
//	 0                   8         12        16                  24                  32        36        40
//	 +-------------------+---------+---------+-------------------+-------------------+---------+---------+
//	 | magic "BVRSNAP1"  | version | reserved| LSN               | createdAt         | reserved| CRC     |
//	 | 8 bytes ASCII     | u32 = 1 | u32 = 0 | u64               | i64 unix nanos    | u32 = 0 | u32     |
//	 +-------------------+---------+---------+-------------------+-------------------+---------+---------+
//
//	CRC       CRC-32C of header bytes [0, 36).
//	LSN       the last WAL record the snapshot includes; equals the LSN in the file name.
//	createdAt the time the creator passed to Create, in unix nanoseconds; 0 for the zero time.
//	reserved  zero in version 1; a reader of version 1 rejects non-zero values.
//	          Version 2 gives offset 12 the kind (0 full, 1 delta) and offset 32
//	          the length of the link block after the header (0, or 32 for a
//	          delta). Full snapshots are still written as version 1.
//
// Every version keeps the magic, the version field at offset 8, the header
// size and the CRC at offset 36; a later version may give meaning to the
// reserved fields or change body and trailer.
//
// Trailer, 24 bytes, at offset size-24:
//
//	 0                   8         12        16                  24
//	 +-------------------+---------+---------+-------------------+
//	 | body length N     | body CRC| CRC     | magic "BVREND01"  |
//	 | u64               | u32     | u32     | 8 bytes ASCII     |
//	 +-------------------+---------+---------+-------------------+
//
//	body CRC  CRC-32C of the N body bytes.
//	CRC       CRC-32C of trailer bytes [0, 12).
//	N         must equal file size - 64.
//
// The trailer's magic comes last, so a file cut short anywhere lacks it.
// The checksums detect every single-bit error (and every burst of up to 32
// bits) in header, body and trailer; the size check catches truncation and
// appended garbage.
//
// # Writing
//
// Store.Create opens the temp file (O_EXCL) and writes the header. The
// caller streams the body into the Sink, which buffers it in 1 MiB chunks
// and hashes each chunk on its way to the file. Sink.Close then:
//
//  1. flushes the body and writes the trailer;
//  2. fsyncs the temp file and closes it;
//  3. renames it to its final name;
//  4. fsyncs the directory; only now does Close return the Meta, and only
//     now may the caller truncate the WAL up to the snapshot's LSN;
//  5. prunes (below), fsyncing the directory after deleting files.
//
// If a write or step 1-4 fails, Close returns the error and deletes the temp
// file (after a failed directory fsync, also the renamed file): the
// snapshot is not published and nothing is left to restore from it. A
// failed fsync is never retried. Sink.Cancel deletes the temp file.
//
// # Crash safety
//
// Assumptions: rename within a directory is atomic; after fsync of a file
// returns, its content and size survive power loss; after fsync of a
// directory returns, its entries do. Under them:
//
//   - A crash before step 4 returns leaves at most a temp file, which
//     Open deletes, or (rename durable but not yet acknowledged) a
//     complete, valid final file, which is safe to restore from.
//   - The temp file's creation is not made durable (no directory fsync
//     before writing): losing it in a crash loses nothing that was
//     promised.
//   - A final file is only ever created by rename of a fsynced file, so a
//     snapshot file that does not check out is damage, not a crash
//     artifact, and is reported as a *CorruptionError.
//
// # Reading and restore
//
// List returns every file named like a snapshot, newest (highest LSN)
// first, including damaged ones, which it cannot tell apart without reading
// them: a damaged newest snapshot must be seen and reported, not skipped as
// though it did not exist. OpenBody checks header and trailer at once and
// returns a reader that checks length and body checksum as the body
// streams: the Read that returns the last body byte (and every later Read)
// returns io.EOF, or a *CorruptionError. Verify does a full check without a
// consumer.
//
// The restorer (single-node startup) does, or calls RestoreNewest which
// does exactly this:
//
//	for each m in List() (newest first):
//	    body, err := OpenBody(m)
//	    if errors.Is(err, ErrCorrupt) { log; continue }   // header or trailer bad
//	    err = fsm.Restore(body)                           // replaces the whole state
//	    then read body to io.EOF                          // the checksum verdict
//	    if errors.Is(err, ErrCorrupt) { log; continue }   // body bad: fall back
//	    replay the WAL from m.LSN+1; done
//	no snapshot files at all  → start empty (ErrNoSnapshot)
//	all of them corrupt       → refuse to start (error wrapping ErrCorrupt)
//
// Falling back to an older snapshot only recovers everything if the WAL
// still holds the records after that snapshot's LSN, so the WAL should be
// truncated no further than the LSN of the oldest snapshot kept (the last
// entry of List after Close has pruned), not of the newest.
//
// # Pruning
//
// After each publish of a full snapshot (and on Store.Prune; a delta
// changes no chain but its own) the store keeps the newest
// Options.Keep complete chains (default 2) and the chain of the file just
// published, and deletes the files of the other chains, newest delta
// first. "Complete" means header, link block and trailer check out and
// agree with the file size; the body is not re-read. A damaged file, or a
// delta that continues no chain, is deleted once a kept chain's tip is newer
// (it can never be the restore candidate again); one newer than every kept
// tip is kept, so the restorer reports it. Without deltas this is exactly
// the rule for single snapshots: each is a chain of one.
package snapshot
