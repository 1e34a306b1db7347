package fsm

import (
	"bytes"
	"errors"
	"testing"
)

const hour = 3600 * sec

// completeOne leases job id (alone in its queue) and completes it at now.
func completeOne(t *testing.T, m *Machine, queue string, now int64) Job {
	t.Helper()
	l := apply(t, m, lease(now, 1, queue))
	if len(l.Jobs) != 1 {
		t.Fatalf("nothing to lease in %s", queue)
	}
	j := l.Jobs[0]
	if r := apply(t, m, &Command{Kind: KindAck, Now: now, Acks: []Ack{{ID: j.ID, LeaseID: j.LeaseID}}}); r.AckErrs[0] != nil {
		t.Fatal(r.AckErrs[0])
	}
	return j
}

func TestUniqueForKeepsTheKeyAfterTheJobFinished(t *testing.T) {
	m := New()
	r := apply(t, m, enq(sec, JobSpec{Queue: "q", Type: "t", UniqueKey: "msg-1", UniqueFor: hour}))
	id := r.Enqueued[0].ID
	if j := mustGet(t, m, id); j.UniqueFor != hour || j.UniqueKey != "msg-1" {
		t.Fatalf("job %+v", j)
	}
	completeOne(t, m, "q", 10*sec)
	// within the window: the existing duplicate answer, naming the finished job
	for _, at := range []int64{11 * sec, 10*sec + hour - 1} {
		r := apply(t, m, enq(at, JobSpec{Queue: "q", Type: "t", UniqueKey: "msg-1", UniqueFor: hour}))
		if e := r.Enqueued[0]; !e.Duplicate || e.ID != id || e.State != StateCompleted {
			t.Fatalf("enqueue at %ds: %+v, want a duplicate of completed job %d", at/sec, e, id)
		}
	}
	// the window counts from the end of the job: at finished_at + unique_for
	// the key is free again
	r = apply(t, m, enq(10*sec+hour, JobSpec{Queue: "q", Type: "t", UniqueKey: "msg-1"}))
	if e := r.Enqueued[0]; e.Duplicate || e.ID == id {
		t.Fatalf("enqueue after the window: %+v", e)
	}
	// the default (no unique_for) frees the key when the job finished
	second := r.Enqueued[0].ID
	completeOne(t, m, "q", 10*sec+hour)
	if r := apply(t, m, enq(10*sec+hour, JobSpec{Queue: "q", Type: "t", UniqueKey: "msg-1"})); r.Enqueued[0].Duplicate {
		t.Fatalf("a key without unique_for held after job %d finished: %+v", second, r.Enqueued[0])
	}
}

func TestUniqueForHoldsInEveryFinalState(t *testing.T) {
	m := New()
	apply(t, m, enq(sec,
		JobSpec{Queue: "f", Type: "t", UniqueKey: "failed", UniqueFor: hour, MaxAttempts: 1},
		JobSpec{Queue: "c", Type: "t", UniqueKey: "canceled", UniqueFor: hour}))
	l := apply(t, m, lease(2*sec, 1, "f"))
	apply(t, m, &Command{Kind: KindAck, Now: 2 * sec, Acks: []Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID, Fail: true, Error: "x"}}})
	apply(t, m, &Command{Kind: KindCancel, Now: 2 * sec, ID: 2})
	r := apply(t, m, enq(3*sec, JobSpec{Type: "t", UniqueKey: "failed"}, JobSpec{Type: "t", UniqueKey: "canceled"}))
	if e := r.Enqueued; !e[0].Duplicate || e[0].State != StateFailed || !e[1].Duplicate || e[1].State != StateCanceled {
		t.Fatalf("duplicates of a failed and a canceled job: %+v", e)
	}
}

