package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func setQueue(now int64, name string, set QueueFields, s QueueSettings) *Command {
	return &Command{Kind: KindSetQueue, Now: now, Queue: &QueueChange{Queue: name, Set: set, Settings: s}}
}

func lease(now int64, max int, queues ...string) *Command {
	return &Command{Kind: KindLease, Now: now, Queues: queues, Max: max, Worker: "w", LeaseFor: 100 * sec}
}

func leasedIDs(r Result) []uint64 {
	var ids []uint64
	for _, j := range r.Jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestPauseAndResume(t *testing.T) {
	m := New()
	// pausing a queue that holds no job yet works and applies when jobs come
	r := apply(t, m, setQueue(sec, "q", SetPaused, QueueSettings{Paused: true}))
	if r.Err != nil || r.Queue == nil || !r.Queue.Settings.Paused || r.Queue.Queue != "q" {
		t.Fatalf("pause: %+v", r)
	}
	apply(t, m, enq(2*sec, JobSpec{Queue: "q", Type: "t"}, JobSpec{Queue: "q", Type: "t", RunAt: 3 * sec}, JobSpec{Queue: "other", Type: "t"}))
	if m.Runnable([]string{"q"}, nil, 2*sec) {
		t.Fatal("a paused queue is runnable")
	}
	if !m.Runnable(nil, []string{"t"}, 2*sec) {
		t.Fatal("the other queue is not runnable")
	}
	// a lease of both queues (or of the type, as the in-process pool asks)
	// skips the paused one
	if got := leasedIDs(apply(t, m, lease(2*sec, 5, "q", "other"))); !equalIDs(got, []uint64{3}) {
		t.Fatalf("lease of a paused and a running queue: %v, want [3]", got)
	}
	if got := apply(t, m, &Command{Kind: KindLease, Now: 2 * sec, Types: []string{"t"}, Max: 5}); len(got.Jobs) != 0 {
		t.Fatalf("lease by type took %v from a paused queue", leasedIDs(got))
	}
	// a due scheduled job of a paused queue is promoted, but not leased
	tick := apply(t, m, &Command{Kind: KindTick, Now: 4 * sec})
	if tick.Promoted != 1 || m.Runnable([]string{"q"}, nil, 4*sec) {
		t.Fatalf("tick in a paused queue: %+v, runnable %v", tick, m.Runnable([]string{"q"}, nil, 4*sec))
	}
	info := m.QueueInfo("q")
	if info.Blocked(4*sec) != "paused" || info.Count(StatePending) != 2 {
		t.Fatalf("queue info %+v, blocked %q", info, info.Blocked(4*sec))
	}
	// resuming: the jobs are leasable again, in their order
	if r := apply(t, m, setQueue(5*sec, "q", SetPaused, QueueSettings{})); r.Err != nil || r.Queue.Settings.Paused {
		t.Fatalf("resume: %+v", r)
	}
	if !m.Runnable([]string{"q"}, nil, 5*sec) {
		t.Fatal("a resumed queue is not runnable")
	}
	if got := leasedIDs(apply(t, m, lease(5*sec, 5, "q"))); !equalIDs(got, []uint64{1, 2}) {
		t.Fatalf("lease after resume: %v", got)
	}
	// a queue whose settings are all cleared has none left
	if m.queues["q"].ctl != nil {
		t.Fatal("cleared settings kept")
	}
}

func TestPauseDoesNotStopRunningJobs(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Queue: "q", Type: "t"}, JobSpec{Queue: "q", Type: "t"}))
	l := apply(t, m, lease(sec, 1, "q"))
	apply(t, m, setQueue(2*sec, "q", SetPaused, QueueSettings{Paused: true}))
	j := l.Jobs[0]
	if r := apply(t, m, &Command{Kind: KindHeartbeat, Now: 3 * sec, ID: j.ID, LeaseID: j.LeaseID, LeaseFor: sec}); r.Err != nil {
		t.Fatalf("heartbeat in a paused queue: %v", r.Err)
	}
	if r := apply(t, m, &Command{Kind: KindAck, Now: 3 * sec, Acks: []Ack{{ID: j.ID, LeaseID: j.LeaseID}}}); r.AckErrs[0] != nil {
		t.Fatalf("ack in a paused queue: %v", r.AckErrs[0])
	}
	if r := apply(t, m, enq(4*sec, JobSpec{Queue: "q", Type: "t"})); r.Err != nil || r.Enqueued[0].State != StatePending {
		t.Fatalf("enqueue to a paused queue: %+v", r)
	}
	if got := mustGet(t, m, 1).State; got != StateCompleted {
		t.Fatalf("job 1 is %s", got)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	m := New()
	apply(t, m, setQueue(sec, "q", SetConcurrency, QueueSettings{Concurrency: 2}))
	specs := make([]JobSpec, 5)
	for i := range specs {
		specs[i] = JobSpec{Queue: "q", Type: "t"}
	}
	apply(t, m, enq(sec, specs...))
	// two workers (in-process or remote: one machine) share the limit
	a := apply(t, m, lease(2*sec, 1, "q"))
	b := apply(t, m, lease(2*sec, 5, "q"))
	if len(a.Jobs) != 1 || len(b.Jobs) != 1 {
		t.Fatalf("leases under a limit of 2: %v and %v", leasedIDs(a), leasedIDs(b))
	}
	if m.Runnable([]string{"q"}, nil, 2*sec) || m.QueueInfo("q").Blocked(2*sec) != "concurrency" {
		t.Fatal("a queue at its concurrency limit is runnable")
	}
	if got := apply(t, m, lease(2*sec, 5, "q")); len(got.Jobs) != 0 {
		t.Fatalf("lease beyond the limit: %v", leasedIDs(got))
	}
	// a finished job frees a slot (Ack wakes the waiters); an ack carried
	// by a lease frees it for that same lease
	if !KindAck.Wakes() {
		t.Fatal("an ack does not wake waiters")
	}
	r := apply(t, m, &Command{Kind: KindLease, Now: 3 * sec, Queues: []string{"q"}, Max: 5,
		Acks: []Ack{{ID: a.Jobs[0].ID, LeaseID: a.Jobs[0].LeaseID}}})
	if r.AckErrs[0] != nil || len(r.Jobs) != 1 {
		t.Fatalf("lease with an ack that frees a slot: %+v", r)
	}
	// expired leases free their slots too
	if tick := apply(t, m, &Command{Kind: KindTick, Now: 200 * sec}); tick.Expired != 2 {
		t.Fatalf("tick: %+v", tick)
	}
	if got := apply(t, m, lease(200*sec, 5, "q")); len(got.Jobs) != 2 {
		t.Fatalf("after the leases of jobs %d and %d expired: %v", b.Jobs[0].ID, r.Jobs[0].ID, leasedIDs(got))
	}
	// raising the limit makes more leasable at once
	if !KindSetQueue.Wakes() {
		t.Fatal("a queue change does not wake waiters")
	}
	apply(t, m, setQueue(201*sec, "q", SetConcurrency, QueueSettings{Concurrency: 4}))
	if got := apply(t, m, lease(201*sec, 5, "q")); len(got.Jobs) != 2 {
		t.Fatalf("after raising the limit to 4: %v", leasedIDs(got))
	}
	if n := m.QueueInfo("q").Count(StateInFlight); n != 4 {
		t.Fatalf("%d in flight, want 4", n)
	}
}

