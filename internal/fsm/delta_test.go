package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"testing"
)

// snapDigest is the digest of the state s captured (Machine.Digest of it).
func snapDigest(t testing.TB, s *Snapshot) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := s.WriteTo(h); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func writeFull(t testing.TB, s *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeDelta(t testing.TB, s *Snapshot, k Mark) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteDeltaTo(&buf, k)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteDeltaTo says %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func restoreChain(t testing.TB, base []byte, deltas ...[]byte) *Machine {
	t.Helper()
	m := New()
	if err := m.Restore(bytes.NewReader(base)); err != nil {
		t.Fatal(err)
	}
	for i, b := range deltas {
		d, err := m.ReadDelta(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("delta %d: %v", i, err)
		}
		if err := m.ApplyDelta(d); err != nil {
			t.Fatalf("delta %d: %v", i, err)
		}
	}
	return m
}

// bulk enqueues n jobs, in batches, some with unique keys and delays.
func bulk(m *Machine, now int64, n int) {
	for n > 0 {
		k := min(n, 1000)
		specs := make([]JobSpec, k)
		for i := range specs {
			specs[i] = JobSpec{Queue: []string{"default", "q1"}[i%2], Type: "t", Payload: fmt.Sprintf(`{"b":%d}`, i)}
			if i%7 == 0 {
				specs[i].RunAt = now + int64(i%5)*sec
			}
			if i%50 == 0 {
				specs[i].UniqueKey = fmt.Sprintf("bulk-%d-%d", now, i)
			}
		}
		m.Apply(&Command{Kind: KindEnqueue, Now: now, Jobs: specs})
		n -= k
	}
}

// TestDeltaChainEqualsFull: a base plus a chain of deltas, each written
// while the machine went on applying (copy on write), restores exactly the
// state a full snapshot of the same capture restores, and both behave the
// same from there on (equal results and digests), indexes included.
func TestDeltaChainEqualsFull(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 9))
			a := New()
			now := int64(1000) * sec
			bulk(a, now, 3*pageSize+rng.IntN(pageSize))
			baseSnap := a.Capture()
			mark := baseSnap.Mark()
			var base []byte
			var deltas [][]byte
			var last *Snapshot
			pending := baseSnap // written one round late: a keeps applying meanwhile
			for round := 0; round < 8; round++ {
				for i := 0; i < 300+rng.IntN(300); i++ {
					c := randomCommand(rng, a, &now)
					a.Apply(&c)
				}
				switch rng.IntN(4) {
				case 0: // purge a whole page away, in the middle or at the front
					first := uint64(rng.IntN(int(a.nextID)>>pageBits+1)) << pageBits
					for id := first; id < first+pageSize; id++ {
						a.Apply(&Command{Kind: KindCancel, Now: now, ID: id})
					}
					now += 10 * sec
					a.Apply(&Command{Kind: KindPurge, Now: now, Retention: Retention{Completed: sec, Failed: sec, Canceled: sec}})
				case 1: // a new page
					bulk(a, now, 1+rng.IntN(pageSize))
				}
				if pending == baseSnap {
					base = writeFull(t, baseSnap)
				} else {
					deltas = append(deltas, writeDelta(t, pending, mark))
					mark = pending.Mark()
				}
				last = a.Capture()
				pending = last
			}
			deltas = append(deltas, writeDelta(t, last, mark))
			want := snapDigest(t, last)

			b := restoreChain(t, base, deltas...)
			checkInvariants(t, b)
			if b.Digest() != want {
				t.Fatalf("chain of %d deltas restores a different state: %s", len(deltas), machineDiff(b, last))
			}
			c := New()
			if err := c.Restore(bytes.NewReader(writeFull(t, last))); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 1500; i++ {
				cmd := randomCommand(rng, c, &now)
				rb, rc := b.Apply(&cmd), c.Apply(&cmd)
				if !reflect.DeepEqual(normalize(rb), normalize(rc)) {
					t.Fatalf("command %d (%s) after restore: chain gives %+v, full gives %+v", i, cmd.Kind, rb, rc)
				}
			}
			checkInvariants(t, b)
			if b.Digest() != c.Digest() {
				t.Fatal("chain-restored and fully restored machines diverge")
			}
		})
	}
}

