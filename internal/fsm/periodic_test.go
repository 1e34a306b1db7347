package fsm

import (
	"bytes"
	"errors"
	"testing"
)

func tmpl() JobSpec {
	return JobSpec{Queue: "reports", Type: "report", Payload: `{"k":1}`, Priority: 3, MaxAttempts: 2, Timeout: 5 * sec}
}

func putCmd(now int64, name string, def ScheduleDef) *Command {
	return &Command{Kind: KindPeriodicPut, Now: now, Periodic: &PeriodicCommand{Name: name, Def: def}}
}

func fireCmd(now int64, name string, fires ...int64) *Command {
	return &Command{Kind: KindPeriodicFire, Now: now, Periodic: &PeriodicCommand{Name: name, Fires: fires}}
}

func every(d int64) ScheduleDef {
	return ScheduleDef{Every: d, CatchUp: CatchUpOne, Job: tmpl(), Origin: OriginAPI}
}

func TestPeriodicPutAndDelete(t *testing.T) {
	m := New()
	if r := apply(t, m, putCmd(10*sec, "nightly", ScheduleDef{Cron: "0 3 * * *", CatchUp: CatchUpAll, Job: tmpl(), Origin: OriginConfig})); r.Err != nil {
		t.Fatal(r.Err)
	}
	apply(t, m, putCmd(11*sec, "every-minute", every(60*sec)))
	list := m.Schedules()
	if len(list) != 2 || list[0].Name != "every-minute" || list[1].Name != "nightly" {
		t.Fatalf("schedules %+v", list)
	}
	s, _ := m.Schedule("nightly")
	if s.Since != 10*sec || s.CreatedAt != 10*sec || s.LastFired != 0 || s.Origin != OriginConfig || s.Job.Payload != `{"k":1}` {
		t.Fatalf("stored %+v", s)
	}
	// the same definition again: Since stays (a configuration applied at every start)
	apply(t, m, putCmd(20*sec, "nightly", ScheduleDef{Cron: "0 3 * * *", CatchUp: CatchUpAll, Job: tmpl(), Origin: OriginConfig}))
	if s, _ := m.Schedule("nightly"); s.Since != 10*sec || s.UpdatedAt != 20*sec {
		t.Fatalf("unchanged put: %+v", s)
	}
	// a changed one restarts it, keeping its last fired run
	apply(t, m, fireCmd(21*sec, "nightly", 21*sec))
	apply(t, m, putCmd(30*sec, "nightly", ScheduleDef{Cron: "0 4 * * *", CatchUp: CatchUpAll, Job: tmpl(), Origin: OriginAPI}))
	if s, _ := m.Schedule("nightly"); s.Since != 30*sec || s.LastFired != 21*sec || s.Fired != 1 || s.Cron != "0 4 * * *" || s.Origin != OriginAPI {
		t.Fatalf("changed put: %+v", s)
	}
	if r := apply(t, m, &Command{Kind: KindPeriodicDelete, Now: 31 * sec, Periodic: &PeriodicCommand{Name: "nightly"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, m, &Command{Kind: KindPeriodicDelete, Now: 31 * sec, Periodic: &PeriodicCommand{Name: "nightly"}}); !errors.Is(r.Err, ErrNoSchedule) {
		t.Fatalf("delete of a missing schedule: %v", r.Err)
	}
	if _, ok := m.Schedule("nightly"); ok || len(m.Schedules()) != 1 {
		t.Fatal("not deleted")
	}
	// the job fired before the delete stays
	if j := mustGet(t, m, 1); j.UniqueKey != "periodic:nightly:1970-01-01T00:00:21Z" {
		t.Fatalf("run job %+v", j)
	}
}

func TestPeriodicPutRejected(t *testing.T) {
	m := New()
	var inv *InvalidError
	bad := func(mod func(d *ScheduleDef)) ScheduleDef { d := every(60 * sec); mod(&d); return d }
	for _, tc := range []struct {
		name  string
		def   ScheduleDef
		field string
	}{
		{"x y", every(sec), "name"},
		{"s", bad(func(d *ScheduleDef) { d.Every = 0 }), "cron"},
		{"s", bad(func(d *ScheduleDef) { d.Cron = "* * * * *" }), "cron"},
		{"s", bad(func(d *ScheduleDef) { d.Every = sec / 2 }), "every"},
		{"s", bad(func(d *ScheduleDef) { d.CatchUp = 0 }), "catch_up"},
		{"s", bad(func(d *ScheduleDef) { d.Origin = "" }), "origin"},
		{"s", bad(func(d *ScheduleDef) { d.Job.Type = "" }), "job.type"},
		{"s", bad(func(d *ScheduleDef) { d.Job.Queue = "" }), "job.queue"},
		{"s", bad(func(d *ScheduleDef) { d.Job.UniqueKey = "k" }), "job.unique_key"},
		{"s", bad(func(d *ScheduleDef) { d.Job.RunAt = 5 }), "job.run_at"},
		{"s", bad(func(d *ScheduleDef) { d.Job.Deps = dep(1) }), "job.depends_on"},
		{"s", bad(func(d *ScheduleDef) { d.Job.Payload = string(make([]byte, MaxTemplatePayload+1)) }), "job.payload"},
	} {
		if r := apply(t, m, putCmd(sec, tc.name, tc.def)); !errors.As(r.Err, &inv) || inv.Field != tc.field {
			t.Errorf("%s %+v: want invalid %s, got %v", tc.name, tc.def, tc.field, r.Err)
		}
	}
	if len(m.Schedules()) != 0 {
		t.Fatal("a rejected put stored a schedule")
	}
}

func TestPeriodicScheduleLimit(t *testing.T) {
	m := New()
	for i := range MaxSchedules {
		if r := m.Apply(putCmd(sec, "s"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), every(60*sec))); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if r := apply(t, m, putCmd(sec, "one-more", every(60*sec))); !errors.Is(r.Err, ErrScheduleLimit) {
		t.Fatalf("put beyond the limit: %v", r.Err)
	}
	// replacing an existing one is fine
	if r := apply(t, m, putCmd(sec, "saaa", every(90*sec))); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// Each scheduled time is enqueued once, whatever is proposed again.
func TestPeriodicFireExactlyOnce(t *testing.T) {
	m := New()
	apply(t, m, putCmd(100*sec, "s", every(60*sec)))
	r := apply(t, m, fireCmd(161*sec, "s", 160*sec))
	if r.Err != nil || len(r.Enqueued) != 1 || r.Enqueued[0].Duplicate || r.Enqueued[0].State != StatePending {
		t.Fatalf("first fire: %+v", r)
	}
	j := mustGet(t, m, r.Enqueued[0].ID)
	want := tmpl()
	if j.Queue != want.Queue || j.Type != want.Type || j.Payload != want.Payload || j.Priority != want.Priority ||
		j.MaxAttempts != want.MaxAttempts || j.Timeout != want.Timeout || j.UniqueKey != PeriodicKey("s", 160*sec) || j.CreatedAt != 161*sec {
		t.Fatalf("run job %+v", j)
	}
	// the same run again (a retry, a new leader): a duplicate, nothing enqueued
	for _, c := range []*Command{fireCmd(162*sec, "s", 160*sec), fireCmd(300*sec, "s", 100*sec)} {
		r := apply(t, m, c)
		if r.Err != nil || !r.Enqueued[0].Duplicate || r.Enqueued[0].ID != 0 {
			t.Fatalf("fire again: %+v", r)
		}
	}
	// runs of a batch: those after the last fired one are enqueued
	r = apply(t, m, fireCmd(400*sec, "s", 160*sec, 220*sec, 280*sec))
	if !r.Enqueued[0].Duplicate || r.Enqueued[1].Duplicate || r.Enqueued[2].Duplicate {
		t.Fatalf("batch fire: %+v", r.Enqueued)
	}
	s, _ := m.Schedule("s")
	if s.LastFired != 280*sec || s.Fired != 3 || m.Len() != 3 {
		t.Fatalf("schedule %+v, %d jobs", s, m.Len())
	}
	// a skip records the missed runs without enqueueing them
	r = apply(t, m, &Command{Kind: KindPeriodicFire, Now: 1000 * sec, Periodic: &PeriodicCommand{Name: "s", Fires: []int64{1000 * sec}, SkipTo: 940 * sec, Skipped: 11}})
	if r.Skipped != 11 || r.Enqueued[0].Duplicate {
		t.Fatalf("fire with the skip of the runs before it: %+v", r)
	}
	// proposed again: neither the skip nor the run counts twice
	r = apply(t, m, &Command{Kind: KindPeriodicFire, Now: 1001 * sec, Periodic: &PeriodicCommand{Name: "s", Fires: []int64{1000 * sec}, SkipTo: 940 * sec, Skipped: 11}})
	if r.Skipped != 0 || !r.Enqueued[0].Duplicate {
		t.Fatalf("the same fire and skip again: %+v", r)
	}
	r = apply(t, m, &Command{Kind: KindPeriodicFire, Now: 2000 * sec, Periodic: &PeriodicCommand{Name: "s", SkipTo: 1960 * sec, Skipped: 16}})
	s, _ = m.Schedule("s")
	if r.Skipped != 16 || s.Skipped != 27 || s.LastFired != 1960*sec || m.Len() != 4 {
		t.Fatalf("skip: %+v, schedule %+v", r, s)
	}
	// a run before the definition changed is not fired under the new one
	apply(t, m, putCmd(3000*sec, "s", every(30*sec)))
	if r := apply(t, m, fireCmd(3001*sec, "s", 2990*sec)); !r.Enqueued[0].Duplicate {
		t.Fatalf("a run due before the change: %+v", r)
	}
}

func TestPeriodicFireRejected(t *testing.T) {
	m := New()
	apply(t, m, putCmd(10*sec, "s", every(sec)))
	var inv *InvalidError
	for _, tc := range []struct {
		p     *PeriodicCommand
		field string
	}{
		{&PeriodicCommand{Name: "s"}, "fires"},
		{&PeriodicCommand{Name: "s", Fires: []int64{30 * sec}}, "fires"}, // in the future
		{&PeriodicCommand{Name: "s", Fires: []int64{12 * sec, 11 * sec}}, "fires"},
		{&PeriodicCommand{Name: "s", Fires: make([]int64, MaxFires+1)}, "fires"},
		{&PeriodicCommand{Name: "s", SkipTo: 30 * sec}, "skip_to"},
		{&PeriodicCommand{Name: "s", Fires: []int64{11 * sec}, Skipped: 2}, "skipped"},
	} {
		if r := apply(t, m, &Command{Kind: KindPeriodicFire, Now: 20 * sec, Periodic: tc.p}); !errors.As(r.Err, &inv) || inv.Field != tc.field {
			t.Errorf("%+v: want invalid %s, got %v", tc.p, tc.field, r.Err)
		}
	}
	if r := apply(t, m, fireCmd(20*sec, "nope", 11*sec)); !errors.Is(r.Err, ErrNoSchedule) {
		t.Fatalf("fire of a missing schedule: %v", r.Err)
	}
	if r := m.Apply(&Command{Kind: KindPeriodicFire, Now: 20 * sec}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("fire without arguments: %v", r.Err)
	}
	if m.Len() != 0 {
		t.Fatal("rejected fires enqueued jobs")
	}
}

// The schedules live in a state section: a snapshot and a delta carry them
// whole, and a state without schedules still writes version 1.
func TestPeriodicSnapshotAndDelta(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t"}))
	base := m.Capture()
	full0 := writeFull(t, base)
	if v := full0[8]; v != snapVersion {
		t.Fatalf("a state without schedules wrote snapshot version %d", v)
	}
	apply(t, m, putCmd(2*sec, "b", every(60*sec)))
	apply(t, m, putCmd(2*sec, "a", ScheduleDef{Cron: "@hourly", CatchUp: CatchUpNone, Job: tmpl(), Origin: OriginConfig}))
	apply(t, m, fireCmd(70*sec, "b", 62*sec))
	snap := m.Capture()
	full := writeFull(t, snap)
	if v := full[8]; v != snapVersionV2 {
		t.Fatalf("a state with schedules wrote snapshot version %d", v)
	}
	r := New()
	if err := r.Restore(bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r)
	if r.Digest() != m.Digest() || len(r.Schedules()) != 2 {
		t.Fatal("restored schedules differ")
	}
	chained := restoreChain(t, full0, writeDelta(t, snap, base.Mark()))
	if chained.Digest() != m.Digest() {
		t.Fatal("delta chain differs")
	}
	// the restored machines behave alike: the fired run is a duplicate
	for _, x := range []*Machine{m, r, chained} {
		if res := apply(t, x, fireCmd(200*sec, "b", 62*sec, 122*sec)); !res.Enqueued[0].Duplicate || res.Enqueued[1].Duplicate {
			t.Fatalf("%+v", res)
		}
	}
	if r.Digest() != m.Digest() || chained.Digest() != m.Digest() {
		t.Fatal("states differ after the same fire")
	}
	// deleting every schedule empties the section, in the next delta too
	mark := m.Capture().Mark()
	for _, x := range []*Machine{m, chained} {
		apply(t, x, &Command{Kind: KindPeriodicDelete, Now: 300 * sec, Periodic: &PeriodicCommand{Name: "a"}})
		apply(t, x, &Command{Kind: KindPeriodicDelete, Now: 300 * sec, Periodic: &PeriodicCommand{Name: "b"}})
	}
	d, err := r.ReadDelta(bytes.NewReader(writeDelta(t, m.Capture(), mark)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyDelta(d); err != nil {
		t.Fatal(err)
	}
	if len(r.Schedules()) != 0 || r.Digest() != m.Digest() {
		t.Fatalf("schedules after a delta that deleted them: %+v", r.Schedules())
	}
}

func TestPeriodicKindsWake(t *testing.T) {
	if !KindPeriodicFire.Wakes() || KindPeriodicPut.Wakes() || KindPeriodicDelete.Wakes() {
		t.Fatal("only a fire enqueues")
	}
	for k, want := range map[Kind]string{KindPeriodicPut: "periodic_put", KindPeriodicDelete: "periodic_delete", KindPeriodicFire: "periodic_fire", 15: "kind(?)"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}