// Retry of the finished holder runs it again and keeps the key; retry of
// another job with the key conflicts while the window lasts.
func TestRetryWithAReservedKey(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Queue: "a", Type: "t", UniqueKey: "k"}))                    // 1, no window
	apply(t, m, &Command{Kind: KindCancel, Now: sec, ID: 1})                                 // frees k
	apply(t, m, enq(2*sec, JobSpec{Queue: "b", Type: "t", UniqueKey: "k", UniqueFor: hour})) // 2
	apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: 2})                             // k reserved until 3s+1h
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 4 * sec, ID: 1}); !errors.Is(r.Err, ErrUniqueConflict) {
		t.Fatalf("retry of another job within the window: %v", r.Err)
	}
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 4 * sec, ID: 2}); r.Err != nil || r.Jobs[0].State != StatePending {
		t.Fatalf("retry of the holder: %+v", r)
	}
	if r := apply(t, m, enq(5*sec, JobSpec{Type: "t", UniqueKey: "k"})); !r.Enqueued[0].Duplicate || r.Enqueued[0].ID != 2 {
		t.Fatalf("the retried holder lost its key: %+v", r.Enqueued[0])
	}
	// it finishes again: a new window from the new finish
	completeOne(t, m, "b", 100*sec)
	if r := apply(t, m, enq(3*sec+hour+sec, JobSpec{Type: "t", UniqueKey: "k"})); !r.Enqueued[0].Duplicate {
		t.Fatalf("the window did not restart at the second finish: %+v", r.Enqueued[0])
	}
	// after the window another job may take the key by a retry
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 100*sec + hour, ID: 1}); r.Err != nil {
		t.Fatalf("retry after the window: %v", r.Err)
	}
}

// Purge removes a job after its retention even inside its window: its key
// stays reserved (the reservations section) until the window ends.
func TestUniqueForOutlivesPurge(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Queue: "q", Type: "t", UniqueKey: "k", UniqueFor: 10 * hour}))
	done := completeOne(t, m, "q", 2*sec)
	if p := apply(t, m, &Command{Kind: KindPurge, Now: 2*sec + hour, Retention: Retention{Completed: hour}}); p.Purged != 1 {
		t.Fatalf("purge: %+v", p)
	}
	if _, ok := m.Get(done.ID); ok || m.Reservations() != 1 {
		t.Fatalf("job kept after purge, or %d reservations", m.Reservations())
	}
	if at, ok := m.NextReservationEnd(); !ok || at != 2*sec+10*hour {
		t.Fatalf("NextReservationEnd = %d, %v", at, ok)
	}
	r := apply(t, m, enq(3*hour, JobSpec{Type: "t", UniqueKey: "k"}))
	if e := r.Enqueued[0]; !e.Duplicate || e.ID != done.ID || e.State != StateCompleted {
		t.Fatalf("enqueue of a purged job's key in its window: %+v", e)
	}
	// across a snapshot
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	m2 := New()
	if err := m2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if r := apply(t, m2, enq(4*hour, JobSpec{Type: "t", UniqueKey: "k"})); !r.Enqueued[0].Duplicate || m2.Reservations() != 1 {
		t.Fatalf("restored: %+v, %d reservations", r.Enqueued[0], m2.Reservations())
	}
	// a purge after the window drops the reservation
	apply(t, m, &Command{Kind: KindPurge, Now: 11 * hour, Retention: Retention{Completed: hour}})
	if m.Reservations() != 0 {
		t.Fatalf("%d reservations after the window", m.Reservations())
	}
	if r := apply(t, m, enq(11*hour, JobSpec{Type: "t", UniqueKey: "k"})); r.Enqueued[0].Duplicate {
		t.Fatalf("key held after its window: %+v", r.Enqueued[0])
	}
	// an enqueue after the window takes the key from an expired reservation
	m3 := New()
	apply(t, m3, enq(sec, JobSpec{Queue: "q", Type: "t", UniqueKey: "k", UniqueFor: 2 * hour}))
	completeOne(t, m3, "q", sec)
	apply(t, m3, &Command{Kind: KindPurge, Now: hour + sec, Retention: Retention{Completed: hour}})
	if r := apply(t, m3, enq(3*hour, JobSpec{Type: "t", UniqueKey: "k"})); r.Enqueued[0].Duplicate || m3.Reservations() != 0 {
		t.Fatalf("after the window: %+v, %d reservations", r.Enqueued[0], m3.Reservations())
	}
}

func TestUniqueForValidation(t *testing.T) {
	m := New()
	for _, s := range []JobSpec{
		{Type: "t", UniqueFor: hour},                                    // no key
		{Type: "t", UniqueKey: "k", UniqueFor: -1},                      // negative
		{Type: "t", UniqueKey: "k", UniqueFor: int64(MaxUniqueFor) + 1}, // too long
	} {
		r := apply(t, m, enq(sec, s))
		var inv *InvalidError
		if !errors.As(r.Err, &inv) || inv.Field != "unique_for" {
			t.Errorf("%+v: %v, want invalid unique_for", s, r.Err)
		}
	}
}

