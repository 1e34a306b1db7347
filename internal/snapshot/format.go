package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"
)

// Errors returned by this package. Corruption is always reported as a
// *CorruptionError, which wraps ErrCorrupt; match with errors.Is / errors.As,
// never by message.
var (
	// ErrCorrupt is wrapped by every *CorruptionError: a snapshot file whose
	// header, trailer, length or body checksum does not check out. The
	// restorer skips such a file and falls back to the next older one.
	ErrCorrupt = errors.New("snapshot: corrupt")

	// ErrNoSnapshot means there is nothing to restore: the directory holds
	// no file named like a snapshot (RestoreNewest), or the snapshot asked
	// for does not exist (OpenBody, Verify; then it also wraps
	// fs.ErrNotExist). It never stands for "there were snapshots but all
	// are corrupt": that is an error wrapping ErrCorrupt.
	ErrNoSnapshot = errors.New("snapshot: no snapshot")

	// ErrClosed is returned by Sink.Write and Sink.Close once the sink has
	// been closed or canceled.
	ErrClosed = errors.New("snapshot: sink already closed or canceled")
)

// CorruptionError describes a damaged snapshot file. It wraps ErrCorrupt.
type CorruptionError struct {
	File   string // path of the snapshot file
	Offset int64  // byte offset in File where the damage was found
	Reason string // what did not check out
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("snapshot: corrupt file %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

func corruptf(file string, off int64, format string, args ...any) *CorruptionError {
	return &CorruptionError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// The on-disk format; see doc.go and docs/wire-format-snapshot.md. All
// integers are little-endian.
const (
	headerSize    = 40
	trailerSize   = 24
	formatVersion = 1

	headerMagic  = "BVRSNAP1"
	trailerMagic = "BVREND01"

	// Header field offsets.
	hOffMagic     = 0
	hOffVersion   = 8
	hOffReserved1 = 12
	hOffLSN       = 16
	hOffCreatedAt = 24
	hOffReserved2 = 32
	hOffCRC       = 36

	// Trailer field offsets, relative to the start of the trailer.
	tOffBodyLen = 0
	tOffBodyCRC = 8
	tOffCRC     = 12
	tOffMagic   = 16

	// overhead is the size of a snapshot file with an empty body.
	overhead = headerSize + trailerSize

	namePrefix = "snap-"
	nameSuffix = ".snap"
	tmpSuffix  = ".tmp"
	lsnDigits  = 20 // enough for any uint64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded fixed-size header.
type header struct {
	lsn       uint64
	createdAt int64 // unix nanoseconds; 0 means unset
}

func encodeHeader(h header) [headerSize]byte {
	var b [headerSize]byte
	copy(b[hOffMagic:], headerMagic)
	binary.LittleEndian.PutUint32(b[hOffVersion:], formatVersion)
	binary.LittleEndian.PutUint64(b[hOffLSN:], h.lsn)
	binary.LittleEndian.PutUint64(b[hOffCreatedAt:], uint64(h.createdAt))
	binary.LittleEndian.PutUint32(b[hOffCRC:], crc32.Checksum(b[:hOffCRC], castagnoli))
	return b
}

// decodeHeader checks b (exactly headerSize bytes, read from offset 0 of
// file) and decodes it. The magic is checked first (is this a snapshot file
// at all?), then the checksum, then the fields it protects.
func decodeHeader(file string, b []byte) (header, error) {
	if string(b[hOffMagic:hOffMagic+len(headerMagic)]) != headerMagic {
		return header{}, corruptf(file, hOffMagic, "bad header magic %q, want %q", b[hOffMagic:hOffMagic+len(headerMagic)], headerMagic)
	}
	stored := binary.LittleEndian.Uint32(b[hOffCRC:])
	if got := crc32.Checksum(b[:hOffCRC], castagnoli); got != stored {
		return header{}, corruptf(file, hOffCRC, "header checksum mismatch: stored %08x, header hashes to %08x", stored, got)
	}
	if v := binary.LittleEndian.Uint32(b[hOffVersion:]); v != formatVersion {
		return header{}, corruptf(file, hOffVersion, "unsupported format version %d, this build reads version %d", v, formatVersion)
	}
	if r := binary.LittleEndian.Uint32(b[hOffReserved1:]); r != 0 {
		return header{}, corruptf(file, hOffReserved1, "reserved header field is %#x, want 0", r)
	}
	if r := binary.LittleEndian.Uint32(b[hOffReserved2:]); r != 0 {
		return header{}, corruptf(file, hOffReserved2, "reserved header field is %#x, want 0", r)
	}
	return header{
		lsn:       binary.LittleEndian.Uint64(b[hOffLSN:]),
		createdAt: int64(binary.LittleEndian.Uint64(b[hOffCreatedAt:])),
	}, nil
}

// trailer is the decoded fixed-size trailer.
type trailer struct {
	bodyLen uint64
	bodyCRC uint32
}

func encodeTrailer(t trailer) [trailerSize]byte {
	var b [trailerSize]byte
	binary.LittleEndian.PutUint64(b[tOffBodyLen:], t.bodyLen)
	binary.LittleEndian.PutUint32(b[tOffBodyCRC:], t.bodyCRC)
	binary.LittleEndian.PutUint32(b[tOffCRC:], crc32.Checksum(b[:tOffCRC], castagnoli))
	copy(b[tOffMagic:], trailerMagic)
	return b
}

// decodeTrailer checks b (exactly trailerSize bytes read at offset off of a
// file of the given size) and decodes it. A missing magic is the usual sign
// of a truncated or never-finished file.
func decodeTrailer(file string, b []byte, off, size int64) (trailer, error) {
	if string(b[tOffMagic:]) != trailerMagic {
		return trailer{}, corruptf(file, off+tOffMagic, "bad trailer magic %q, want %q (file truncated or never finished?)", b[tOffMagic:], trailerMagic)
	}
	stored := binary.LittleEndian.Uint32(b[tOffCRC:])
	if got := crc32.Checksum(b[:tOffCRC], castagnoli); got != stored {
		return trailer{}, corruptf(file, off+tOffCRC, "trailer checksum mismatch: stored %08x, trailer hashes to %08x", stored, got)
	}
	t := trailer{
		bodyLen: binary.LittleEndian.Uint64(b[tOffBodyLen:]),
		bodyCRC: binary.LittleEndian.Uint32(b[tOffBodyCRC:]),
	}
	if have := uint64(size - overhead); t.bodyLen != have {
		return trailer{}, corruptf(file, off+tOffBodyLen, "trailer says the body is %d bytes, the file holds %d", t.bodyLen, have)
	}
	return t, nil
}

// inspect checks the header and the trailer of the file held by ra, of the
// given size, without reading the body. It is the cheap "complete file"
// check used by pruning, and the first half of OpenBody.
func inspect(file string, ra io.ReaderAt, size int64) (header, trailer, error) {
	if size < headerSize {
		return header{}, trailer{}, corruptf(file, size, "file is %d bytes, shorter than the %d-byte header", size, headerSize)
	}
	var hb [headerSize]byte
	if err := readFullAt(file, ra, hb[:], 0); err != nil {
		return header{}, trailer{}, err
	}
	h, err := decodeHeader(file, hb[:])
	if err != nil {
		return header{}, trailer{}, err
	}
	if size < overhead {
		return header{}, trailer{}, corruptf(file, size, "file is %d bytes, too short for header and trailer (%d bytes): truncated", size, overhead)
	}
	var tb [trailerSize]byte
	off := size - trailerSize
	if err := readFullAt(file, ra, tb[:], off); err != nil {
		return header{}, trailer{}, err
	}
	t, err := decodeTrailer(file, tb[:], off, size)
	if err != nil {
		return header{}, trailer{}, err
	}
	return h, t, nil
}

// readFullAt fills b from ra at off. A short read means the file shrank
// under us and is reported as corruption; other errors are I/O errors.
func readFullAt(file string, ra io.ReaderAt, b []byte, off int64) error {
	n, err := ra.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return corruptf(file, off+int64(n), "unexpected end of file")
	}
	return fmt.Errorf("snapshot: read %s at offset %d: %w", file, off, err)
}

// fileName is the name of the snapshot covering the WAL up to lsn.
func fileName(lsn uint64) string {
	return fmt.Sprintf("%s%0*d%s", namePrefix, lsnDigits, lsn, nameSuffix)
}

// parseFileName reports the LSN of a snapshot file name, and false for any
// other name (temp files, foreign files).
func parseFileName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, nameSuffix)
	if !ok || len(digits) != lsnDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	lsn, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return lsn, true
}

func isTempName(name string) bool {
	return strings.HasPrefix(name, namePrefix) && strings.HasSuffix(name, tmpSuffix)
}

// encodeTime maps createdAt to the header field: unix nanoseconds, 0 for
// the zero Time.
func encodeTime(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	ns := t.UnixNano()
	if !time.Unix(0, ns).Equal(t) {
		return 0, fmt.Errorf("snapshot: createdAt %v is outside the range of int64 unix nanoseconds", t)
	}
	return ns, nil
}

func decodeTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