func TestRateLimit(t *testing.T) {
	m := New()
	apply(t, m, setQueue(sec, "q", SetRate, QueueSettings{RateLimit: 3, RatePeriod: 10 * sec}))
	specs := make([]JobSpec, 10)
	for i := range specs {
		specs[i] = JobSpec{Queue: "q", Type: "t"}
	}
	apply(t, m, enq(sec, specs...))
	apply(t, m, enq(sec, JobSpec{Queue: "free", Type: "t"}))
	// the first lease opens a window at 100s: three leases in it
	if got := apply(t, m, lease(100*sec, 2, "q")); len(got.Jobs) != 2 {
		t.Fatalf("first lease: %v", leasedIDs(got))
	}
	if got := apply(t, m, lease(104*sec, 5, "q", "free")); !equalIDs(leasedIDs(got), []uint64{3, 11}) {
		t.Fatalf("second lease: %v, want the last of the window and the free queue's job", leasedIDs(got))
	}
	info := m.QueueInfo("q")
	if info.RateUsed != 3 || info.RateStart != 100*sec || info.RateResetAt() != 110*sec || info.Blocked(105*sec) != "rate" {
		t.Fatalf("window %+v, blocked %q", info, info.Blocked(105*sec))
	}
	// until the window ends nothing is leasable; waiters learn when it ends
	if m.Runnable([]string{"q"}, nil, 109*sec) {
		t.Fatal("runnable inside a used-up window")
	}
	if at, ok := m.RateReopens([]string{"q"}, nil); !ok || at != 110*sec {
		t.Fatalf("RateReopens = %d, %v; want 110s", at, ok)
	}
	if _, ok := m.RateReopens([]string{"free"}, nil); ok {
		t.Fatal("RateReopens for a queue without a limit")
	}
	if got := apply(t, m, lease(109*sec, 5, "q")); len(got.Jobs) != 0 {
		t.Fatalf("lease inside a used-up window: %v", leasedIDs(got))
	}
	// the caller's clock may be ahead of the machine's: Runnable uses it
	if !m.Runnable([]string{"q"}, nil, 110*sec) {
		t.Fatal("not runnable once the window ended")
	}
	if got := apply(t, m, lease(111*sec, 5, "q")); len(got.Jobs) != 3 {
		t.Fatalf("lease in the next window: %v", leasedIDs(got))
	}
	if info := m.QueueInfo("q"); info.RateStart != 111*sec || info.RateUsed != 3 {
		t.Fatalf("second window %+v", info)
	}
	// a change of the limit closes the window; the same limit keeps it
	apply(t, m, setQueue(112*sec, "q", SetRate, QueueSettings{RateLimit: 3, RatePeriod: 10 * sec}))
	if info := m.QueueInfo("q"); info.RateUsed != 3 {
		t.Fatalf("setting the same limit changed the window: %+v", info)
	}
	apply(t, m, setQueue(112*sec, "q", SetRate, QueueSettings{RateLimit: 1, RatePeriod: sec}))
	if info := m.QueueInfo("q"); info.RateUsed != 0 || info.RateStart != 0 {
		t.Fatalf("a new limit kept the window: %+v", info)
	}
	if got := apply(t, m, lease(112*sec, 5, "q")); len(got.Jobs) != 1 {
		t.Fatalf("lease under 1/s: %v", leasedIDs(got))
	}
	// paused or at its concurrency limit, a queue's window does not say when
	// it reopens
	apply(t, m, setQueue(112*sec, "q", SetPaused, QueueSettings{Paused: true}))
	if _, ok := m.RateReopens(nil, nil); ok {
		t.Fatal("RateReopens for a paused queue")
	}
	// clearing the rate limit leaves the other settings
	r := apply(t, m, setQueue(113*sec, "q", SetRate, QueueSettings{}))
	if r.Queue.Settings != (QueueSettings{Paused: true}) {
		t.Fatalf("settings after clearing the rate: %+v", r.Queue.Settings)
	}
}

