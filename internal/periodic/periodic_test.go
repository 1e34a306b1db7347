package periodic

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBuild(t *testing.T) {
	var b Builder
	def, err := b.Build("nightly", &Input{Cron: "0 3 * * *", Job: jobspec.Input{Type: "report"}}, fsm.OriginAPI, t0)
	if err != nil {
		t.Fatal(err)
	}
	if def.CatchUp != fsm.CatchUpOne || def.Job.Queue != "default" || def.Job.MaxAttempts != 25 || def.Job.Timeout != int64(30*time.Second) || def.Job.Payload != "null" {
		t.Fatalf("defaults: %+v", def)
	}
	for _, tc := range []struct {
		name  string
		in    Input
		field string
	}{
		{"bad name", Input{Every: time.Minute, Job: jobspec.Input{Type: "t"}}, "name"},
		{"s", Input{Job: jobspec.Input{Type: "t"}}, ""},
		{"s", Input{Cron: "@hourly", Every: time.Minute, Job: jobspec.Input{Type: "t"}}, ""},
		{"s", Input{Cron: "61 * * * *", Job: jobspec.Input{Type: "t"}}, "cron"},
		{"s", Input{Cron: "* * * * * *", Job: jobspec.Input{Type: "t"}}, "cron"}, // six fields: seconds are not read
		{"s", Input{Every: time.Millisecond, Job: jobspec.Input{Type: "t"}}, "every"},
		{"s", Input{Every: time.Minute, CatchUp: "some", Job: jobspec.Input{Type: "t"}}, "catch_up"},
		{"s", Input{Every: time.Minute}, "job.type"},
		{"s", Input{Every: time.Minute, Job: jobspec.Input{Type: "t", Queue: "no spaces"}}, "job.queue"},
		{"s", Input{Every: time.Minute, Job: jobspec.Input{Type: "t", UniqueKey: "k"}}, "job.unique_key"},
		{"s", Input{Every: time.Minute, Job: jobspec.Input{Type: "t", Delay: time.Second}}, "job"},
		{"s", Input{Every: time.Minute, Job: jobspec.Input{Type: "t", Payload: []byte(`"` + strings.Repeat("x", fsm.MaxTemplatePayload) + `"`)}}, "job.payload"},
	} {
		_, err := b.Build(tc.name, &tc.in, fsm.OriginAPI, t0)
		var e *jobspec.Error
		if !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%s %+v: want a refusal naming %q, got %v", tc.name, tc.in, tc.field, err)
		}
	}
}

func stored(def fsm.ScheduleDef, since, last time.Time) fsm.Schedule {
	s := fsm.Schedule{Name: "s", ScheduleDef: def, Since: since.UnixNano()}
	if !last.IsZero() {
		s.LastFired = last.UnixNano()
	}
	return s
}

func times(ts ...time.Time) []int64 {
	var out []int64
	for _, t := range ts {
		out = append(out, t.UnixNano())
	}
	return out
}

