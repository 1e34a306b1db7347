package fsm

import (
	"errors"
	"testing"
)

func TestEnqueueDefaultsAndScheduling(t *testing.T) {
	m := New()
	r := apply(t, m, enq(100*sec,
		JobSpec{Type: "email", Payload: `{"to":"a"}`},
		JobSpec{Queue: "q2", Type: "email", RunAt: 200 * sec, MaxAttempts: 3, Timeout: 2 * sec, Priority: 5},
	))
	if r.Err != nil || len(r.Enqueued) != 2 {
		t.Fatalf("enqueue: %+v", r)
	}
	a, b := mustGet(t, m, r.Enqueued[0].ID), mustGet(t, m, r.Enqueued[1].ID)
	if a.ID != 1 || b.ID != 2 {
		t.Fatalf("ids %d %d, want 1 2", a.ID, b.ID)
	}
	if a.Queue != "default" || a.State != StatePending || a.MaxAttempts != 25 || a.Timeout != int64(DefaultTimeout) || a.RunAt != 100*sec || a.CreatedAt != 100*sec || a.Payload != `{"to":"a"}` {
		t.Fatalf("defaults not applied: %+v", a)
	}
	if b.State != StateScheduled || b.RunAt != 200*sec || b.MaxAttempts != 3 || b.Timeout != 2*sec || b.Priority != 5 || b.Queue != "q2" {
		t.Fatalf("scheduled job: %+v", b)
	}
	if r.Enqueued[1].State != StateScheduled {
		t.Fatalf("result state %s", r.Enqueued[1].State)
	}
}

func TestEnqueueAllOrNothing(t *testing.T) {
	m := New()
	r := apply(t, m, enq(sec, JobSpec{Type: "ok"}, JobSpec{Type: ""}, JobSpec{Type: "ok"}))
	var inv *InvalidError
	if !errors.As(r.Err, &inv) || inv.Index != 1 || inv.Field != "type" {
		t.Fatalf("want invalid type at index 1, got %v", r.Err)
	}
	if m.Len() != 0 {
		t.Fatalf("rejected batch stored %d jobs", m.Len())
	}
	for _, tc := range []struct {
		spec  JobSpec
		field string
	}{
		{JobSpec{Type: "t", Queue: "bad queue"}, "queue"},
		{JobSpec{Type: "bad type!"}, "type"},
		{JobSpec{Type: "t", MaxAttempts: -1}, "max_attempts"},
		{JobSpec{Type: "t", MaxAttempts: 70000}, "max_attempts"},
		{JobSpec{Type: "t", Timeout: 1}, "timeout"},
		{JobSpec{Type: "t", UniqueKey: string(make([]byte, 300))}, "unique_key"},
	} {
		r := apply(t, m, enq(sec, tc.spec))
		if !errors.As(r.Err, &inv) || inv.Field != tc.field {
			t.Errorf("%+v: want invalid %s, got %v", tc.spec, tc.field, r.Err)
		}
	}
	if r := apply(t, m, enq(sec)); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("empty enqueue: %v", r.Err)
	}
}

func TestUniqueKey(t *testing.T) {
	m := New()
	r1 := apply(t, m, enq(sec, JobSpec{Type: "t", UniqueKey: "k"}))
	r2 := apply(t, m, enq(2*sec, JobSpec{Type: "t", UniqueKey: "k"}, JobSpec{Type: "t", UniqueKey: "k2"}, JobSpec{Type: "t", UniqueKey: "k2"}))
	if !r2.Enqueued[0].Duplicate || r2.Enqueued[0].ID != r1.Enqueued[0].ID {
		t.Fatalf("same key while unfinished should return the existing job: %+v", r2.Enqueued[0])
	}
	if r2.Enqueued[1].Duplicate || !r2.Enqueued[2].Duplicate || r2.Enqueued[2].ID != r2.Enqueued[1].ID {
		t.Fatalf("duplicate within one batch: %+v", r2.Enqueued)
	}
	// finish the first job: the key is free again
	l := apply(t, m, &Command{Kind: KindLease, Now: 3 * sec, Queues: []string{"default"}, Max: 1})
	apply(t, m, &Command{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID}}})
	r3 := apply(t, m, enq(5*sec, JobSpec{Type: "t", UniqueKey: "k"}))
	if r3.Enqueued[0].Duplicate || r3.Enqueued[0].ID == r1.Enqueued[0].ID {
		t.Fatalf("key of a completed job should be free: %+v", r3.Enqueued[0])
	}
	// retrying the old (now failed/canceled) holder conflicts with the new one
	apply(t, m, &Command{Kind: KindCancel, Now: 6 * sec, ID: r2.Enqueued[1].ID})
	apply(t, m, enq(7*sec, JobSpec{Type: "t", UniqueKey: "k2"}))
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 8 * sec, ID: r2.Enqueued[1].ID}); !errors.Is(r.Err, ErrUniqueConflict) {
		t.Fatalf("retry with key held elsewhere: %v", r.Err)
	}
}