func machineDiff(m *Machine, s *Snapshot) string {
	w := New()
	var buf bytes.Buffer
	s.WriteTo(&buf)
	w.Restore(&buf)
	return fmt.Sprintf("jobs %d/%d, applied %d/%d, next id %d/%d, now %d/%d (restored/want)",
		m.Len(), w.Len(), m.applied, w.applied, m.nextID, w.nextID, m.now, w.now)
}

// TestDeltaHoldsOnlyDirtyPages: a change in one page of many writes one
// page, and the delta is a small fraction of a full snapshot.
func TestDeltaHoldsOnlyDirtyPages(t *testing.T) {
	m := New()
	bulk(m, sec, 10*pageSize)
	s0 := m.Capture()
	full := writeFull(t, s0)
	for id := uint64(5*pageSize + 3); id < 5*pageSize+40; id++ {
		m.Apply(&Command{Kind: KindCancel, Now: 2 * sec, ID: id})
	}
	s1 := m.Capture()
	if dirty, pages := s1.DirtyPages(s0.Mark()); dirty != 1 || pages < 10 {
		t.Fatalf("%d of %d pages dirty, want 1 of at least 10", dirty, pages)
	}
	d := writeDelta(t, s1, s0.Mark())
	if len(d)*8 > len(full) {
		t.Fatalf("delta of one page is %d bytes, full snapshot %d", len(d), len(full))
	}
	// nothing changed: no page at all
	s2 := m.Capture()
	if dirty, _ := s2.DirtyPages(s1.Mark()); dirty != 0 {
		t.Fatalf("%d pages dirty without a change", dirty)
	}
	e := writeDelta(t, s2, s1.Mark())
	if got := restoreChain(t, full, d, e); got.Digest() != snapDigest(t, s2) {
		t.Fatal("chain with an empty delta restores a different state")
	}
}

// TestDeltaAfterMarkOfRestoredMachine: the replica marks the state it
// restored and later writes a delta against it.
func TestDeltaAfterMarkOfRestoredMachine(t *testing.T) {
	a := New()
	bulk(a, sec, 2*pageSize)
	full := writeFull(t, a.Capture())
	b := restoreChain(t, full)
	k := b.Mark()
	now := 5 * sec
	rng := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 500; i++ {
		c := randomCommand(rng, b, &now)
		b.Apply(&c)
	}
	s := b.Capture()
	got := restoreChain(t, full, writeDelta(t, s, k))
	checkInvariants(t, got)
	if got.Digest() != snapDigest(t, s) {
		t.Fatal("delta against a restored state's Mark restores a different state")
	}
}

// TestDeltaMismatchChangesNothing: a delta applied onto a state it does not
// follow is refused and leaves the state as it was.
func TestDeltaMismatchChangesNothing(t *testing.T) {
	a := New()
	bulk(a, sec, pageSize+10)
	s0 := a.Capture()
	full0 := writeFull(t, s0)
	a.Apply(&Command{Kind: KindCancel, Now: 2 * sec, ID: 1})
	s1 := a.Capture()
	a.Apply(&Command{Kind: KindCancel, Now: 3 * sec, ID: 2})
	s2 := a.Capture()
	d2 := writeDelta(t, s2, s1.Mark()) // follows s1, not s0
	m := restoreChain(t, full0)
	before := m.Digest()
	d, err := m.ReadDelta(bytes.NewReader(d2))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyDelta(d); !errors.Is(err, ErrDeltaMismatch) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ApplyDelta onto the wrong parent: %v", err)
	}
	if m.Digest() != before {
		t.Fatal("a refused delta changed the state")
	}
	checkInvariants(t, m)
}

