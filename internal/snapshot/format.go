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
	headerSize  = 40
	trailerSize = 24
	linkSize    = 32

	// Version 1 knows full snapshots only; version 2 adds the kind field
	// and delta files with their link block. Full snapshots are still
	// written as version 1 (the same bytes as before deltas existed), deltas
	// as version 2; both are read.
	versionFull  = 1
	versionDelta = 2

	headerMagic  = "BVRSNAP1"
	trailerMagic = "BVREND01"

	// Header field offsets.
	hOffMagic   = 0
	hOffVersion = 8
	hOffKind    = 12 // version 2; reserved (0) in version 1
	hOffLSN     = 16
	hOffCreated = 24
	hOffLinkLen = 32 // version 2; reserved (0) in version 1
	hOffCRC     = 36

	// Link block field offsets, relative to its start (headerSize).
	lOffParentLSN = 0
	lOffParentCRC = 8
	lOffReserved  = 12
	lOffBaseLSN   = 16
	lOffBaseCRC   = 24
	lOffCRC       = 28

	// Trailer field offsets, relative to the start of the trailer.
	tOffBodyLen = 0
	tOffBodyCRC = 8
	tOffCRC     = 12
	tOffMagic   = 16

	// overhead is the size of a full snapshot file with an empty body.
	overhead = headerSize + trailerSize

	namePrefix  = "snap-"
	nameSuffix  = ".snap"
	deltaSuffix = ".delta"
	tmpSuffix   = ".tmp"
	lsnDigits   = 20 // enough for any uint64
)

// Kind tells a full snapshot from a delta.
type Kind uint32

const (
	// Full is a whole state: the base of a chain.
	Full Kind = 0
	// Delta holds what changed since its parent (a full snapshot or an
	// earlier delta of the same chain).
	Delta Kind = 1
)