func TestLeaseOrder(t *testing.T) {
	m := New()
	apply(t, m, enq(10*sec,
		JobSpec{Type: "t", Priority: 0},                  // 1
		JobSpec{Type: "t", Priority: 5},                  // 2
		JobSpec{Type: "t", Priority: 0},                  // 3
		JobSpec{Type: "t", Priority: 5},                  // 4
		JobSpec{Type: "t", Priority: 9, RunAt: 20 * sec}, // 5: not yet due
		JobSpec{Queue: "other", Type: "t", Priority: 7},  // 6: other queue
	))
	r := apply(t, m, &Command{Kind: KindLease, Now: 11 * sec, Queues: []string{"default"}, Max: 10, Worker: "w1"})
	var got []uint64
	for _, j := range r.Jobs {
		got = append(got, j.ID)
		if j.State != StateInFlight || j.Attempt != 1 || j.Worker != "w1" || j.LeaseID == 0 || j.StartedAt != 11*sec {
			t.Fatalf("leased job: %+v", j)
		}
		if j.LeaseDeadline != 11*sec+int64(DefaultTimeout)+int64(LeaseGrace) {
			t.Fatalf("lease deadline %d", j.LeaseDeadline)
		}
	}
	if want := []uint64{2, 4, 1, 3}; !equalIDs(got, want) {
		t.Fatalf("lease order %v, want %v", got, want)
	}
	// the scheduled job becomes due; Lease promotes it; across queues the best head wins
	r = apply(t, m, &Command{Kind: KindLease, Now: 20 * sec, Queues: []string{"other", "default", "other"}, Max: 5, LeaseFor: 3 * sec})
	got = got[:0]
	for _, j := range r.Jobs {
		got = append(got, j.ID)
		if j.LeaseDeadline != 23*sec {
			t.Fatalf("explicit lease length ignored: %d", j.LeaseDeadline)
		}
	}
	if want := []uint64{5, 6}; !equalIDs(got, want) || r.Promoted != 1 {
		t.Fatalf("second lease %v promoted %d, want %v and 1", got, r.Promoted, want)
	}
	if r := apply(t, m, &Command{Kind: KindLease, Now: 21 * sec, Queues: []string{"default"}, Max: 1}); len(r.Jobs) != 0 || r.Err != nil {
		t.Fatalf("empty queue lease: %+v", r)
	}
	for _, c := range []*Command{
		{Kind: KindLease, Now: sec, Queues: []string{"default"}, Max: 0},
		{Kind: KindLease, Now: sec, Max: 1},
		{Kind: KindLease, Now: sec, Queues: []string{"default"}, Max: 1, LeaseFor: -1},
	} {
		if r := apply(t, m, c); !errors.Is(r.Err, ErrInvalid) {
			t.Errorf("%+v: want invalid, got %v", c, r.Err)
		}
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func leaseOne(t *testing.T, m *Machine, now int64) Job {
	t.Helper()
	r := apply(t, m, &Command{Kind: KindLease, Now: now, Queues: []string{"default"}, Max: 1, Worker: "w"})
	if len(r.Jobs) != 1 {
		t.Fatalf("nothing to lease at %d", now)
	}
	return r.Jobs[0]
}

func TestAckTransitions(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", MaxAttempts: 2}))
	j := leaseOne(t, m, 2*sec)

	// fail with attempts left: scheduled at RetryAt
	r := apply(t, m, &Command{Kind: KindAck, Now: 3 * sec, Acks: []Ack{{ID: j.ID, LeaseID: j.LeaseID, Fail: true, Error: "boom", RetryAt: 10 * sec}}})
	if r.AckErrs[0] != nil {
		t.Fatal(r.AckErrs[0])
	}
	if g := mustGet(t, m, j.ID); g.State != StateScheduled || g.RunAt != 10*sec || g.LastError != "boom" || g.LeaseID != 0 {
		t.Fatalf("after fail: %+v", g)
	}
	// a duplicate or late report is rejected and changes nothing
	before := m.Digest()
	r = apply(t, m, &Command{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: j.ID, LeaseID: j.LeaseID}}})
	if !errors.Is(r.AckErrs[0], ErrNotInFlight) {
		t.Fatalf("late ack: %v", r.AckErrs[0])
	}
	_ = before

	// due at 10s; second attempt; a stale lease id is rejected
	j2 := leaseOne(t, m, 10*sec)
	if j2.Attempt != 2 || j2.LeaseID == j.LeaseID {
		t.Fatalf("second lease: %+v", j2)
	}
	r = apply(t, m, &Command{Kind: KindAck, Now: 11 * sec, Acks: []Ack{
		{ID: j.ID, LeaseID: j.LeaseID},
		{ID: 999, LeaseID: 1},
		{ID: j.ID, LeaseID: j2.LeaseID, Fail: true, Error: "boom again", RetryAt: 20 * sec},
	}})
	if !errors.Is(r.AckErrs[0], ErrLeaseMismatch) || !errors.Is(r.AckErrs[1], ErrNotFound) || r.AckErrs[2] != nil {
		t.Fatalf("ack errors %v", r.AckErrs)
	}
	// last attempt failed: final
	if g := mustGet(t, m, j.ID); g.State != StateFailed || g.FinishedAt != 11*sec || g.LastError != "boom again" {
		t.Fatalf("after last failure: %+v", g)
	}
	// retry puts it back with attempts reset
	r = apply(t, m, &Command{Kind: KindRetry, Now: 12 * sec, ID: j.ID})
	if r.Err != nil || r.Jobs[0].State != StatePending || r.Jobs[0].Attempt != 0 || r.Jobs[0].FinishedAt != 0 {
		t.Fatalf("retry: %+v", r)
	}
	j3 := leaseOne(t, m, 13*sec)
	r = apply(t, m, &Command{Kind: KindAck, Now: 14 * sec, Acks: []Ack{{ID: j3.ID, LeaseID: j3.LeaseID, Result: `{"ok":true}`}}})
	if g := mustGet(t, m, j.ID); r.AckErrs[0] != nil || g.State != StateCompleted || g.Result != `{"ok":true}` || g.FinishedAt != 14*sec {
		t.Fatalf("complete: %+v %v", g, r.AckErrs)
	}
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 15 * sec, ID: j.ID}); !errors.Is(r.Err, ErrNotRetryable) {
		t.Fatalf("retry of completed: %v", r.Err)
	}
	if r := apply(t, m, &Command{Kind: KindCancel, Now: 15 * sec, ID: j.ID}); !errors.Is(r.Err, ErrFinal) {
		t.Fatalf("cancel of completed: %v", r.Err)
	}
}

