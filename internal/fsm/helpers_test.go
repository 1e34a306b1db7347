package fsm

import (
	"bytes"
	"fmt"
	"testing"
)

const sec = int64(1e9)

// fataler is what checkInvariants needs of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkInvariants verifies that every derived structure agrees with the jobs.
func checkInvariants(t fataler, m *Machine) {
	t.Helper()
	var counts [numStates]int
	qcounts := map[string]*[numStates]int{}
	runnable := map[string]int{}
	var scheduled, inflight, blocked int
	var finished [numStates]int
	unique := map[string]uint64{}
	n := 0
	lastID := uint64(0)
	m.jobs.ascend(0, func(j *job) bool {
		n++
		if j.id <= lastID {
			t.Fatalf("ids out of order: %d after %d", j.id, lastID)
		}
		lastID = j.id
		if j.id >= m.nextID {
			t.Fatalf("job %d >= nextID %d", j.id, m.nextID)
		}
		counts[j.state]++
		qc := qcounts[j.cls.q.name]
		if qc == nil {
			qc = new([numStates]int)
			qcounts[j.cls.q.name] = qc
		}
		qc[j.state]++
		switch j.state {
		case StatePending:
			runnable[j.cls.q.name+"/"+j.cls.typ]++
			if _, ok := j.cls.runnable.Get(j); !ok {
				t.Fatalf("pending job %d not in runnable index", j.id)
			}
		case StateScheduled:
			scheduled++
			if _, ok := m.scheduled.Get(j); !ok {
				t.Fatalf("scheduled job %d not in index", j.id)
			}
		case StateBlocked:
			blocked++
			checkBlocked(t, m, j)
		case StateInFlight:
			inflight++
			if j.ext == nil || j.ext.leaseID == 0 {
				t.Fatalf("in-flight job %d has no lease", j.id)
			}
			if _, ok := m.inflight.Get(j); !ok {
				t.Fatalf("in-flight job %d not in index", j.id)
			}
		default:
			finished[j.state]++
			if _, ok := m.finished[j.state].Get(j); !ok {
				t.Fatalf("finished job %d not in index", j.id)
			}
		}
		if holdsKey(j, m.now) {
			if prev, dup := unique[j.ext.uniqueKey]; dup {
				t.Fatalf("unique key %q held by %d and %d", j.ext.uniqueKey, prev, j.id)
			}
			unique[j.ext.uniqueKey] = j.id
		}
		if j.ext != nil && j.ext.uniqueFor != 0 && (j.ext.uniqueKey == "" || j.ext.uniqueFor < 0) {
			t.Fatalf("job %d: unique_for %d with key %q", j.id, j.ext.uniqueFor, j.ext.uniqueKey)
		}
		if int(j.attempt) > int(j.maxAttempts)+1 {
			t.Fatalf("job %d attempt %d > max %d", j.id, j.attempt, j.maxAttempts)
		}
		return true
	})
	if n != m.jobs.count || n != m.Len() {
		t.Fatalf("page table count %d, walked %d", m.jobs.count, n)
	}
	if counts != m.counts {
		t.Fatalf("counts %v, want %v", m.counts, counts)
	}
	for _, q := range m.queueList {
		want := [numStates]int{}
		if qc := qcounts[q.name]; qc != nil {
			want = *qc
		}
		if q.counts != want {
			t.Fatalf("queue %s counts %v, want %v", q.name, q.counts, want)
		}
	}
	for _, cl := range m.classList {
		if cl.runnable.Len() != runnable[cl.q.name+"/"+cl.typ] {
			t.Fatalf("class %s/%s runnable index %d, want %d", cl.q.name, cl.typ, cl.runnable.Len(), runnable[cl.q.name+"/"+cl.typ])
		}
	}
	if m.scheduled.Len() != scheduled || m.inflight.Len() != inflight {
		t.Fatalf("scheduled index %d want %d, inflight index %d want %d", m.scheduled.Len(), scheduled, m.inflight.Len(), inflight)
	}
	for _, s := range []State{StateCompleted, StateFailed, StateCanceled} {
		if m.finished[s].Len() != finished[s] {
			t.Fatalf("finished %s index %d want %d", s, m.finished[s].Len(), finished[s])
		}
	}
	checkWaits(t, m, blocked)
	checkSchedules(t, m)
	// Every holder is in the map; the other entries are stale: finished
	// jobs whose unique_for window has ended (unique.go).
	for k, id := range unique {
		if m.unique[k] != id {
			t.Fatalf("unique %q -> %d, want %d", k, m.unique[k], id)
		}
	}
	for k, id := range m.unique {
		if _, ok := unique[k]; ok {
			continue
		}
		j := m.jobs.get(id)
		if j == nil || j.ext == nil || j.ext.uniqueKey != k || !j.state.Final() || j.ext.uniqueFor == 0 {
			t.Fatalf("unique %q -> %d: not a holder, nor a finished job whose window ended", k, id)
		}
	}
	// Reservations are of purged jobs, and one that has not ended leaves
	// its key to nobody else.
	for k, r := range m.reserved {
		if m.jobs.get(r.id) != nil || !r.state.Final() {
			t.Fatalf("reservation %q of job %d (%s), which exists or is not final", k, r.id, r.state)
		}
		if id, ok := unique[k]; ok && r.until > m.now {
			t.Fatalf("key %q reserved for purged job %d until %d, but held by job %d", k, r.id, r.until, id)
		}
	}
	// Queue controls: only queues with settings have one, and a rate
	// window never holds more leases than the limit.
	for _, q := range m.queueList {
		if m.queues[q.name] != q {
			t.Fatalf("queue %s listed but not mapped", q.name)
		}
		if c := q.ctl; c != nil {
			if c.QueueSettings == (QueueSettings{}) || c.winUsed > c.RateLimit || c.winUsed < 0 || (c.winUsed == 0 && c.winStart != 0) {
				t.Fatalf("queue %s: controls %+v", q.name, *c)
			}
			if err := ValidateQueueChange(&QueueChange{Queue: q.name, Set: AllQueueFields, Settings: c.QueueSettings}); err != nil {
				t.Fatalf("queue %s: settings %+v: %v", q.name, c.QueueSettings, err)
			}
		}
	}
}

func enq(now int64, specs ...JobSpec) *Command {
	return &Command{Kind: KindEnqueue, Now: now, Jobs: specs}
}

func apply(t testing.TB, m *Machine, c *Command) Result {
	t.Helper()
	// every command goes through the codec, as it does in production
	b := AppendCommand(nil, c)
	d, err := DecodeCommand(b)
	if err != nil {
		t.Fatalf("decode %s: %v", c.Kind, err)
	}
	if !bytes.Equal(AppendCommand(nil, &d), b) {
		t.Fatalf("codec round trip of %s changed the encoding", c.Kind)
	}
	r := m.Apply(&d)
	checkInvariants(t, m)
	return r
}

func mustGet(t testing.TB, m *Machine, id uint64) Job {
	t.Helper()
	j, ok := m.Get(id)
	if !ok {
		t.Fatalf("job %d not found", id)
	}
	return j
}

func describe(j Job) string {
	return fmt.Sprintf("job %d %s attempt %d/%d", j.ID, j.State, j.Attempt, j.MaxAttempts)
}
