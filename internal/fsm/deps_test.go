package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func dep(ids ...uint64) *Deps { return &Deps{On: ids} }

// finishJob leases job id alone (from its queue) and acks it.
func finishJob(t *testing.T, m *Machine, now int64, id uint64, fail bool) {
	t.Helper()
	j := mustGet(t, m, id)
	if j.State != StatePending {
		t.Fatalf("finishJob: %s", describe(j))
	}
	// cancel-free way to lease exactly this job: raise nothing, lease until it comes
	for {
		r := apply(t, m, &Command{Kind: KindLease, Now: now, Queues: []string{j.Queue}, Max: 1})
		if len(r.Jobs) == 0 {
			t.Fatalf("job %d not leasable", id)
		}
		l := r.Jobs[0]
		a := Ack{ID: l.ID, LeaseID: l.LeaseID, Fail: fail && l.ID == id, Final: true, Error: "boom"}
		apply(t, m, &Command{Kind: KindAck, Now: now, Acks: []Ack{a}})
		if l.ID == id {
			return
		}
	}
}

func TestDependsOnTransitions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		run      bool
		end      func(t *testing.T, m *Machine, id uint64) // how dependency 1 ends
		want     State                                     // of the dependent
		lastErr  string
		canceled int // Result.DepCanceled of the command that ends 1
	}{
		{"completed", false, func(t *testing.T, m *Machine, id uint64) { finishJob(t, m, 3*sec, id, false) }, StatePending, "", 0},
		{"failed", false, func(t *testing.T, m *Machine, id uint64) { finishJob(t, m, 3*sec, id, true) }, StateCanceled, "dependency 1 failed", 1},
		{"canceled", false, func(t *testing.T, m *Machine, id uint64) {
			apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: id})
		}, StateCanceled, "dependency 1 canceled", 1},
		{"failed, run anyway", true, func(t *testing.T, m *Machine, id uint64) { finishJob(t, m, 3*sec, id, true) }, StatePending, "", 0},
		{"canceled, run anyway", true, func(t *testing.T, m *Machine, id uint64) {
			apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: id})
		}, StatePending, "", 0},
		{"lease expired for good", false, func(t *testing.T, m *Machine, id uint64) {
			apply(t, m, &Command{Kind: KindLease, Now: 3 * sec, Queues: []string{"a"}, Max: 1, LeaseFor: sec})
			apply(t, m, &Command{Kind: KindTick, Now: 5 * sec})
		}, StateCanceled, "dependency 1 failed", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			apply(t, m, enq(sec, JobSpec{Queue: "a", Type: "t", MaxAttempts: 1}, JobSpec{Queue: "b", Type: "t"}))
			r := apply(t, m, enq(2*sec, JobSpec{Queue: "c", Type: "t", Deps: &Deps{On: []uint64{1, 2}, RunOnFailure: tc.run}}))
			if r.Err != nil || r.Enqueued[0].State != StateBlocked {
				t.Fatalf("enqueue with deps: %+v", r)
			}
			d := mustGet(t, m, 3)
			if d.State != StateBlocked || !slices.Equal(d.Deps.On, []uint64{1, 2}) || !slices.Equal(d.Deps.Waiting, []uint64{1, 2}) {
				t.Fatalf("dependent: %+v deps %+v", d, d.Deps)
			}
			if l := apply(t, m, &Command{Kind: KindLease, Now: 2 * sec, Queues: []string{"c"}, Max: 5}); len(l.Jobs) != 0 {
				t.Fatalf("a blocked job was leased: %+v", l.Jobs)
			}
			tc.end(t, m, 1)
			d = mustGet(t, m, 3)
			if tc.want == StateCanceled {
				if d.State != StateCanceled || d.LastError != tc.lastErr || d.FinishedAt != 3*sec && d.FinishedAt != 5*sec {
					t.Fatalf("dependent after dependency 1 ended: %+v", d)
				}
				if len(d.Deps.Waiting) != 0 {
					t.Fatalf("a canceled job still waits: %+v", d.Deps)
				}
				return
			}
			// still blocked on 2
			if d.State != StateBlocked || !slices.Equal(d.Deps.Waiting, []uint64{2}) {
				t.Fatalf("dependent after 1 ended: %s waiting %v", d.State, d.Deps.Waiting)
			}
			finishJob(t, m, 4*sec, 2, false)
			d = mustGet(t, m, 3)
			if d.State != StatePending || d.RunAt != 4*sec || len(d.Deps.Waiting) != 0 {
				t.Fatalf("dependent after all ended: %+v", d)
			}
		})
	}
}