func TestSetQueueRejects(t *testing.T) {
	m := New()
	for _, tc := range []struct {
		ch    *QueueChange
		field string
	}{
		{nil, "queue"},
		{&QueueChange{Queue: "bad name", Set: SetPaused}, "queue"},
		{&QueueChange{Queue: "", Set: SetPaused}, "queue"},
		{&QueueChange{Queue: "q"}, "settings"},
		{&QueueChange{Queue: "q", Set: SetPaused, Settings: QueueSettings{Concurrency: 3}}, "settings"},
		{&QueueChange{Queue: "q", Set: SetConcurrency, Settings: QueueSettings{Concurrency: -1}}, "concurrency"},
		{&QueueChange{Queue: "q", Set: SetConcurrency, Settings: QueueSettings{Concurrency: MaxConcurrency + 1}}, "concurrency"},
		{&QueueChange{Queue: "q", Set: SetRate, Settings: QueueSettings{RateLimit: -1, RatePeriod: sec}}, "rate.limit"},
		{&QueueChange{Queue: "q", Set: SetRate, Settings: QueueSettings{RateLimit: 5}}, "rate.period"},
		{&QueueChange{Queue: "q", Set: SetRate, Settings: QueueSettings{RatePeriod: sec}}, "rate.period"},
		{&QueueChange{Queue: "q", Set: SetRate, Settings: QueueSettings{RateLimit: 5, RatePeriod: 8 * 24 * 3600 * sec}}, "rate.period"},
	} {
		r := apply(t, m, &Command{Kind: KindSetQueue, Now: sec, Queue: tc.ch})
		var inv *InvalidError
		if !errors.As(r.Err, &inv) || inv.Field != tc.field {
			t.Errorf("%+v: %v, want invalid %s", tc.ch, r.Err, tc.field)
		}
	}
	if len(m.QueueInfos()) != 0 {
		t.Fatalf("rejected changes left queues: %+v", m.QueueInfos())
	}
}