func TestFailFinalAndImmediateRetry(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t"}))
	a := leaseOne(t, m, 2*sec)
	b := leaseOne(t, m, 2*sec)
	apply(t, m, &Command{Kind: KindAck, Now: 3 * sec, Acks: []Ack{
		{ID: a.ID, LeaseID: a.LeaseID, Fail: true, Error: "permanent", Final: true},
		{ID: b.ID, LeaseID: b.LeaseID, Fail: true, Error: "retry now"},
	}})
	if g := mustGet(t, m, a.ID); g.State != StateFailed {
		t.Fatalf("final fail: %s", describe(g))
	}
	if g := mustGet(t, m, b.ID); g.State != StatePending || g.RunAt != 3*sec {
		t.Fatalf("retry without RetryAt should be pending now: %+v", g)
	}
}

func TestHeartbeatAndExpiry(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", MaxAttempts: 2, Timeout: sec}))
	j := leaseOne(t, m, sec) // deadline 1+1+5 = 7s
	r := apply(t, m, &Command{Kind: KindHeartbeat, Now: 5 * sec, ID: j.ID, LeaseID: j.LeaseID, LeaseFor: 10 * sec})
	if r.Err != nil || r.Jobs[0].LeaseDeadline != 15*sec {
		t.Fatalf("heartbeat: %+v", r)
	}
	if at, ok := m.NextDue(); !ok || at != 15*sec {
		t.Fatalf("next due %d %v", at, ok)
	}
	if r := apply(t, m, &Command{Kind: KindHeartbeat, Now: 5 * sec, ID: j.ID, LeaseID: j.LeaseID + 1}); !errors.Is(r.Err, ErrLeaseMismatch) {
		t.Fatalf("heartbeat with wrong lease: %v", r.Err)
	}
	// not yet expired at 14s
	if r := apply(t, m, &Command{Kind: KindTick, Now: 14 * sec}); r.Expired != 0 {
		t.Fatalf("expired early: %+v", r)
	}
	r = apply(t, m, &Command{Kind: KindTick, Now: 15 * sec})
	if r.Expired != 1 {
		t.Fatalf("tick at deadline: %+v", r)
	}
	if g := mustGet(t, m, j.ID); g.State != StatePending || g.LastError != "lease expired" {
		t.Fatalf("after expiry: %+v", g)
	}
	// the worker that lost its lease reports late: rejected
	if r := apply(t, m, &Command{Kind: KindAck, Now: 16 * sec, Acks: []Ack{{ID: j.ID, LeaseID: j.LeaseID}}}); !errors.Is(r.AckErrs[0], ErrNotInFlight) {
		t.Fatalf("late ack after expiry: %v", r.AckErrs[0])
	}
	// second attempt expires too: no attempts left, failed
	leaseOne(t, m, 17*sec)
	r = apply(t, m, &Command{Kind: KindTick, Now: 100 * sec})
	if g := mustGet(t, m, j.ID); r.Expired != 1 || g.State != StateFailed {
		t.Fatalf("expiry of last attempt: %+v", g)
	}
}