func TestDependsOnResultCounts(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}))
	apply(t, m, enq(sec, JobSpec{Queue: "x", Type: "t", Deps: dep(1)}, JobSpec{Queue: "x", Type: "t", Deps: dep(1)}))
	l := apply(t, m, &Command{Kind: KindLease, Now: 2 * sec, Queues: []string{"default"}, Max: 1})
	r := apply(t, m, &Command{Kind: KindAck, Now: 3 * sec, Acks: []Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID}}})
	if r.Unblocked != 2 || r.DepCanceled != 0 {
		t.Fatalf("ack of the dependency: unblocked %d, canceled %d", r.Unblocked, r.DepCanceled)
	}
	// a lease that carries the ack counts too, and sees the released job at once
	apply(t, m, enq(4*sec, JobSpec{Type: "t"}))
	apply(t, m, enq(4*sec, JobSpec{Queue: "default", Type: "t", Priority: 9, Deps: dep(4)}))
	l = apply(t, m, &Command{Kind: KindLease, Now: 5 * sec, Queues: []string{"default"}, Max: 1})
	r = apply(t, m, &Command{Kind: KindLease, Now: 6 * sec, Queues: []string{"default"}, Max: 1,
		Acks: []Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID}}})
	if r.Unblocked != 1 || len(r.Jobs) != 1 || r.Jobs[0].ID != 5 {
		t.Fatalf("lease with the dependency's ack: %+v", r)
	}
}

func TestDependsOnAtEnqueue(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t"}))
	finishJob(t, m, 2*sec, 1, false)
	apply(t, m, &Command{Kind: KindCancel, Now: 2 * sec, ID: 2})
	for _, tc := range []struct {
		name string
		spec JobSpec
		want State
		err  string
	}{
		{"on a completed job: runnable at once", JobSpec{Type: "t", Deps: dep(1)}, StatePending, ""},
		{"on a canceled job: canceled at once", JobSpec{Type: "t", Deps: dep(1, 2)}, StateCanceled, "dependency 2 canceled"},
		{"on a canceled job, run anyway", JobSpec{Type: "t", Deps: &Deps{On: []uint64{2}, RunOnFailure: true}}, StatePending, ""},
		{"delayed, dependency done: scheduled", JobSpec{Type: "t", RunAt: 100 * sec, Deps: dep(1)}, StateScheduled, ""},
	} {
		r := apply(t, m, enq(3*sec, tc.spec))
		if r.Err != nil || r.Enqueued[0].State != tc.want {
			t.Errorf("%s: %+v", tc.name, r)
			continue
		}
		if j := mustGet(t, m, r.Enqueued[0].ID); j.LastError != tc.err {
			t.Errorf("%s: last error %q", tc.name, j.LastError)
		}
	}
	// a delayed dependent waits for both: blocked, then scheduled, then pending when due
	r := apply(t, m, enq(3*sec, JobSpec{Queue: "q", Type: "t"}, JobSpec{Queue: "q", Type: "t", RunAt: 10 * sec, Deps: &Deps{OnIndex: []int{0}}}))
	a, b := r.Enqueued[0].ID, r.Enqueued[1].ID
	if r.Enqueued[1].State != StateBlocked {
		t.Fatalf("delayed dependent: %+v", r.Enqueued[1])
	}
	finishJob(t, m, 4*sec, a, false)
	if j := mustGet(t, m, b); j.State != StateScheduled || j.RunAt != 10*sec {
		t.Fatalf("delayed dependent after its dependency: %s", describe(j))
	}
}

