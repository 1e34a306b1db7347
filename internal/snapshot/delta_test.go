package snapshot

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// publishDelta writes a delta on parent with the given body.
func publishDelta(t testing.TB, s *Store, lsn uint64, parent Meta, body []byte) Meta {
	t.Helper()
	k, err := s.CreateDelta(lsn, testTime, parent)
	if err != nil {
		t.Fatalf("CreateDelta(%d): %v", lsn, err)
	}
	if _, err := k.Write(body); err != nil {
		t.Fatalf("Write: %v", err)
	}
	m, err := k.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	return m
}

func chainLSNs(c Chain) []uint64 { return lsns(c.Files()) }

func TestDeltaRoundTrip(t *testing.T) {
	s := openStore(t, Options{})
	b := publish(t, s, 10, randomBytes(3000, 1))
	body1, body2 := randomBytes(2<<20+7, 2), randomBytes(0, 3)
	d1 := publishDelta(t, s, 20, b, body1)
	d2 := publishDelta(t, s, 30, d1, body2)
	if d1.Kind != Delta || d1.Parent != b.Link() || d1.Base != b.Link() || filepath.Base(d1.Path) != "snap-00000000000000000020.delta" {
		t.Fatalf("first delta: %+v (base %+v)", d1, b)
	}
	if d2.Parent != d1.Link() || d2.Base != b.Link() || d2.Size != int64(len(body2))+64+linkSize {
		t.Fatalf("second delta: %+v", d2)
	}
	if d1.BodyCRC != crc32.Checksum(body1, castagnoli) {
		t.Fatalf("body CRC %08x", d1.BodyCRC)
	}
	for _, tc := range []struct {
		m    Meta
		body []byte
	}{{d1, body1}, {d2, body2}} {
		got, err := readBody(s, tc.m)
		if err != nil || !bytes.Equal(got, tc.body) {
			t.Fatalf("%s: read %d bytes, %v", tc.m.Path, len(got), err)
		}
		if err := s.Verify(tc.m); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != 3 || list[0] != d2 || list[1] != d1 || list[2] != b {
		t.Fatalf("List() = %+v, %v", list, err)
	}
	cat, err := s.Catalog()
	if err != nil || len(cat.Chains) != 1 || len(cat.Unusable) != 0 {
		t.Fatalf("Catalog() = %+v, %v", cat, err)
	}
	if c := cat.Chains[0]; !slices.Equal(chainLSNs(c), []uint64{10, 20, 30}) || c.Tip() != d2 || c.DeltaBytes() != d1.Size+d2.Size {
		t.Fatalf("chain %+v", c)
	}
	if _, err := s.CreateDelta(30, testTime, d2); err == nil {
		t.Fatal("a delta at its parent's LSN was accepted")
	}
}

// TestCatalogChains: chains, a new base at the LSN of the old chain's tip,
// a damaged base orphaning its deltas, a fork, and a damaged delta.
func TestCatalogChains(t *testing.T) {
	s := openStore(t, Options{Keep: 9})
	b1 := publish(t, s, 10, []byte("base one"))
	d11 := publishDelta(t, s, 20, b1, []byte("d11"))
	d12 := publishDelta(t, s, 30, d11, []byte("d12"))
	b2 := publish(t, s, 30, []byte("base two"))
	d21 := publishDelta(t, s, 40, b2, []byte("d21"))
	// a fork on d21: the branch reaching LSN 70 wins over the one at 60
	d22a := publishDelta(t, s, 60, d21, []byte("d22a"))
	d22b := publishDelta(t, s, 50, d21, []byte("d22b"))
	d23b := publishDelta(t, s, 70, d22b, []byte("d23b"))
	cat, err := s.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Chains) != 2 || !slices.Equal(chainLSNs(cat.Chains[0]), []uint64{30, 40, 50, 70}) || !slices.Equal(chainLSNs(cat.Chains[1]), []uint64{10, 20, 30}) {
		t.Fatalf("chains %+v", cat.Chains)
	}
	// the losing branch continues no chain; pruning deletes it, as it is
	// older than the chain's tip
	if len(cat.Unusable) != 1 || cat.Unusable[0].Meta.Path != d22a.Path || !errors.Is(cat.Unusable[0].Err, ErrUnlinked) {
		t.Fatalf("unusable %+v", cat.Unusable)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if cat, _ = s.Catalog(); len(cat.Unusable) != 0 || slices.Contains(dirNames(t, s.Dir()), filepath.Base(d22a.Path)) {
		t.Fatalf("unusable %+v, directory %v", cat.Unusable, dirNames(t, s.Dir()))
	}
	_, _ = d12, d23b
	// damage b2's trailer: its chain is gone, its deltas continue nothing
	damage(t, b2.Path, b2.Size-3)
	cat, err = s.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Chains) != 1 || cat.Chains[0].Base.LSN != 10 || len(cat.Unusable) != 4 {
		t.Fatalf("after damaging the base: %+v", cat)
	}
	for _, u := range cat.Unusable {
		want := ErrUnlinked
		if u.Meta.Path == b2.Path {
			want = ErrCorrupt
		}
		if !errors.Is(u.Err, want) {
			t.Fatalf("%s: %v, want %v", u.Meta.Path, u.Err, want)
		}
	}
	// damage d11's link block: chain one ends at its base
	damage(t, d11.Path, headerSize+5)
	cat, _ = s.Catalog()
	if !slices.Equal(chainLSNs(cat.Chains[0]), []uint64{10}) {
		t.Fatalf("after damaging a link block: %+v", cat.Chains)
	}
}