func TestPlan(t *testing.T) {
	hourly := func(c fsm.CatchUp) fsm.ScheduleDef { return fsm.ScheduleDef{Cron: "@hourly", CatchUp: c} }
	every := func(c fsm.CatchUp) fsm.ScheduleDef { return fsm.ScheduleDef{Every: int64(time.Minute), CatchUp: c} }
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	mi := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	for _, tc := range []struct {
		name string
		s    fsm.Schedule
		now  time.Time
		want Plan
	}{
		{"nothing due", stored(hourly(fsm.CatchUpOne), t0, time.Time{}), h(1).Add(-time.Second), Plan{}},
		{"one due, on time", stored(hourly(fsm.CatchUpOne), t0, time.Time{}), h(1).Add(time.Second), Plan{Fires: times(h(1))}},
		{"one: missed three, fire the last", stored(hourly(fsm.CatchUpOne), t0, h(1)), h(4).Add(time.Minute), Plan{Fires: times(h(4)), SkipTo: h(3).UnixNano(), Skipped: 2}},
		{"none: on time within the grace", stored(hourly(fsm.CatchUpNone), t0, h(1)), h(2).Add(30 * time.Second), Plan{Fires: times(h(2))}},
		{"none: late, skip all", stored(hourly(fsm.CatchUpNone), t0, h(1)), h(4).Add(2 * time.Minute), Plan{SkipTo: h(4).UnixNano(), Skipped: 3}},
		{"all: fire every missed run", stored(hourly(fsm.CatchUpAll), t0, h(1)), h(4), Plan{Fires: times(h(2), h(3), h(4))}},
		{"interval: from since", stored(every(fsm.CatchUpAll), t0.Add(10*time.Second), time.Time{}), mi(2).Add(11 * time.Second), Plan{Fires: times(mi(1).Add(10*time.Second), mi(2).Add(10*time.Second))}},
		{"interval, one", stored(every(fsm.CatchUpOne), t0, mi(1)), mi(10), Plan{Fires: times(mi(10)), SkipTo: mi(9).UnixNano(), Skipped: 8}},
		{"the definition changed after the last run: count from the change", stored(hourly(fsm.CatchUpAll), h(5).Add(time.Minute), h(1)), h(6), Plan{Fires: times(h(6))}},
	} {
		p, err := New(tc.s)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Plan(tc.now)
		if !slices.Equal(got.Fires, tc.want.Fires) || got.SkipTo != tc.want.SkipTo || got.Skipped != tc.want.Skipped || got.More != tc.want.More {
			t.Errorf("%s: plan %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// catch_up all fires the most recent MaxCatchUp runs, FiresPerCommand at
// a time, and skips the older ones.
func TestPlanAllIsBounded(t *testing.T) {
	def := fsm.ScheduleDef{Every: int64(time.Second), CatchUp: fsm.CatchUpAll}
	for _, cron := range []bool{false, true} {
		s := stored(def, t0, time.Time{})
		if cron {
			s.Every, s.Cron = 0, "@every 1s"
		}
		now := t0.Add(3000 * time.Second)
		var fired, skipped int
		var all []int64
		for round := 0; ; round++ {
			p, err := New(s)
			if err != nil {
				t.Fatal(err)
			}
			plan := p.Plan(now)
			if plan.Empty() {
				break
			}
			if len(plan.Fires) > FiresPerCommand || round > 20 {
				t.Fatalf("round %d: plan of %d fires", round, len(plan.Fires))
			}
			fired += len(plan.Fires)
			skipped += plan.Skipped
			all = append(all, plan.Fires...)
			// what the machine records
			s.LastFired = max(s.LastFired, plan.SkipTo)
			if len(plan.Fires) > 0 {
				s.LastFired = plan.Fires[len(plan.Fires)-1]
			}
		}
		if fired != MaxCatchUp || skipped != 3000-MaxCatchUp || all[0] != t0.Add(2001*time.Second).UnixNano() || !slices.IsSorted(all) {
			t.Fatalf("cron %v: fired %d, skipped %d, first %v", cron, fired, skipped, time.Unix(0, all[0]).UTC())
		}
	}
}

func TestCronIsUTCUnlessZoned(t *testing.T) {
	s, err := ParseCron("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(t0); !got.Equal(t0.Add(3 * time.Hour)) {
		t.Fatalf("next %v", got)
	}
	z, err := ParseCron("CRON_TZ=America/New_York 0 3 * * *")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	if got := z.Next(t0); !got.Equal(t0.Add(8 * time.Hour)) {
		t.Fatalf("zoned next %v", got.UTC())
	}
}

func TestNext(t *testing.T) {
	p, _ := New(stored(fsm.ScheduleDef{Cron: "*/15 * * * *", CatchUp: fsm.CatchUpOne}, t0.Add(time.Minute), time.Time{}))
	if got := p.Next(); got != t0.Add(15*time.Minute).UnixNano() {
		t.Fatalf("next %v", time.Unix(0, got).UTC())
	}
	never, _ := New(stored(fsm.ScheduleDef{Cron: "0 0 30 2 *", CatchUp: fsm.CatchUpOne}, t0, time.Time{}))
	if never.Next() != 0 || !never.Plan(t0.Add(24*time.Hour)).Empty() {
		t.Fatal("30 February came")
	}
}
