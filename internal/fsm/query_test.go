package fsm

import (
	"math"
	"slices"
	"testing"
)

// listAll pages through List with f, following the cursor, and returns the
// ids in the order they came.
func listAll(m *Machine, f Filter) []uint64 {
	var ids []uint64
	for {
		jobs, next := m.List(f)
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if next == 0 {
			return ids
		}
		if f.Desc {
			f.Before = next
		} else {
			f.After = next
		}
	}
}

func TestListDescending(t *testing.T) {
	m := New()
	for i := 0; i < 10; i++ {
		q := "a"
		if i%2 == 1 {
			q = "b"
		}
		apply(t, m, enq(sec, JobSpec{Queue: q, Type: "t"}))
	}
	apply(t, m, &Command{Kind: KindCancel, Now: 2 * sec, ID: 9})
	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"all", Filter{Desc: true, Limit: 3}, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"filtered", Filter{Queue: "a", State: StatePending, Desc: true, Limit: 2}, []uint64{7, 5, 3, 1}},
		{"before", Filter{Desc: true, Before: 4}, []uint64{3, 2, 1}},
		{"before the first", Filter{Desc: true, Before: 1}, nil},
		{"before beyond the last", Filter{Desc: true, Before: 1 << 40}, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"after is ignored", Filter{Desc: true, After: 5, Limit: 4}, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"no match", Filter{Queue: "zzz", Desc: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listAll(m, tt.f); !slices.Equal(got, tt.want) {
				t.Fatalf("ids %v, want %v", got, tt.want)
			}
		})
	}
}

// Descending order walks pages of the id index backwards, across empty
// pages that purges leave.
func TestListDescendingAcrossPages(t *testing.T) {
	m := New()
	n := 3*pageSize + 7
	specs := make([]JobSpec, n)
	for i := range specs {
		specs[i] = JobSpec{Type: "t"}
	}
	apply(t, m, enq(sec, specs...))
	// finish and purge the whole second page, and one job of the first
	for id := uint64(pageSize); id < 2*pageSize; id++ {
		m.Apply(&Command{Kind: KindCancel, Now: 2 * sec, ID: id}) // apply checks invariants: too slow here
	}
	apply(t, m, &Command{Kind: KindCancel, Now: 2 * sec, ID: 100})
	apply(t, m, &Command{Kind: KindPurge, Now: 10 * sec, Retention: Retention{Canceled: sec}})
	var want []uint64
	m.jobs.ascend(0, func(j *job) bool { want = append(want, j.id); return true })
	slices.Reverse(want)
	if len(want) != n-pageSize-1 {
		t.Fatalf("%d jobs left, want %d", len(want), n-pageSize-1)
	}
	for _, limit := range []int{1, 100, 1000} {
		if got := listAll(m, Filter{Desc: true, Limit: limit}); !slices.Equal(got, want) {
			t.Fatalf("limit %d: %d ids (first %v), want %d", limit, len(got), got[:min(5, len(got))], len(want))
		}
	}
	// and ascending still agrees
	asc := listAll(m, Filter{Limit: 1000})
	slices.Reverse(asc)
	if !slices.Equal(asc, want) {
		t.Fatal("ascending and descending lists differ")
	}
}

func TestDepths(t *testing.T) {
	m := New()
	if d := m.Depths(); len(d) != 0 {
		t.Fatalf("empty machine: %+v", d)
	}
	// queue a: pending jobs of two types and several priorities; the oldest
	// runnable one has a low priority, so it is not first in lease order.
	apply(t, m, enq(10*sec, JobSpec{Queue: "a", Type: "x", Priority: 0}))                    // 1, run_at 10
	apply(t, m, enq(20*sec, JobSpec{Queue: "a", Type: "x", Priority: 5}))                    // 2, run_at 20
	apply(t, m, enq(30*sec, JobSpec{Queue: "a", Type: "y", Priority: math.MinInt32}))        // 3, run_at 30
	apply(t, m, enq(40*sec, JobSpec{Queue: "a", Type: "y", Priority: math.MaxInt32}))        // 4, run_at 40
	apply(t, m, enq(50*sec, JobSpec{Queue: "a", Type: "x", RunAt: 1000 * sec}))              // 5, scheduled
	apply(t, m, enq(60*sec, JobSpec{Queue: "b", Type: "x"}))                                 // 6
	apply(t, m, enq(60*sec, JobSpec{Queue: "c", Type: "x"}, JobSpec{Queue: "c", Type: "x"})) // 7, 8
	apply(t, m, &Command{Kind: KindCancel, Now: 70 * sec, ID: 6})
	apply(t, m, &Command{Kind: KindLease, Now: 80 * sec, Queues: []string{"c"}, Max: 2, Worker: "w"})

	want := []QueueDepth{
		{Queue: "a", Unfinished: 5, Pending: 4, OldestPending: 10 * sec},
		{Queue: "b"}, // only a canceled job
		{Queue: "c", Unfinished: 2},
	}
	if got := m.Depths(); !slices.Equal(got, want) {
		t.Fatalf("depths\n got %+v\nwant %+v", got, want)
	}

	// the oldest job leaves: the next oldest is the one of the lowest
	// priority, in the other type
	apply(t, m, &Command{Kind: KindCancel, Now: 90 * sec, ID: 1})
	if got := m.Depths()[0]; got.OldestPending != 20*sec || got.Pending != 3 {
		t.Fatalf("after cancel: %+v", got)
	}
	apply(t, m, &Command{Kind: KindCancel, Now: 90 * sec, ID: 2})
	if got := m.Depths()[0]; got.OldestPending != 30*sec {
		t.Fatalf("after second cancel: %+v", got)
	}
	// a retried job is runnable since its retry
	apply(t, m, &Command{Kind: KindRetry, Now: 100 * sec, ID: 1})
	apply(t, m, &Command{Kind: KindCancel, Now: 100 * sec, ID: 3})
	apply(t, m, &Command{Kind: KindCancel, Now: 100 * sec, ID: 4})
	if got := m.Depths()[0]; got.OldestPending != 100*sec || got.Pending != 1 || got.Unfinished != 2 {
		t.Fatalf("after retry: %+v", got)
	}
}

// Depths agrees with a scan of every job.
func TestDepthsMatchesScan(t *testing.T) {
	m := New()
	now := sec
	for i := 0; i < 500; i++ {
		now += sec
		q := []string{"a", "b", "c"}[i%3]
		apply(t, m, enq(now, JobSpec{Queue: q, Type: []string{"x", "y"}[i%2], Priority: int32(i % 7)}))
		if i%5 == 0 {
			apply(t, m, &Command{Kind: KindCancel, Now: now, ID: uint64(i/2 + 1)})
		}
		if i%11 == 0 {
			apply(t, m, &Command{Kind: KindLease, Now: now, Max: 3, Worker: "w"})
		}
	}
	want := map[string]QueueDepth{}
	m.jobs.ascend(0, func(j *job) bool {
		d := want[j.cls.q.name]
		d.Queue = j.cls.q.name
		if !j.state.Final() {
			d.Unfinished++
		}
		if j.state == StatePending {
			d.Pending++
			if d.OldestPending == 0 || j.runAt < d.OldestPending {
				d.OldestPending = j.runAt
			}
		}
		want[j.cls.q.name] = d
		return true
	})
	got := m.Depths()
	if len(got) != len(want) {
		t.Fatalf("%d queues, want %d", len(got), len(want))
	}
	for _, d := range got {
		if d != want[d.Queue] {
			t.Fatalf("queue %s: %+v, want %+v", d.Queue, d, want[d.Queue])
		}
	}
}