func TestTickPromotesBounded(t *testing.T) {
	m := New()
	var specs []JobSpec
	for i := 0; i < 10; i++ {
		specs = append(specs, JobSpec{Type: "t", RunAt: int64(10+i) * sec})
	}
	apply(t, m, enq(sec, specs...))
	r := apply(t, m, &Command{Kind: KindTick, Now: 14 * sec, Max: 3})
	if r.Promoted != 3 || !r.More {
		t.Fatalf("bounded tick: %+v", r)
	}
	r = apply(t, m, &Command{Kind: KindTick, Now: 14 * sec})
	if r.Promoted != 2 || r.More {
		t.Fatalf("second tick: %+v", r)
	}
	total, _ := m.Counts()
	if total.Count(StatePending) != 5 || total.Count(StateScheduled) != 5 {
		t.Fatalf("counts: %+v", total)
	}
}

func TestTimeNeverGoesBackwards(t *testing.T) {
	m := New()
	apply(t, m, enq(100*sec, JobSpec{Type: "t"}))
	r := apply(t, m, enq(50*sec, JobSpec{Type: "t", RunAt: 80 * sec}))
	if m.Now() != 100*sec {
		t.Fatalf("clock went back to %d", m.Now())
	}
	if g := mustGet(t, m, r.Enqueued[0].ID); g.CreatedAt != 100*sec || g.State != StatePending {
		t.Fatalf("job proposed with an older clock: %+v", g)
	}
}

func TestCancel(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t", RunAt: 50 * sec}, JobSpec{Type: "t", UniqueKey: "u"}))
	run := leaseOne(t, m, 2*sec) // job 1
	for _, id := range []uint64{1, 2, 3} {
		r := apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: id})
		if r.Err != nil || r.Jobs[0].State != StateCanceled || r.Jobs[0].FinishedAt != 3*sec {
			t.Fatalf("cancel %d: %+v", id, r)
		}
	}
	if r := apply(t, m, &Command{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: run.ID, LeaseID: run.LeaseID}}}); !errors.Is(r.AckErrs[0], ErrCanceled) || errors.Is(r.AckErrs[0], ErrNotInFlight) {
		t.Fatalf("ack of a canceled job: %v, want ErrCanceled (and not ErrNotInFlight)", r.AckErrs[0])
	}
	if r := apply(t, m, enq(5*sec, JobSpec{Type: "t", UniqueKey: "u"})); r.Enqueued[0].Duplicate {
		t.Fatal("canceling should free the unique key")
	}
	if r := apply(t, m, &Command{Kind: KindCancel, Now: 5 * sec, ID: 77}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", r.Err)
	}
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 6 * sec, ID: 2}); r.Err != nil || r.Jobs[0].State != StatePending {
		t.Fatalf("retry canceled: %+v", r)
	}
}

