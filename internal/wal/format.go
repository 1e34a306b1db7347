package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Format constants; doc.go and docs/wire-format-wal.md describe the layout.
const (
	// MaxRecordSize is the largest payload a record may carry.
	MaxRecordSize = 64 << 20

	segmentMagic      = "BVRWAL01"
	segmentHeaderSize = 16 // magic + u64 first LSN
	recordHeaderSize  = 24 // u32 n, u32 ^n, u64 LSN, u8 type, 3 zero bytes, u32 CRC
	recordAlign       = 8
	sectorSize        = 512 // torn-write detection granularity
	segmentSuffix     = ".wal"
	segmentNameDigits = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSize is the size on disk of a record with an n-byte payload.
func recordSize(n int) int {
	return recordHeaderSize + (n+recordAlign-1)&^(recordAlign-1)
}

// segmentName is the file name of the segment whose first record has LSN base.
func segmentName(base uint64) string {
	return fmt.Sprintf("%0*d%s", segmentNameDigits, base, segmentSuffix)
}

// parseSegmentName returns the first LSN encoded in a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != segmentNameDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || base == 0 {
		return 0, false
	}
	return base, true
}

func appendSegmentHeader(dst []byte, base uint64) []byte {
	dst = append(dst, segmentMagic...)
	return binary.LittleEndian.AppendUint64(dst, base)
}

// appendFrame appends a record with its CRC field left zero; sealRecords
// fills it in. Splitting the two keeps the CRC work off the appenders' lock.
func appendFrame(dst []byte, lsn uint64, typ uint8, data []byte) []byte {
	n := uint32(len(data))
	var h [recordHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], n)
	binary.LittleEndian.PutUint32(h[4:], ^n)
	binary.LittleEndian.PutUint64(h[8:], lsn)
	h[16] = typ
	dst = append(dst, h[:]...)
	dst = append(dst, data...)
	var pad [recordAlign]byte
	return append(dst, pad[:recordSize(len(data))-recordHeaderSize-len(data)]...)
}

// recordCRC is the checksum of a record frame: bytes 8..20 and the payload.
func recordCRC(frame []byte, n int) uint32 {
	crc := crc32.Update(0, castagnoli, frame[8:20])
	return crc32.Update(crc, castagnoli, frame[recordHeaderSize:recordHeaderSize+n])
}

// sealRecords fills in the CRC of every record in buf, a sequence of frames
// made by appendFrame.
func sealRecords(buf []byte) {
	for off := 0; off < len(buf); {
		frame := buf[off:]
		n := int(binary.LittleEndian.Uint32(frame))
		binary.LittleEndian.PutUint32(frame[20:], recordCRC(frame, n))
		off += recordSize(n)
	}
}

// appendRecord appends a complete, sealed record.
func appendRecord(dst []byte, lsn uint64, typ uint8, data []byte) []byte {
	start := len(dst)
	dst = appendFrame(dst, lsn, typ, data)
	binary.LittleEndian.PutUint32(dst[start+20:], recordCRC(dst[start:], len(data)))
	return dst
}

// badKind says why a record failed to decode.
type badKind uint8

const (
	recOK       badKind = iota
	recShort            // the header or the body extends past the end of the data
	recZero             // both length words are zero
	recLength           // the length and its complement disagree
	recTooLarge         // the length exceeds MaxRecordSize
	recCRC              // the checksum does not match
	recReserved         // the 3 bytes after the type are not zero (CRC was fine)
	recPadding          // the padding after the payload is not zero
)

func (k badKind) String() string {
	switch k {
	case recOK:
		return "ok"
	case recShort:
		return "record extends past end of file"
	case recZero:
		return "zero length words"
	case recLength:
		return "length and its complement disagree"
	case recTooLarge:
		return "length exceeds maximum record size"
	case recCRC:
		return "CRC mismatch"
	case recReserved:
		return "nonzero reserved bytes"
	case recPadding:
		return "nonzero padding"
	}
	return "bad record"
}

// record is a decoded record. data aliases the input.
type record struct {
	lsn  uint64
	typ  uint8
	data []byte
	// size is the frame size on disk. It is also set for recShort (when the
	// length words were intact), recCRC, recReserved and recPadding, so the
	// caller knows the byte range the bad record claims.
	size int
}

// decodeRecord decodes the record at the start of b. It checks the framing
// and the CRC, not the LSN sequence. It never panics, whatever b holds.
func decodeRecord(b []byte) (record, badKind) {
	if len(b) < 8 {
		return record{}, recShort
	}
	n := binary.LittleEndian.Uint32(b)
	c := binary.LittleEndian.Uint32(b[4:])
	if n == 0 && c == 0 {
		return record{}, recZero
	}
	if n != ^c {
		return record{}, recLength
	}
	if n > MaxRecordSize {
		return record{}, recTooLarge
	}
	rec := record{size: recordSize(int(n))}
	if len(b) < rec.size {
		return rec, recShort
	}
	rec.lsn = binary.LittleEndian.Uint64(b[8:])
	rec.typ = b[16]
	rec.data = b[recordHeaderSize : recordHeaderSize+int(n)]
	if binary.LittleEndian.Uint32(b[20:]) != recordCRC(b, int(n)) {
		return rec, recCRC
	}
	if b[17]|b[18]|b[19] != 0 {
		return rec, recReserved
	}
	for _, x := range b[recordHeaderSize+int(n) : rec.size] {
		if x != 0 {
			return rec, recPadding
		}
	}
	return rec, recOK
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// hasZeroSector reports whether b[start:end], split at absolute offsets that
// are multiples of sectorSize, has a piece that is all zeros. A sector that
// never reached the disk reads back as zeros, so such a record was torn by a
// crash rather than damaged afterwards (etcd's isTornEntry).
func hasZeroSector(b []byte, start, end int) bool {
	for start < end {
		next := (start/sectorSize + 1) * sectorSize
		if next > end {
			next = end
		}
		if allZero(b[start:next]) {
			return true
		}
		start = next
	}
	return false
}

// findValidRecord scans b from offset from (rounded up to the record
// alignment) for an intact record with an LSN of at least minLSN. It returns
// the offset and LSN of the first one.
func findValidRecord(b []byte, from int, minLSN uint64) (int, uint64, bool) {
	from = (from + recordAlign - 1) &^ (recordAlign - 1)
	for off := from; off+recordHeaderSize <= len(b); off += recordAlign {
		rec, kind := decodeRecord(b[off:])
		if kind == recOK && rec.lsn >= minLSN {
			return off, rec.lsn, true
		}
	}
	return 0, 0, false
}

// maxValidLSN returns the highest LSN of an intact record found anywhere in b
// at or after from, scanning at the record alignment.
func maxValidLSN(b []byte, from int) (uint64, bool) {
	var max uint64
	found := false
	from = (from + recordAlign - 1) &^ (recordAlign - 1)
	for off := from; off+recordHeaderSize <= len(b); {
		rec, kind := decodeRecord(b[off:])
		if kind != recOK {
			off += recordAlign
			continue
		}
		if rec.lsn > max || !found {
			max = rec.lsn
		}
		found = true
		off += rec.size
	}
	return max, found
}