// A state with queue settings, a rate window and reservations round trips
// through a full snapshot and a delta: equal digests, equal behaviour.
func TestQueueControlsSnapshotAndDelta(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "base"}))
	base := m.Capture()
	full0 := writeFull(t, base)

	apply(t, m, setQueue(2*sec, "rated", SetRate|SetConcurrency, QueueSettings{Concurrency: 5, RateLimit: 2, RatePeriod: 10 * sec}))
	apply(t, m, setQueue(2*sec, "stopped", SetPaused, QueueSettings{Paused: true})) // no jobs
	for range 4 {
		apply(t, m, enq(2*sec, JobSpec{Queue: "rated", Type: "t"}))
	}
	apply(t, m, lease(3*sec, 1, "rated")) // opens the window: 1 of 2 used
	// a finished job with a window, and one purged within its window
	apply(t, m, enq(3*sec, JobSpec{Type: "u", UniqueKey: "kept", UniqueFor: 100 * sec}, JobSpec{Type: "u", UniqueKey: "purged", UniqueFor: 100 * sec}))
	l := apply(t, m, &Command{Kind: KindLease, Now: 4 * sec, Types: []string{"u"}, Max: 2})
	apply(t, m, &Command{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID}}})
	apply(t, m, &Command{Kind: KindCancel, Now: 4 * sec, ID: l.Jobs[1].ID})
	apply(t, m, &Command{Kind: KindPurge, Now: 10 * sec, Retention: Retention{Canceled: sec}})
	if m.Reservations() != 1 {
		t.Fatalf("%d reservations, want 1", m.Reservations())
	}
	snap := m.Capture()
	full := writeFull(t, snap)
	if v := binary.LittleEndian.Uint32(full[8:]); v != snapVersionV2 {
		t.Fatalf("snapshot version %d with sections, want %d", v, snapVersionV2)
	}
	delta := writeDelta(t, snap, base.Mark())

	restored := New()
	if err := restored.Restore(bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	chained := restoreChain(t, full0, delta)
	for name, r := range map[string]*Machine{"restored": restored, "delta": chained} {
		checkInvariants(t, r)
		if r.Digest() != m.Digest() {
			t.Fatalf("%s: digest differs", name)
		}
		if got, want := r.QueueInfos(), m.QueueInfos(); len(got) != len(want) || got[len(got)-1] != want[len(want)-1] {
			t.Fatalf("%s: queues %+v, want %+v", name, got, want)
		}
	}
	// and they behave the same from here: the window, the pause, both keys
	for _, c := range []*Command{
		lease(5*sec, 5, "rated", "stopped"),
		lease(6*sec, 5, "rated"),
		enq(7*sec, JobSpec{Type: "u", UniqueKey: "kept"}, JobSpec{Type: "u", UniqueKey: "purged"}, JobSpec{Queue: "stopped", Type: "t"}),
		lease(14*sec, 5, "rated", "stopped"),
		enq(200*sec, JobSpec{Type: "u", UniqueKey: "purged"}),
	} {
		want := m.Apply(c)
		for name, r := range map[string]*Machine{"restored": restored, "delta": chained} {
			got := r.Apply(c)
			if !equalResults(got, want) {
				t.Fatalf("%s: %s gives %+v, the original %+v", name, c.Kind, got, want)
			}
		}
	}
	if restored.Digest() != m.Digest() || chained.Digest() != m.Digest() {
		t.Fatal("digests differ after the same commands")
	}
}

