package snapshot

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
)

// readBufferSize is the size of the chunks the body reader reads and hashes.
const readBufferSize = 1 << 20

// bodyReader streams the body of a snapshot file whose header and trailer
// have been checked, hashing what it reads. When the last body byte has been
// read it compares length and checksum with the trailer and from then on
// returns io.EOF, or a *CorruptionError if they differ. The verdict comes
// with the Read that returns the last body bytes (n > 0 and a non-nil error,
// as io.Reader allows) and again with every later Read.
//
// Hashing happens per chunk read from the file (readBufferSize, or the
// caller's buffer when that is larger), never per small caller Read.
type bodyReader struct {
	file   string
	ra     io.ReaderAt
	closer io.Closer // nil: nothing to close

	start, off, end int64 // body bounds in the file; off: next byte to read
	want            uint32
	crc             uint32

	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	err  error // sticky: io.EOF, a *CorruptionError, or an I/O error
}

func newBodyReader(file string, ra io.ReaderAt, closer io.Closer, start int64, t trailer) *bodyReader {
	b := &bodyReader{
		file:   file,
		ra:     ra,
		closer: closer,
		start:  start,
		off:    start,
		end:    start + int64(t.bodyLen),
		want:   t.bodyCRC,
	}
	if b.off == b.end {
		b.err = b.finish()
	}
	return b
}

// Read implements io.Reader.
func (b *bodyReader) Read(p []byte) (int, error) {
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if len(p) >= readBufferSize {
			n := b.fill(p)
			return n, b.err
		}
		if b.buf == nil {
			b.buf = make([]byte, readBufferSize)
		}
		b.r, b.w = 0, b.fill(b.buf)
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	if b.r == b.w {
		return n, b.err
	}
	return n, nil
}

// WriteTo implements io.WriterTo so io.Copy skips a second buffer. Like
// io.Copy it returns nil at a clean end of the body.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if b.r == b.w {
			if b.err != nil {
				if b.err == io.EOF {
					return total, nil
				}
				return total, b.err
			}
			if b.buf == nil {
				b.buf = make([]byte, readBufferSize)
			}
			b.r, b.w = 0, b.fill(b.buf)
			continue
		}
		n, err := w.Write(b.buf[b.r:b.w])
		b.r += n
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// fill reads the next chunk of the body into p (up to len(p) bytes), hashes
// it and, at the end of the body, records the verdict in b.err.
func (b *bodyReader) fill(p []byte) int {
	if rem := b.end - b.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.ra.ReadAt(p, b.off)
	b.crc = crc32.Update(b.crc, castagnoli, p[:n])
	b.off += int64(n)
	switch {
	case n < len(p) && (err == nil || errors.Is(err, io.EOF)):
		b.err = corruptf(b.file, b.off, "body ends early: the trailer promised %d body bytes (file truncated while reading?)", b.end-b.start)
	case n < len(p):
		b.err = fmt.Errorf("snapshot: read %s at offset %d: %w", b.file, b.off, err)
	case b.off == b.end:
		b.err = b.finish()
	}
	return n
}

// finish compares what was read with the trailer.
func (b *bodyReader) finish() error {
	if b.crc != b.want {
		return corruptf(b.file, b.start, "body checksum mismatch over bytes [%d, %d): trailer says %08x, body hashes to %08x", b.start, b.end, b.want, b.crc)
	}
	return io.EOF
}

// Close releases the file. Reads after Close fail with fs.ErrClosed.
func (b *bodyReader) Close() error {
	if b.err == fs.ErrClosed {
		return nil
	}
	b.err = fs.ErrClosed
	b.r, b.w = 0, 0
	b.buf = nil
	if b.closer == nil {
		return nil
	}
	return b.closer.Close()
}
