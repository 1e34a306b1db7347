package snapshot

import (
	"io"
	"log/slog"
	"testing"
)

const benchBodySize = 200 << 20

// writeBenchBody writes a benchBodySize body in 1 MiB writes.
func writeBenchBody(b *testing.B, s *Store, lsn uint64, chunk []byte) Meta {
	k, err := s.Create(lsn, testTime)
	if err != nil {
		b.Fatal(err)
	}
	for range benchBodySize / len(chunk) {
		if _, err := k.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	m, err := k.Close()
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkSnapshot200MB writes, reads back and verifies a 200 MB body; the
// MB/s column is body throughput. Write includes the fsyncs of file and
// directory; Read and Verify mostly hit the page cache.
func BenchmarkSnapshot200MB(b *testing.B) {
	chunk := randomBytes(1<<20, 42)
	opts := Options{Keep: 1, Logger: slog.New(slog.DiscardHandler)}

	b.Run("Write", func(b *testing.B) {
		s := openStore(b, opts)
		b.SetBytes(benchBodySize)
		lsn := uint64(0)
		for b.Loop() {
			lsn++
			writeBenchBody(b, s, lsn, chunk)
		}
	})
	b.Run("Read", func(b *testing.B) {
		s := openStore(b, opts)
		m := writeBenchBody(b, s, 1, chunk)
		b.SetBytes(benchBodySize)
		buf := make([]byte, 64<<10) // a decoder reading moderate chunks
		for b.Loop() {
			rc, err := s.OpenBody(m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	b.Run("Verify", func(b *testing.B) {
		s := openStore(b, opts)
		m := writeBenchBody(b, s, 1, chunk)
		b.SetBytes(benchBodySize)
		for b.Loop() {
			if err := s.Verify(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