func damage(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPruneChains: pruning keeps whole chains, the newest Keep of them,
// deleting older chains and superseded unusable files.
func TestPruneChains(t *testing.T) {
	s := openStore(t, Options{Keep: 2})
	b1 := publish(t, s, 10, []byte("b1"))
	d := publishDelta(t, s, 20, b1, []byte("d"))
	d = publishDelta(t, s, 30, d, []byte("d"))
	b2 := publish(t, s, 30, []byte("b2"))
	d = publishDelta(t, s, 40, b2, []byte("d"))
	want := []string{"snap-00000000000000000010.snap", "snap-00000000000000000020.delta", "snap-00000000000000000030.delta",
		"snap-00000000000000000030.snap", "snap-00000000000000000040.delta"}
	if got := dirNames(t, s.Dir()); !slices.Equal(got, want) {
		t.Fatalf("two chains: directory holds %v", got)
	}
	b3 := publish(t, s, 40, []byte("b3"))
	want = []string{"snap-00000000000000000030.snap", "snap-00000000000000000040.delta", "snap-00000000000000000040.snap"}
	if got := dirNames(t, s.Dir()); !slices.Equal(got, want) {
		t.Fatalf("a third base: directory holds %v", got)
	}
	// an orphan older than the newest tip goes; a newer one stays
	orphanOld := publishDelta(t, s, 35, Meta{LSN: 31, Kind: Full, BodyCRC: 1}, []byte("o"))
	orphanNew := publishDelta(t, s, 99, Meta{LSN: 98, Kind: Full, BodyCRC: 1}, []byte("o"))
	publishDelta(t, s, 50, b3, []byte("d"))
	if got := dirNames(t, s.Dir()); !slices.Contains(got, filepath.Base(orphanOld.Path)) {
		t.Fatalf("publishing a delta pruned: directory holds %v", got)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	got := dirNames(t, s.Dir())
	if slices.Contains(got, filepath.Base(orphanOld.Path)) || !slices.Contains(got, filepath.Base(orphanNew.Path)) {
		t.Fatalf("orphans: directory holds %v", got)
	}
}

// TestVersion2Full: a full snapshot written with a version-2 header (kind
// full, no link block) reads like a version-1 one.
func TestVersion2Full(t *testing.T) {
	s := openStore(t, Options{})
	m := publish(t, s, 5, []byte("v2 body"))
	raw, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(raw[hOffVersion:], versionDelta)
	binary.LittleEndian.PutUint32(raw[hOffCRC:], crc32.Checksum(raw[:hOffCRC], castagnoli))
	if err := os.WriteFile(m.Path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readBody(s, m); err != nil || string(got) != "v2 body" {
		t.Fatalf("read %q, %v", got, err)
	}
	// a version-2 header saying delta on a .snap name is damage
	binary.LittleEndian.PutUint32(raw[hOffKind:], uint32(Delta))
	binary.LittleEndian.PutUint32(raw[hOffLinkLen:], linkSize)
	binary.LittleEndian.PutUint32(raw[hOffCRC:], crc32.Checksum(raw[:hOffCRC], castagnoli))
	if err := os.WriteFile(m.Path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(m); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("kind mismatch: %v", err)
	}
}

// TestDeltaBitFlips flips every bit of header, link block and trailer and
// one bit of every body byte of a delta: each is detected where it is.
func TestDeltaBitFlips(t *testing.T) {
	s := openStore(t, Options{})
	b := publish(t, s, 100, []byte("base"))
	m := publishDelta(t, s, 200, b, randomBytes(700, 9))
	orig, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(orig))
	bodyStart, bodyEnd := int64(headerSize+linkSize), size-trailerSize
	for off := int64(0); off < size; off++ {
		inBody := off >= bodyStart && off < bodyEnd
		bits := []uint{0, 1, 2, 3, 4, 5, 6, 7}
		if inBody {
			bits = []uint{uint(off % 8)}
		}
		for _, bit := range bits {
			bad := bytes.Clone(orig)
			bad[off] ^= 1 << bit
			if err := os.WriteFile(m.Path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("bit %d of byte %d", bit, off)
			ce := checkDamaged(t, s, m, what, !inBody)
			switch {
			case off < bodyStart && ce.Offset >= bodyStart:
				t.Fatalf("%s: reported at offset %d, outside header and link block", what, ce.Offset)
			case inBody && ce.Offset != bodyStart:
				t.Fatalf("%s: reported at offset %d, want the body start", what, ce.Offset)
			case off >= bodyEnd && ce.Offset < bodyEnd:
				t.Fatalf("%s: reported at offset %d, before the trailer", what, ce.Offset)
			}
			if !inBody {
				if cat, err := s.Catalog(); err != nil || len(cat.Chains) != 1 || len(cat.Chains[0].Deltas) != 0 || len(cat.Unusable) != 1 {
					t.Fatalf("%s: Catalog() = %+v, %v", what, cat, err)
				}
			}
		}
	}
}

// goldenDelta is a delta at LSN 43 on the worked example of
// docs/wire-format-snapshot.md (LSN 42, body CRC 3b0e1cec), body "delta";
// its CRCs were cross-checked with an independent CRC-32C implementation.
const goldenDelta = "42565253" + "4e415031" + "02000000" + "01000000" + // magic, version 2, kind delta
	"2b00000000000000" + "0632f3ee1ec11618" + // LSN 43, createdAt
	"20000000" + "4ed19927" + // link block length 32, header CRC
	"2a00000000000000" + "ec1c0e3b" + "00000000" + // parent LSN 42, parent body CRC, reserved
	"2a00000000000000" + "ec1c0e3b" + "f7fa1017" + // base LSN 42, base body CRC, link CRC
	"64656c7461" + // body "delta"
	"0500000000000000" + "7383fab1" + "17d9aff7" + // body length 5, body CRC, trailer CRC
	"425652454e443031" // magic

func TestGoldenDelta(t *testing.T) {
	s := openStore(t, Options{})
	b := publish(t, s, 42, []byte("hello, beaver"))
	m := publishDelta(t, s, 43, b, []byte("delta"))
	raw, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(raw); got != goldenDelta {
		t.Fatalf("encoding changed:\ngot  %s\nwant %s\n%s", got, goldenDelta, hex.Dump(raw))
	}
}