func TestDeltaCorruptionDetected(t *testing.T) {
	a := New()
	bulk(a, sec, 300)
	s0 := a.Capture()
	now := 2 * sec
	rng := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 200; i++ {
		c := randomCommand(rng, a, &now)
		a.Apply(&c)
	}
	good := writeDelta(t, a.Capture(), s0.Mark())
	for off := 0; off < len(good); off += 1 + off/50 {
		bad := append([]byte(nil), good...)
		bad[off] ^= 0x10
		if _, err := New().ReadDelta(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at offset %d of %d: %v", off, len(good), err)
		}
	}
	for n := 0; n < len(good); n += 1 + n/30 {
		if _, err := New().ReadDelta(bytes.NewReader(good[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("delta cut at %d of %d: %v", n, len(good), err)
		}
	}
	if _, err := New().ReadDelta(bytes.NewReader(append(good, 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("byte appended: %v", err)
	}
	// a full snapshot is no delta, and a delta no full snapshot
	if _, err := New().ReadDelta(bytes.NewReader(writeFull(t, s0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("full snapshot read as a delta: %v", err)
	}
	if err := New().Restore(bytes.NewReader(good)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delta restored as a full snapshot: %v", err)
	}
}

// sealDelta appends a delta trailer with a valid checksum to body, so that
// the fuzzer reaches the checks behind the checksum.
func sealDelta(body []byte, jobs uint64) []byte {
	out := append([]byte(nil), body...)
	out = append(out, deltaTrailerMagic...)
	out = binary.LittleEndian.AppendUint64(out, jobs)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

// FuzzReadDelta: whatever decodes and applies onto the delta's parent
// leaves a machine whose indexes agree with its jobs; nothing panics.
func FuzzReadDelta(f *testing.F) {
	parent := New()
	bulk(parent, sec, 40)
	s0 := parent.Capture()
	base := writeFull(f, s0)
	now := 2 * sec
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 3; i++ {
		for k := 0; k < 30; k++ {
			c := randomCommand(rng, parent, &now)
			parent.Apply(&c)
		}
		d := writeDelta(f, parent.Capture(), s0.Mark())
		f.Add(d[:len(d)-20], binary.LittleEndian.Uint64(d[len(d)-12:]))
	}
	f.Fuzz(func(t *testing.T, body []byte, jobs uint64) {
		m := restoreChain(t, base)
		d, err := m.ReadDelta(bytes.NewReader(sealDelta(body, jobs)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		before := m.Digest()
		if err := m.ApplyDelta(d); err != nil {
			if m.Digest() != before {
				t.Fatal("a refused delta changed the state")
			}
			return
		}
		checkInvariants(t, m)
	})
}

// TestDeltaSparsePages: jobs changed here and there in many pages, and
// some purged from the middle of a page, are written as sparse pages: a
// small delta that restores the same state.
func TestDeltaSparsePages(t *testing.T) {
	m := New()
	bulk(m, sec, 8*pageSize)
	s0 := m.Capture()
	full := writeFull(t, s0)
	now := 2 * sec
	for id := uint64(7); id < m.nextID; id += 97 {
		m.Apply(&Command{Kind: KindCancel, Now: now, ID: id})
	}
	now += 10 * sec
	m.Apply(&Command{Kind: KindPurge, Now: now, Max: 50, Retention: Retention{Canceled: sec}})
	lease := m.Apply(&Command{Kind: KindLease, Now: now, Queues: []string{"q1"}, Max: 30, Worker: "w", LeaseFor: 30 * sec})
	if len(lease.Jobs) == 0 {
		t.Fatal("nothing leased")
	}
	s1 := m.Capture()
	if dirty, pages := s1.DirtyPages(s0.Mark()); dirty != pages {
		t.Fatalf("%d of %d pages dirty, want all", dirty, pages)
	}
	d := writeDelta(t, s1, s0.Mark())
	if len(d)*10 > len(full) {
		t.Fatalf("delta of sparse changes is %d bytes, full snapshot %d", len(d), len(full))
	}
	got := restoreChain(t, full, d)
	checkInvariants(t, got)
	if got.Digest() != snapDigest(t, s1) {
		t.Fatal("sparse delta restores a different state")
	}
	// and the machines behave alike from here
	c := restoreChain(t, writeFull(t, s1))
	rng := rand.New(rand.NewPCG(8, 8))
	for i := 0; i < 500; i++ {
		cmd := randomCommand(rng, c, &now)
		if rg, rc := got.Apply(&cmd), c.Apply(&cmd); !reflect.DeepEqual(normalize(rg), normalize(rc)) {
			t.Fatalf("command %d (%s): %+v vs %+v", i, cmd.Kind, rg, rc)
		}
	}
	if got.Digest() != c.Digest() {
		t.Fatal("diverged")
	}
}
