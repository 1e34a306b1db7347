package wal

import (
	"errors"
	"fmt"
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