func TestDependsOnRejected(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}))
	var inv *InvalidError
	for _, tc := range []struct {
		specs []JobSpec
		index int
		field string
	}{
		{[]JobSpec{{Type: "t", Deps: dep(7)}}, 0, "depends_on[0]"},
		{[]JobSpec{{Type: "t", Deps: dep(1, 0)}}, 0, "depends_on[1]"},
		{[]JobSpec{{Type: "t", Deps: &Deps{OnIndex: []int{0}}}}, 0, "depends_on_index[0]"},
		{[]JobSpec{{Type: "t"}, {Type: "t", Deps: &Deps{OnIndex: []int{1}}}}, 1, "depends_on_index[0]"},
		{[]JobSpec{{Type: "t"}, {Type: "t", Deps: &Deps{OnIndex: []int{0, -1}}}}, 1, "depends_on_index[1]"},
		{[]JobSpec{{Type: "t"}, {Type: "t", Deps: dep(2)}}, 1, "depends_on[0]"}, // an id of its own batch: not yet a job
		{[]JobSpec{{Type: "t", Deps: &Deps{RunOnFailure: true}}}, 0, "on_dependency_failure"},
		{[]JobSpec{{Type: "t", Deps: &Deps{On: make([]uint64, MaxDeps+1)}}}, 0, "depends_on"},
	} {
		r := apply(t, m, enq(2*sec, tc.specs...))
		if !errors.As(r.Err, &inv) || inv.Index != tc.index || inv.Field != tc.field {
			t.Errorf("%+v: want invalid %s at %d, got %v", tc.specs, tc.field, tc.index, r.Err)
		}
	}
	if m.Len() != 1 {
		t.Fatalf("rejected enqueues stored jobs: %d", m.Len())
	}
}

func TestDependsOnBatchIndexAndDuplicates(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", UniqueKey: "k"}))
	r := apply(t, m, enq(2*sec,
		JobSpec{Type: "t", UniqueKey: "k"}, // duplicate of 1
		JobSpec{Type: "t"},                 // 2
		JobSpec{Type: "t", Deps: &Deps{On: []uint64{1}, OnIndex: []int{0, 1, 1}}}, // 3: on 1 (twice) and 2
	))
	if r.Err != nil || !r.Enqueued[0].Duplicate {
		t.Fatalf("%+v", r)
	}
	j := mustGet(t, m, r.Enqueued[2].ID)
	if !slices.Equal(j.Deps.On, []uint64{1, 2}) || !slices.Equal(j.Deps.Waiting, []uint64{1, 2}) {
		t.Fatalf("dependencies by index and id: %+v", j.Deps)
	}
}

func TestDependsOnCascade(t *testing.T) {
	const n = 10_000
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}))
	// a chain: 2 on 1, 3 on 2, ..., in batches
	for id := uint64(2); id <= n; {
		var specs []JobSpec
		for k := 0; k < 1000 && id <= n; k++ {
			d := &Deps{On: []uint64{id - 1}}
			if k > 0 {
				d = &Deps{OnIndex: []int{k - 1}}
			}
			specs = append(specs, JobSpec{Queue: "chain", Type: "t", Deps: d})
			id++
		}
		if r := m.Apply(enq(2*sec, specs...)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	checkInvariants(t, m)
	r := apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: 1})
	if r.DepCanceled != n-1 {
		t.Fatalf("cascade canceled %d, want %d", r.DepCanceled, n-1)
	}
	for id := uint64(2); id <= n; id += 997 {
		j := mustGet(t, m, id)
		if j.State != StateCanceled || j.LastError != fmt.Sprintf("dependency %d canceled", id-1) {
			t.Fatalf("%s: %q", describe(j), j.LastError)
		}
	}
	if m.waits.Len() != 0 {
		t.Fatalf("%d edges left", m.waits.Len())
	}
}