// A finished job inside its window is a holder after a restore too (the
// index is rebuilt from the jobs, which carry unique_for).
func TestUniqueForRestoresHolders(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Queue: "q", Type: "t", UniqueKey: "k", UniqueFor: hour}))
	completeOne(t, m, "q", sec)
	apply(t, m, enq(sec, JobSpec{Queue: "q", Type: "t", UniqueKey: "short", UniqueFor: sec}))
	completeOne(t, m, "q", sec)
	apply(t, m, &Command{Kind: KindTick, Now: 5 * sec}) // the short window ended: a stale entry
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r)
	if r.Digest() != m.Digest() {
		t.Fatal("digest differs")
	}
	for _, x := range []*Machine{m, r} {
		res := x.Apply(enq(6*sec, JobSpec{Type: "t", UniqueKey: "k"}, JobSpec{Type: "t", UniqueKey: "short"}))
		if !res.Enqueued[0].Duplicate || res.Enqueued[1].Duplicate {
			t.Fatalf("after restore: %+v", res.Enqueued)
		}
	}
}

func TestReservationSectionCorruptionDetected(t *testing.T) {
	m := New()
	m.reserved["a"] = reservation{id: 3, state: StateCompleted, until: 10}
	m.reserved["b"] = reservation{id: 4, state: StateCanceled, until: 20}
	good := encodeReservations(m, nil)
	install, err := decodeReservations(good)
	if err != nil {
		t.Fatal(err)
	}
	r := New()
	install(r)
	if len(r.reserved) != 2 || r.reserved["b"] != m.reserved["b"] {
		t.Fatalf("decoded %+v", r.reserved)
	}
	for n := 1; n < len(good); n++ {
		if _, err := decodeReservations(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	for _, bad := range [][]byte{
		{0},                                   // no entries
		{1, 1, 'a', 3, byte(StatePending), 0}, // not a final state
		{1, 1, 'a', 0, byte(StateFailed), 0},  // job 0
		{1, 0, 3, byte(StateFailed), 0},       // empty key
		{2, 1, 'b', 3, 4, 0, 1, 'a', 4, 4, 0}, // out of order
	} {
		if _, err := decodeReservations(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode %v: %v, want ErrCorrupt", bad, err)
		}
	}
}

// A job of a batch may depend (by index) on an earlier job that is the
// duplicate of a purged job whose window holds its key: the dependency is
// that job, in the final state it ended in.
func TestDependencyOnADuplicateOfAPurgedJob(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Queue: "q", Type: "t", UniqueKey: "done", UniqueFor: 10 * hour}, JobSpec{Queue: "c", Type: "t", UniqueKey: "gone", UniqueFor: 10 * hour}))
	completeOne(t, m, "q", sec)
	apply(t, m, &Command{Kind: KindCancel, Now: sec, ID: 2})
	apply(t, m, &Command{Kind: KindPurge, Now: hour, Retention: Retention{Completed: sec, Canceled: sec}})
	if m.Len() != 0 || m.Reservations() != 2 {
		t.Fatalf("%d jobs, %d reservations", m.Len(), m.Reservations())
	}
	r := apply(t, m, enq(2*hour,
		JobSpec{Type: "t", UniqueKey: "done"}, JobSpec{Type: "t", Deps: &Deps{OnIndex: []int{0}}},
		JobSpec{Type: "t", UniqueKey: "gone"}, JobSpec{Type: "t", Deps: &Deps{OnIndex: []int{2}}}))
	e := r.Enqueued
	if r.Err != nil || !e[0].Duplicate || e[0].ID != 1 || !e[2].Duplicate || e[2].ID != 2 {
		t.Fatalf("enqueue: %+v", r)
	}
	if e[1].State != StatePending {
		t.Fatalf("dependent of a completed, purged job: %s", e[1].State)
	}
	if j := mustGet(t, m, e[3].ID); j.State != StateCanceled || j.LastError != "dependency 2 canceled" {
		t.Fatalf("dependent of a canceled, purged job: %+v", j)
	}
}