func (k Kind) String() string {
	switch k {
	case Full:
		return "full"
	case Delta:
		return "delta"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Link names a snapshot file's body: its LSN and its body CRC (from its
// trailer). A delta names its parent and its chain's base by Link.
type Link struct {
	LSN     uint64
	BodyCRC uint32
}

func (l Link) String() string { return fmt.Sprintf("LSN %d (body CRC %08x)", l.LSN, l.BodyCRC) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded fixed-size header and, for a delta, its link block.
type header struct {
	lsn       uint64
	createdAt int64 // unix nanoseconds; 0 means unset
	kind      Kind
	parent    Link // deltas only
	base      Link // deltas only
}

// bodyStart is the offset of the body: after the header and the link block.
func (h header) bodyStart() int64 {
	if h.kind == Delta {
		return headerSize + linkSize
	}
	return headerSize
}

// encodeHeader encodes h: a full snapshot as version 1 (header only), a
// delta as version 2 (header and link block).
func encodeHeader(h header) []byte {
	b := make([]byte, headerSize, h.bodyStart())
	copy(b[hOffMagic:], headerMagic)
	binary.LittleEndian.PutUint64(b[hOffLSN:], h.lsn)
	binary.LittleEndian.PutUint64(b[hOffCreated:], uint64(h.createdAt))
	if h.kind == Full {
		binary.LittleEndian.PutUint32(b[hOffVersion:], versionFull)
		binary.LittleEndian.PutUint32(b[hOffCRC:], crc32.Checksum(b[:hOffCRC], castagnoli))
		return b
	}
	binary.LittleEndian.PutUint32(b[hOffVersion:], versionDelta)
	binary.LittleEndian.PutUint32(b[hOffKind:], uint32(h.kind))
	binary.LittleEndian.PutUint32(b[hOffLinkLen:], linkSize)
	binary.LittleEndian.PutUint32(b[hOffCRC:], crc32.Checksum(b[:hOffCRC], castagnoli))
	var l [linkSize]byte
	binary.LittleEndian.PutUint64(l[lOffParentLSN:], h.parent.LSN)
	binary.LittleEndian.PutUint32(l[lOffParentCRC:], h.parent.BodyCRC)
	binary.LittleEndian.PutUint64(l[lOffBaseLSN:], h.base.LSN)
	binary.LittleEndian.PutUint32(l[lOffBaseCRC:], h.base.BodyCRC)
	binary.LittleEndian.PutUint32(l[lOffCRC:], crc32.Checksum(l[:lOffCRC], castagnoli))
	return append(b, l[:]...)
}

// decodeHeader checks b (exactly headerSize bytes, read from offset 0 of
// file) and decodes it; a delta's link block is read by decodeLink. The
// magic is checked first (is this a snapshot file at all?), then the
// checksum, then the fields it protects.
func decodeHeader(file string, b []byte) (header, error) {
	if string(b[hOffMagic:hOffMagic+len(headerMagic)]) != headerMagic {
		return header{}, corruptf(file, hOffMagic, "bad header magic %q, want %q", b[hOffMagic:hOffMagic+len(headerMagic)], headerMagic)
	}
	stored := binary.LittleEndian.Uint32(b[hOffCRC:])
	if got := crc32.Checksum(b[:hOffCRC], castagnoli); got != stored {
		return header{}, corruptf(file, hOffCRC, "header checksum mismatch: stored %08x, header hashes to %08x", stored, got)
	}
	h := header{
		lsn:       binary.LittleEndian.Uint64(b[hOffLSN:]),
		createdAt: int64(binary.LittleEndian.Uint64(b[hOffCreated:])),
	}
	kind := binary.LittleEndian.Uint32(b[hOffKind:])
	linkLen := binary.LittleEndian.Uint32(b[hOffLinkLen:])
	switch v := binary.LittleEndian.Uint32(b[hOffVersion:]); v {
	case versionFull:
		if kind != 0 {
			return header{}, corruptf(file, hOffKind, "reserved header field is %#x, want 0", kind)
		}
		if linkLen != 0 {
			return header{}, corruptf(file, hOffLinkLen, "reserved header field is %#x, want 0", linkLen)
		}
	case versionDelta:
		switch Kind(kind) {
		case Full:
			if linkLen != 0 {
				return header{}, corruptf(file, hOffLinkLen, "a full snapshot has a link block of %d bytes, want 0", linkLen)
			}
		case Delta:
			if linkLen != linkSize {
				return header{}, corruptf(file, hOffLinkLen, "a delta has a link block of %d bytes, want %d", linkLen, linkSize)
			}
		default:
			return header{}, corruptf(file, hOffKind, "unknown snapshot kind %d", kind)
		}
		h.kind = Kind(kind)
	default:
		return header{}, corruptf(file, hOffVersion, "unsupported format version %d, this build reads versions %d and %d", v, versionFull, versionDelta)
	}
	return h, nil
}

// decodeLink checks and decodes a delta's link block b (linkSize bytes read
// at offset headerSize) into h.
func decodeLink(file string, b []byte, h *header) error {
	stored := binary.LittleEndian.Uint32(b[lOffCRC:])
	if got := crc32.Checksum(b[:lOffCRC], castagnoli); got != stored {
		return corruptf(file, headerSize+lOffCRC, "link block checksum mismatch: stored %08x, block hashes to %08x", stored, got)
	}
	if r := binary.LittleEndian.Uint32(b[lOffReserved:]); r != 0 {
		return corruptf(file, headerSize+lOffReserved, "reserved link field is %#x, want 0", r)
	}
	h.parent = Link{LSN: binary.LittleEndian.Uint64(b[lOffParentLSN:]), BodyCRC: binary.LittleEndian.Uint32(b[lOffParentCRC:])}
	h.base = Link{LSN: binary.LittleEndian.Uint64(b[lOffBaseLSN:]), BodyCRC: binary.LittleEndian.Uint32(b[lOffBaseCRC:])}
	switch {
	case h.parent.LSN >= h.lsn:
		return corruptf(file, headerSize+lOffParentLSN, "delta at LSN %d names a parent at LSN %d, not older", h.lsn, h.parent.LSN)
	case h.base.LSN > h.parent.LSN:
		return corruptf(file, headerSize+lOffBaseLSN, "delta's base at LSN %d is newer than its parent at LSN %d", h.base.LSN, h.parent.LSN)
	case h.base.LSN == h.parent.LSN && h.base != h.parent:
		return corruptf(file, headerSize+lOffBaseCRC, "delta's parent and base are both at LSN %d but differ", h.base.LSN)
	}
	return nil
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
func decodeTrailer(file string, b []byte, off, size, bodyStart int64) (trailer, error) {
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
	if have := uint64(size - bodyStart - trailerSize); t.bodyLen != have {
		return trailer{}, corruptf(file, off+tOffBodyLen, "trailer says the body is %d bytes, the file holds %d", t.bodyLen, have)
	}
	return t, nil
}

// inspect checks the header, a delta's link block and the trailer of the
// file held by ra, of the given size, without reading the body. It is the
// cheap "complete file" check used by listing and pruning, and the first
// half of OpenBody.
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
	need := h.bodyStart() + trailerSize
	if h.kind == Delta {
		if size < headerSize+linkSize {
			return header{}, trailer{}, corruptf(file, size, "file is %d bytes, too short for header and link block (%d bytes): truncated", size, headerSize+linkSize)
		}
		var lb [linkSize]byte
		if err := readFullAt(file, ra, lb[:], headerSize); err != nil {
			return header{}, trailer{}, err
		}
		if err := decodeLink(file, lb[:], &h); err != nil {
			return header{}, trailer{}, err
		}
	}
	if size < need {
		return header{}, trailer{}, corruptf(file, size, "file is %d bytes, too short for its header and trailer (%d bytes): truncated", size, need)
	}
	var tb [trailerSize]byte
	off := size - trailerSize
	if err := readFullAt(file, ra, tb[:], off); err != nil {
		return header{}, trailer{}, err
	}
	t, err := decodeTrailer(file, tb[:], off, size, h.bodyStart())
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

// fileName is the name of the snapshot of the given kind covering the WAL
// up to lsn.
func fileName(lsn uint64, kind Kind) string {
	suffix := nameSuffix
	if kind == Delta {
		suffix = deltaSuffix
	}
	return fmt.Sprintf("%s%0*d%s", namePrefix, lsnDigits, lsn, suffix)
}

// parseFileName reports the LSN and kind of a snapshot file name, and false
// for any other name (temp files, foreign files).
func parseFileName(name string) (uint64, Kind, bool) {
	digits, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, 0, false
	}
	kind := Full
	if d, ok := strings.CutSuffix(digits, nameSuffix); ok {
		digits = d
	} else if d, ok := strings.CutSuffix(digits, deltaSuffix); ok {
		digits, kind = d, Delta
	} else {
		return 0, 0, false
	}
	if len(digits) != lsnDigits {
		return 0, 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, 0, false
		}
	}
	lsn, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return lsn, kind, true
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