func TestDependsOnRetry(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", MaxAttempts: 1}, JobSpec{Queue: "slow", Type: "t"}))
	apply(t, m, enq(sec, JobSpec{Queue: "d", Type: "t", Deps: dep(1, 2)})) // 3
	finishJob(t, m, 2*sec, 1, true)
	if j := mustGet(t, m, 3); j.State != StateCanceled {
		t.Fatalf("%s", describe(j))
	}
	// a retry by hand: it no longer waits for the failed 1, but for 2 again
	r := apply(t, m, &Command{Kind: KindRetry, Now: 3 * sec, ID: 3})
	if r.Err != nil || r.Jobs[0].State != StateBlocked || !slices.Equal(r.Jobs[0].Deps.Waiting, []uint64{2}) {
		t.Fatalf("retry of the dependent: %+v", r)
	}
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 3 * sec, ID: 3}); !errors.Is(r.Err, ErrNotRetryable) {
		t.Fatalf("retry of a blocked job: %v", r.Err)
	}
	// cancel of a blocked job: canceled, waits for nothing
	if r := apply(t, m, &Command{Kind: KindCancel, Now: 4 * sec, ID: 3}); r.Err != nil || r.Jobs[0].State != StateCanceled || len(r.Jobs[0].Deps.Waiting) != 0 {
		t.Fatalf("cancel of a blocked job: %+v", r)
	}
	// retry once 2 completed: pending
	finishJob(t, m, 5*sec, 2, false)
	if r := apply(t, m, &Command{Kind: KindRetry, Now: 6 * sec, ID: 3}); r.Err != nil || r.Jobs[0].State != StatePending {
		t.Fatalf("retry with every dependency done: %+v", r)
	}
}

// Purging a dependency after it completed changes nothing for its
// dependents, and a state with dependencies survives a snapshot and a delta.
func TestDependsOnSnapshotAndDelta(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t"}, JobSpec{Type: "t", Deps: &Deps{OnIndex: []int{0, 1}, RunOnFailure: true}}))
	mark := m.Capture()
	base := writeFull(t, mark)
	finishJob(t, m, 2*sec, 1, false)
	apply(t, m, &Command{Kind: KindPurge, Now: 10 * sec, Retention: Retention{Completed: sec}})
	if _, ok := m.Get(1); ok {
		t.Fatal("job 1 not purged")
	}
	if j := mustGet(t, m, 3); j.State != StateBlocked || !slices.Equal(j.Deps.Waiting, []uint64{2}) {
		t.Fatalf("after the purge of a completed dependency: %+v", j.Deps)
	}
	snap := m.Capture()
	full := writeFull(t, snap)
	r := New()
	if err := r.Restore(bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r)
	if r.Digest() != m.Digest() {
		t.Fatal("restored state differs")
	}
	chained := restoreChain(t, base, writeDelta(t, snap, mark.Mark()))
	checkInvariants(t, chained)
	if chained.Digest() != m.Digest() {
		t.Fatal("delta chain differs")
	}
	// both behave the same: the last dependency fails, the dependent runs
	for _, x := range []*Machine{m, r, chained} {
		apply(t, x, &Command{Kind: KindCancel, Now: 11 * sec, ID: 2})
		if j := mustGet(t, x, 3); j.State != StatePending {
			t.Fatalf("%s", describe(j))
		}
	}
	if r.Digest() != m.Digest() || chained.Digest() != m.Digest() {
		t.Fatal("states differ after the same command")
	}
}

func TestDependsOnCodec(t *testing.T) {
	c := enq(sec, JobSpec{Type: "t"}, JobSpec{Type: "t", Deps: &Deps{On: []uint64{5, 1 << 40}, OnIndex: []int{0}, RunOnFailure: true}})
	b := AppendCommand(nil, c)
	if b[0] != codecVersionV2 {
		t.Fatalf("an enqueue with dependencies wrote codec version %d", b[0])
	}
	d, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Jobs[1].Deps; got == nil || !slices.Equal(got.On, c.Jobs[1].Deps.On) || !slices.Equal(got.OnIndex, []int{0}) || !got.RunOnFailure || d.Jobs[0].Deps != nil {
		t.Fatalf("decoded %+v", d.Jobs)
	}
	// without dependencies: version 1, byte for byte as before
	if b := AppendCommand(nil, enq(sec, JobSpec{Type: "t"})); b[0] != codecVersion {
		t.Fatalf("a plain enqueue wrote codec version %d", b[0])
	}
}