func TestRetryScheduledRunsNow(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", RunAt: 100 * sec}))
	r := apply(t, m, &Command{Kind: KindRetry, Now: 2 * sec, ID: 1})
	if r.Err != nil || r.Jobs[0].State != StatePending || r.Jobs[0].RunAt != 2*sec {
		t.Fatalf("retry scheduled: %+v", r)
	}
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 2 * sec, ID: 1}); !errors.Is(r.Err, ErrNotRetryable) {
		t.Fatalf("retry pending: %v", r.Err)
	}
}

func TestPurge(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t"}, JobSpec{Type: "t"}, JobSpec{Type: "t"}))
	a := leaseOne(t, m, sec)
	apply(t, m, &Command{Kind: KindAck, Now: 10 * sec, Acks: []Ack{{ID: a.ID, LeaseID: a.LeaseID}}}) // completed at 10
	apply(t, m, &Command{Kind: KindCancel, Now: 20 * sec, ID: 2})                                    // canceled at 20
	b := leaseOne(t, m, 20*sec)
	apply(t, m, &Command{Kind: KindAck, Now: 30 * sec, Acks: []Ack{{ID: b.ID, LeaseID: b.LeaseID, Fail: true, Final: true}}}) // failed at 30
	ret := Retention{Completed: 5 * sec, Failed: 50 * sec, Canceled: 15 * sec}
	r := apply(t, m, &Command{Kind: KindPurge, Now: 30 * sec, Retention: ret})
	if r.Purged != 1 { // completed at 10 <= 25; canceled at 20 > 15
		t.Fatalf("purge at 24: %+v", r)
	}
	if _, ok := m.Get(a.ID); ok {
		t.Fatal("purged job still there")
	}
	r = apply(t, m, &Command{Kind: KindPurge, Now: 79 * sec, Retention: ret})
	if r.Purged != 1 { // canceled; failed at 30 > 29
		t.Fatalf("purge at 79: %+v", r)
	}
	r = apply(t, m, &Command{Kind: KindPurge, Now: 80 * sec, Retention: ret, Max: 5})
	if r.Purged != 1 || m.Len() != 1 {
		t.Fatalf("purge at 80: %+v, %d left", r, m.Len())
	}
	// zero retention keeps forever
	r = apply(t, m, &Command{Kind: KindPurge, Now: 1e6 * sec})
	if r.Purged != 0 {
		t.Fatalf("zero retention purged %d", r.Purged)
	}
}

func TestPurgeFreesPages(t *testing.T) {
	m := New()
	n := 3 * pageSize
	specs := make([]JobSpec, n)
	for i := range specs {
		specs[i] = JobSpec{Type: "t"}
	}
	m.Apply(enq(sec, specs...))
	for i := 1; i <= n; i++ {
		m.Apply(&Command{Kind: KindCancel, Now: 2 * sec, ID: uint64(i)})
	}
	m.Apply(&Command{Kind: KindPurge, Now: 10 * sec, Retention: Retention{Canceled: sec}})
	checkInvariants(t, m)
	if m.Len() != 0 || len(m.jobs.pages) != 0 {
		t.Fatalf("%d jobs, %d pages left", m.Len(), len(m.jobs.pages))
	}
	r := m.Apply(enq(11*sec, JobSpec{Type: "t"}))
	if r.Enqueued[0].ID != uint64(n+1) {
		t.Fatalf("ids restart after purge: %d", r.Enqueued[0].ID)
	}
	checkInvariants(t, m)
}

func TestRecoverInFlight(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t", MaxAttempts: 1}))
	a := leaseOne(t, m, sec)
	b := leaseOne(t, m, sec)
	r := apply(t, m, &Command{Kind: KindRecover, Now: 2 * sec})
	if r.Expired != 2 {
		t.Fatalf("recover: %+v", r)
	}
	if g := mustGet(t, m, a.ID); g.State != StatePending || g.Attempt != 1 {
		t.Fatalf("in-flight job with attempts left: %+v", g)
	}
	if g := mustGet(t, m, b.ID); g.State != StateFailed {
		t.Fatalf("in-flight job without attempts left: %+v", g)
	}
}

