package fsm

import "slices"

// checkBlocked checks one blocked job: it waits for some of its
// dependencies, each a live unfinished job with an edge in m.waits.
func checkBlocked(t fataler, m *Machine, j *job) {
	t.Helper()
	if j.ext == nil || j.ext.dep == nil || len(j.ext.dep.waiting) == 0 {
		t.Fatalf("blocked job %d waits for nothing", j.id)
	}
	dp := j.ext.dep
	for i, w := range dp.waiting {
		if i > 0 && w <= dp.waiting[i-1] {
			t.Fatalf("job %d: waiting %v not ascending", j.id, dp.waiting)
		}
		if _, ok := slices.BinarySearch(dp.on, w); !ok {
			t.Fatalf("job %d waits for %d, not among its dependencies %v", j.id, w, dp.on)
		}
		d := m.jobs.get(w)
		if d == nil || d.state.Final() {
			t.Fatalf("job %d waits for job %d, which is gone or final", j.id, w)
		}
		if _, ok := m.waits.Get(depEdge{dep: w, job: j.id}); !ok {
			t.Fatalf("job %d waits for %d without an edge", j.id, w)
		}
	}
}

// checkWaits checks that m.waits holds the edges of the blocked jobs and
// nothing else, and that no unblocked job has anything to wait for.
func checkWaits(t fataler, m *Machine, blocked int) {
	t.Helper()
	edges := 0
	m.jobs.ascend(0, func(j *job) bool {
		if j.ext != nil && j.ext.dep != nil {
			if j.state != StateBlocked && len(j.ext.dep.waiting) > 0 {
				t.Fatalf("%s job %d still waits for %v", j.state, j.id, j.ext.dep.waiting)
			}
			if j.state == StateBlocked {
				edges += len(j.ext.dep.waiting)
			}
			for _, d := range j.ext.dep.on {
				if d >= j.id {
					t.Fatalf("job %d depends on the later job %d", j.id, d)
				}
			}
		}
		return true
	})
	if m.waits.Len() != edges {
		t.Fatalf("waits index holds %d edges, the blocked jobs %d", m.waits.Len(), edges)
	}
	if m.counts[StateBlocked] != blocked {
		t.Fatalf("blocked count %d, walked %d", m.counts[StateBlocked], blocked)
	}
}

// checkSchedules checks the schedules' order and definitions.
func checkSchedules(t fataler, m *Machine) {
	t.Helper()
	if len(m.periodic) > MaxSchedules {
		t.Fatalf("%d schedules", len(m.periodic))
	}
	for i, s := range m.periodic {
		if i > 0 && m.periodic[i-1].Name >= s.Name {
			t.Fatalf("schedules out of order: %q after %q", s.Name, m.periodic[i-1].Name)
		}
		if err := ValidateScheduleDef(s.Name, &s.ScheduleDef); err != nil {
			t.Fatalf("stored schedule %q: %v", s.Name, err)
		}
		if s.LastFired > m.now {
			t.Fatalf("schedule %q fired at %d, after the machine's now %d", s.Name, s.LastFired, m.now)
		}
	}
}