func equalResults(a, b Result) bool {
	a, b = normalize(a), normalize(b)
	if (a.Err == nil) != (b.Err == nil) || len(a.Enqueued) != len(b.Enqueued) || len(a.Jobs) != len(b.Jobs) {
		return false
	}
	for i := range a.Enqueued {
		if a.Enqueued[i] != b.Enqueued[i] {
			return false
		}
	}
	for i := range a.Jobs {
		if a.Jobs[i] != b.Jobs[i] {
			return false
		}
	}
	return a.Promoted == b.Promoted && a.Purged == b.Purged
}

// Without controls nothing changes on disk: snapshot body and delta version
// 1, command codec version 1; once settings are cleared again, version 1
// again.
func TestNoControlsWritesVersionOne(t *testing.T) {
	m := New()
	c := enq(sec, JobSpec{Type: "t", UniqueKey: "k"})
	if b := AppendCommand(nil, c); b[0] != codecVersion {
		t.Fatalf("enqueue without extension fields written as codec version %d", b[0])
	}
	if b := AppendCommand(nil, enq(sec, JobSpec{Type: "t", UniqueKey: "k", UniqueFor: sec})); b[0] != codecVersionV2 {
		t.Fatalf("enqueue with unique_for written as codec version %d", b[0])
	}
	apply(t, m, c)
	version := func() uint32 { return binary.LittleEndian.Uint32(writeFull(t, m.Capture())[8:]) }
	if v := version(); v != snapVersion {
		t.Fatalf("version %d without controls", v)
	}
	apply(t, m, setQueue(sec, "default", SetPaused|SetRate, QueueSettings{Paused: true, RateLimit: 1, RatePeriod: sec}))
	if v := version(); v != snapVersionV2 {
		t.Fatalf("version %d with settings", v)
	}
	apply(t, m, setQueue(sec, "default", SetPaused|SetRate, QueueSettings{}))
	if v := version(); v != snapVersion {
		t.Fatalf("version %d after the settings were cleared", v)
	}
	var d bytes.Buffer
	if _, err := m.Capture().WriteDeltaTo(&d, Mark{}); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(d.Bytes()[8:]); v != deltaVersion {
		t.Fatalf("delta version %d without controls", v)
	}
}

func TestQueueSectionCorruptionDetected(t *testing.T) {
	good := encodeQueues(func() *Machine {
		m := New()
		m.Apply(setQueue(sec, "a", AllQueueFields, QueueSettings{Paused: true, Concurrency: 2, RateLimit: 3, RatePeriod: sec}))
		m.Apply(setQueue(sec, "b", SetConcurrency, QueueSettings{Concurrency: 1}))
		return m
	}(), nil)
	if _, err := decodeQueues(good); err != nil {
		t.Fatalf("good section: %v", err)
	}
	for n := 0; n < len(good); n++ {
		if n == 0 {
			continue // empty: no settings, which is valid
		}
		if _, err := decodeQueues(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("section cut at %d of %d: %v", n, len(good), err)
		}
	}
	for _, bad := range [][]byte{
		{0},                           // zero entries
		{1, 1, 'a', 2, 0, 0, 0, 0, 0}, // unknown flag
		{1, 1, 'a', 0, 0, 0, 0, 0, 0}, // an entry without settings
		{1, 1, 'a', 0, 0, 1, 2, 0, 0}, // a rate limit with a 1ns period
		{1, 1, 'a', 0, 0, 0, 0, 2, 0}, // a window without a limit
		{1, 1, ' ', 1, 0, 0, 0, 0, 0}, // a bad name
		{2, 1, 'b', 1, 0, 0, 0, 0, 0, 1, 'a', 1, 0, 0, 0, 0, 0}, // out of order
	} {
		if _, err := decodeQueues(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode %v: %v, want ErrCorrupt", bad, err)
		}
	}
}
