package wal

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors returned by the log. Match them with errors.Is; a *CorruptionError
// carries the location of the damage and matches ErrCorrupt.
var (
	// ErrCorrupt: the log holds damage other than a torn tail (a CRC or
	// framing error before the end, an LSN gap, a missing segment, a bad
	// segment header). Open refuses to start; Repair can cut the damage off.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: log closed")
	// ErrFailed: a write or an fsync failed earlier. The durable content of
	// the active segment is unknown, so the log accepts no more appends;
	// reopen it to recover. Errors of this kind also wrap the cause.
	ErrFailed = errors.New("wal: log failed")
	// ErrTooLarge: the record's payload exceeds MaxRecordSize.
	ErrTooLarge = errors.New("wal: record too large")
	// ErrNotFound: ReadAt was given a position the log does not hold (its
	// segment was deleted by TruncateBefore, or it is past the last record).
	ErrNotFound = errors.New("wal: no such record")
	// ErrDiskFull: the disk is full. A write that failed with ENOSPC was cut
	// back (nothing of it is acknowledged or left behind), and until free
	// space returns the log accepts only appends of ClassReserve; ClassNormal
	// appends fail at once. Unlike ErrFailed it is not sticky: the log leaves
	// the disk-full state by itself (see the package documentation). Errors
	// of this kind also match syscall.ENOSPC.
	ErrDiskFull = errors.New("wal: disk full")
)

// CorruptionError locates damage in a segment file. It wraps ErrCorrupt.
type CorruptionError struct {
	File   string // path of the segment file
	Offset int64  // byte offset of the bad record or header field
	LSN    uint64 // the LSN expected at Offset
	Reason string // what is wrong, e.g. "CRC mismatch"
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corrupt segment %s at offset %d (expected LSN %d): %s",
		e.File, e.Offset, e.LSN, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// failedError is the sticky error of a failed log: it matches ErrFailed and
// the I/O error that caused it.
type failedError struct {
	op    string
	cause error
}

func (e *failedError) Error() string {
	return fmt.Sprintf("wal: log failed: %s: %v", e.op, e.cause)
}

func (e *failedError) Unwrap() []error { return []error{ErrFailed, e.cause} }

// diskFullError is the error of appends refused or failed in the disk-full
// state: it matches ErrDiskFull, syscall.ENOSPC and the error that made the
// log enter the state.
type diskFullError struct {
	op    string // what failed, e.g. "write /data/wal/00000000000000000001.wal"
	cause error
}

func (e *diskFullError) Error() string {
	return fmt.Sprintf("wal: disk full: %s: %v", e.op, e.cause)
}

func (e *diskFullError) Unwrap() []error {
	if errors.Is(e.cause, syscall.ENOSPC) {
		return []error{ErrDiskFull, e.cause}
	}
	return []error{ErrDiskFull, syscall.ENOSPC, e.cause}
}