func TestListAndCounts(t *testing.T) {
	m := New()
	for i := 0; i < 10; i++ {
		q := "a"
		if i%2 == 1 {
			q = "b"
		}
		apply(t, m, enq(sec, JobSpec{Queue: q, Type: "t"}))
	}
	apply(t, m, &Command{Kind: KindCancel, Now: 2 * sec, ID: 3})
	var ids []uint64
	var cursor uint64
	for {
		jobs, next := m.List(Filter{Queue: "a", State: StatePending, After: cursor, Limit: 2})
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if want := []uint64{1, 5, 7, 9}; !equalIDs(ids, want) {
		t.Fatalf("list %v, want %v", ids, want)
	}
	total, queues := m.Counts()
	if total.Count(StatePending) != 9 || total.Count(StateCanceled) != 1 || len(queues) != 2 || queues[0].Queue != "a" || queues[0].Count(StatePending) != 4 {
		t.Fatalf("counts %+v %+v", total, queues)
	}
	if !m.Runnable([]string{"b"}, nil, 0) || m.Runnable([]string{"zzz"}, nil, 0) || m.Runnable(nil, []string{"other"}, 0) || !m.Runnable(nil, []string{"t"}, 0) {
		t.Fatal("Runnable")
	}
}

func TestUnknownKindRejected(t *testing.T) {
	m := New()
	if r := m.Apply(&Command{Kind: 99, Now: 1}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("unknown kind: %v", r.Err)
	}
}

func TestLeaseByType(t *testing.T) {
	m := New()
	apply(t, m, enq(sec,
		JobSpec{Type: "remote", Priority: 9}, // 1: only remote workers run it
		JobSpec{Type: "local"},               // 2
		JobSpec{Queue: "b", Type: "local"},   // 3
		JobSpec{Queue: "b", Type: "remote"},  // 4
	))
	// types only: any queue
	r := apply(t, m, &Command{Kind: KindLease, Now: 2 * sec, Types: []string{"local"}, Max: 10})
	if got := []uint64{r.Jobs[0].ID, r.Jobs[1].ID}; len(r.Jobs) != 2 || !equalIDs(got, []uint64{2, 3}) {
		t.Fatalf("lease by type: %+v", r.Jobs)
	}
	// queue and type
	r = apply(t, m, &Command{Kind: KindLease, Now: 2 * sec, Queues: []string{"b"}, Types: []string{"remote"}, Max: 10})
	if len(r.Jobs) != 1 || r.Jobs[0].ID != 4 {
		t.Fatalf("lease by queue and type: %+v", r.Jobs)
	}
	if !m.Runnable([]string{"default"}, nil, 0) || m.Runnable(nil, []string{"local"}, 0) {
		t.Fatal("Runnable by type")
	}
}

func TestTotalsAndUnfinished(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t", RunAt: 9 * sec}, JobSpec{Type: "t"}))
	leaseOne(t, m, sec)
	apply(t, m, &Command{Kind: KindCancel, Now: sec, ID: 3})
	tot := m.Totals()
	if m.Unfinished() != 2 || tot.Count(StateInFlight) != 1 || tot.Count(StateScheduled) != 1 || tot.Count(StateCanceled) != 1 {
		t.Fatalf("unfinished %d, totals %+v", m.Unfinished(), tot)
	}
}

func TestLeaseAppliesAcksFirst(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", Priority: 9}, JobSpec{Type: "t"}))
	a := leaseOne(t, m, sec) // job 1
	// report job 1 failed (retry now) and ask for 2 jobs in one command:
	// the failed job is back in the queue before the lease picks
	r := apply(t, m, &Command{Kind: KindLease, Now: 2 * sec, Queues: []string{"default"}, Max: 2,
		Acks: []Ack{{ID: a.ID, LeaseID: a.LeaseID, Fail: true, Error: "x"}, {ID: 99, LeaseID: 1}}})
	if len(r.AckErrs) != 2 || r.AckErrs[0] != nil || !errors.Is(r.AckErrs[1], ErrNotFound) {
		t.Fatalf("ack errors: %v", r.AckErrs)
	}
	if len(r.Jobs) != 2 || r.Jobs[0].ID != 1 || r.Jobs[0].Attempt != 2 || r.Jobs[1].ID != 2 {
		t.Fatalf("leased after the acks: %+v", r.Jobs)
	}
}
