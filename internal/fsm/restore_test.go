package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// parallelFixture is a machine with jobs in every state, in several queues
// and types, over many pages, and the commands that follow it.
func parallelFixture(t *testing.T, seed uint64) (snap []byte, tail []Command) {
	t.Helper()
	cmds := randomStream(seed, 4000)
	m := New()
	mid := len(cmds) / 2
	for i := range cmds[:mid] {
		m.Apply(&cmds[i])
	}
	bulk(m, m.Now(), 3*pageSize)
	for i := range cmds[mid : mid+mid/2] {
		m.Apply(&cmds[mid+i])
	}
	checkInvariants(t, m)
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), cmds[mid+mid/2:]
}

// TestParallelRestoreEqualsSequential: a snapshot decoded by several
// goroutines in small batches gives the machine one goroutine gives: the
// same encoding, the same indexes (checked, then exercised by the same
// commands, which must give equal results and digests), and for damaged
// bytes the same error.
func TestParallelRestoreEqualsSequential(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			snap, tail := parallelFixture(t, seed)
			seq := New()
			if err := seq.restoreWith(bytes.NewReader(snap), 1, restoreBatchJobs); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ workers, batch int }{{2, 1}, {3, 7}, {4, 100}, {2, restoreBatchJobs}} {
				par := New()
				par.Apply(&Command{Kind: KindEnqueue, Now: 1, Jobs: []JobSpec{{Type: "junk"}}}) // restore discards this
				if err := par.restoreWith(bytes.NewReader(snap), c.workers, c.batch); err != nil {
					t.Fatalf("%+v: %v", c, err)
				}
				checkInvariants(t, par)
				if par.Digest() != seq.Digest() {
					t.Fatalf("%+v: parallel restore differs from sequential", c)
				}
				pt, pq := par.Counts()
				st, sq := seq.Counts()
				if !reflect.DeepEqual(pt, st) || !reflect.DeepEqual(pq, sq) {
					t.Fatalf("%+v: counts %v %v, want %v %v", c, pt, pq, st, sq)
				}
				a, b := cloneByRestore(t, seq), par
				for i := range tail {
					ra, rb := a.Apply(&tail[i]), b.Apply(&tail[i])
					if !reflect.DeepEqual(normalize(ra), normalize(rb)) {
						t.Fatalf("%+v: command %d (%s): result %+v, want %+v", c, i, tail[i].Kind, rb, ra)
					}
				}
				checkInvariants(t, b)
				if a.Digest() != b.Digest() {
					t.Fatalf("%+v: digests differ after the same commands", c)
				}
			}
		})
	}
}

// cloneByRestore is a sequentially restored copy of m.
func cloneByRestore(t *testing.T, m *Machine) *Machine {
	t.Helper()
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	c := New()
	if err := c.restoreWith(&buf, 1, restoreBatchJobs); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestParallelRestoreErrorsEqualSequential: whatever the damage (a flipped
// byte, a cut), the parallel restore refuses with the sequential one's
// error, and leaves the machine empty.
func TestParallelRestoreErrorsEqualSequential(t *testing.T) {
	cmds := randomStream(9, 1500)
	m := New()
	for i := range cmds {
		m.Apply(&cmds[i])
	}
	bulk(m, m.Now(), 500)
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	check := func(what string, bad []byte) {
		t.Helper()
		seq, par := New(), New()
		es := seq.restoreWith(bytes.NewReader(bad), 1, restoreBatchJobs)
		ep := par.restoreWith(bytes.NewReader(bad), 3, 5)
		if es == nil || ep == nil {
			if es != nil || ep != nil {
				t.Fatalf("%s: sequential %v, parallel %v", what, es, ep)
			}
			return
		}
		if es.Error() != ep.Error() {
			t.Fatalf("%s: parallel error %q, sequential %q", what, ep, es)
		}
		if par.Len() != 0 || par.Digest() != New().Digest() {
			t.Fatalf("%s: machine not empty after a failed restore", what)
		}
	}
	for off := 0; off < len(good); off += 1 + off/40 {
		bad := append([]byte(nil), good...)
		bad[off] ^= 0x10
		check(fmt.Sprintf("flip at %d of %d", off, len(good)), bad)
	}
	for n := 0; n < len(good); n += 1 + n/25 {
		check(fmt.Sprintf("cut at %d of %d", n, len(good)), good[:n])
	}
}
