package fsm

import (
	"errors"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// model is a deliberately naive reimplementation of the job rules: a slice of
// jobs, linear scans and sorting. The machine must agree with it on every
// result and every job.
type model struct {
	now   int64
	jobs  []*mjob // index = id-1; nil when purged
	lease uint64
}

type mjob struct {
	id                   uint64
	queue, key           string
	prio                 int32
	state                State
	attempt, max         int
	runAt, deadline, fin int64
	leaseID              uint64
}

func (md *model) get(id uint64) *mjob {
	if id == 0 || id > uint64(len(md.jobs)) {
		return nil
	}
	return md.jobs[id-1]
}

func (md *model) holder(key string) *mjob {
	for _, j := range md.jobs {
		if j != nil && key != "" && j.key == key && !j.state.Final() {
			return j
		}
	}
	return nil
}

func (md *model) apply(c *Command) Result {
	if c.Now > md.now {
		md.now = c.Now
	}
	now := md.now
	finish := func(j *mjob, s State) { j.state, j.fin, j.leaseID = s, now, 0 }
	requeue := func(j *mjob, at int64) {
		j.leaseID = 0
		if at > now {
			j.state, j.runAt = StateScheduled, at
		} else {
			j.state, j.runAt = StatePending, now
		}
	}
	switch c.Kind {
	case KindEnqueue:
		for i := range c.Jobs {
			if ValidateSpec(i, &c.Jobs[i]) != nil {
				return Result{Err: ErrInvalid}
			}
		}
		var out []EnqueueResult
		for _, s := range c.Jobs {
			if h := md.holder(s.UniqueKey); h != nil {
				out = append(out, EnqueueResult{ID: h.id, State: h.state, Duplicate: true})
				continue
			}
			j := &mjob{id: uint64(len(md.jobs) + 1), queue: s.Queue, key: s.UniqueKey, prio: s.Priority, max: s.MaxAttempts, state: StatePending, runAt: now}
			if j.queue == "" {
				j.queue = "default"
			}
			if j.max == 0 {
				j.max = DefaultMaxAttempt
			}
			if s.RunAt > now {
				j.state, j.runAt = StateScheduled, s.RunAt
			}
			md.jobs = append(md.jobs, j)
			out = append(out, EnqueueResult{ID: j.id, State: j.state})
		}
		return Result{Enqueued: out}
	case KindLease:
		promoted := 0
		for _, j := range md.jobs {
			if j != nil && j.state == StateScheduled && j.runAt <= now {
				j.state = StatePending
				promoted++
			}
		}
		var cands []*mjob
		for _, j := range md.jobs {
			if j == nil || j.state != StatePending {
				continue
			}
			for _, q := range c.Queues {
				if q == j.queue {
					cands = append(cands, j)
					break
				}
			}
		}
		sort.Slice(cands, func(a, b int) bool {
			x, y := cands[a], cands[b]
			if x.prio != y.prio {
				return x.prio > y.prio
			}
			if x.runAt != y.runAt {
				return x.runAt < y.runAt
			}
			return x.id < y.id
		})
		var out []Job
		for _, j := range cands {
			if len(out) == c.Max {
				break
			}
			md.lease++
			j.state, j.attempt, j.leaseID = StateInFlight, j.attempt+1, md.lease
			j.deadline = now + c.LeaseFor
			out = append(out, Job{ID: j.id, LeaseID: j.leaseID, Attempt: j.attempt})
		}
		return Result{Jobs: out, Promoted: promoted}
	case KindAck:
		errs := make([]error, len(c.Acks))
		for i, a := range c.Acks {
			j := md.get(a.ID)
			switch {
			case j == nil:
				errs[i] = ErrNotFound
			case j.state != StateInFlight:
				errs[i] = ErrNotInFlight
			case j.leaseID != a.LeaseID:
				errs[i] = ErrLeaseMismatch
			case !a.Fail:
				finish(j, StateCompleted)
			case a.Final || j.attempt >= j.max:
				finish(j, StateFailed)
			default:
				requeue(j, a.RetryAt)
			}
		}
		return Result{AckErrs: errs}
	case KindCancel:
		j := md.get(c.ID)
		switch {
		case j == nil:
			return Result{Err: ErrNotFound}
		case j.state.Final():
			return Result{Err: ErrFinal}
		}
		finish(j, StateCanceled)
		return Result{Jobs: []Job{{ID: j.id}}}
	case KindTick:
		expired := 0
		for _, j := range md.jobs {
			if j != nil && j.state == StateScheduled && j.runAt <= now {
				j.state = StatePending
			}
			if j != nil && j.state == StateInFlight && j.deadline <= now {
				expired++
				if j.attempt >= j.max {
					finish(j, StateFailed)
				} else {
					requeue(j, 0)
				}
			}
		}
		return Result{Expired: expired}
	case KindPurge:
		n := 0
		for i, j := range md.jobs {
			if j != nil && j.state == StateCompleted && j.fin <= now-c.Retention.Completed {
				md.jobs[i] = nil
				n++
			}
		}
		return Result{Purged: n}
	}
	panic("model: unsupported kind")
}

// TestAgainstModel drives the machine and the model with the same random
// commands and compares every result and every job.
func TestAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m, md := New(), &model{}
		now := int64(sec)
		ids := func() uint64 { return rapid.Uint64Range(0, uint64(len(md.jobs))+1).Draw(rt, "id") }
		leaseOf := func(id uint64) uint64 {
			if j := md.get(id); j != nil && rapid.Bool().Draw(rt, "right lease") {
				return j.leaseID
			}
			return rapid.Uint64Range(0, md.lease+1).Draw(rt, "lease")
		}
		steps := rapid.IntRange(1, 120).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			now += rapid.Int64Range(-sec, 3*sec).Draw(rt, "dt")
			var c Command
			switch rapid.IntRange(0, 5).Draw(rt, "kind") {
			case 0:
				n := rapid.IntRange(1, 3).Draw(rt, "n")
				for i := 0; i < n; i++ {
					c.Jobs = append(c.Jobs, JobSpec{
						Queue:       rapid.SampledFrom([]string{"", "a", "b"}).Draw(rt, "queue"),
						Type:        rapid.SampledFrom([]string{"t", "t", "t", ""}).Draw(rt, "type"),
						Priority:    int32(rapid.IntRange(-1, 1).Draw(rt, "prio")),
						RunAt:       now + rapid.Int64Range(-2*sec, 4*sec).Draw(rt, "runAt"),
						MaxAttempts: rapid.IntRange(0, 3).Draw(rt, "max"),
						UniqueKey:   rapid.SampledFrom([]string{"", "", "k1", "k2"}).Draw(rt, "key"),
					})
				}
				c.Kind = KindEnqueue
			case 1:
				c = Command{Kind: KindLease, Queues: rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"default", "a", "b"}), 1, 3, rapid.ID[string]).Draw(rt, "queues"),
					Max: rapid.IntRange(1, 3).Draw(rt, "max"), LeaseFor: rapid.Int64Range(1, 5).Draw(rt, "leaseFor") * sec}
			case 2:
				id := ids()
				c = Command{Kind: KindAck, Acks: []Ack{{ID: id, LeaseID: leaseOf(id), Fail: rapid.Bool().Draw(rt, "fail"),
					Final: rapid.Bool().Draw(rt, "final"), RetryAt: now + rapid.Int64Range(-sec, 3*sec).Draw(rt, "retryAt")}}}
			case 3:
				c = Command{Kind: KindCancel, ID: ids()}
			case 4:
				c = Command{Kind: KindTick}
			case 5:
				c = Command{Kind: KindPurge, Retention: Retention{Completed: rapid.Int64Range(1, 4).Draw(rt, "keep") * sec}}
			}
			c.Now = now
			got, want := m.Apply(&c), md.apply(&c)
			compareResults(rt, c.Kind, got, want)
			checkInvariants(rt, m)
			for _, j := range md.jobs {
				if j == nil {
					continue
				}
				g, ok := m.Get(j.id)
				if !ok || g.State != j.state || g.Attempt != j.attempt || g.LeaseID != j.leaseID {
					rt.Fatalf("job %d: machine %+v (found %v), model %+v", j.id, g, ok, *j)
				}
			}
			if m.Len() != countLive(md) {
				rt.Fatalf("machine holds %d jobs, model %d", m.Len(), countLive(md))
			}
		}
	})
}

func countLive(md *model) int {
	n := 0
	for _, j := range md.jobs {
		if j != nil {
			n++
		}
	}
	return n
}

func compareResults(t *rapid.T, k Kind, got, want Result) {
	if (got.Err == nil) != (want.Err == nil) || (got.Err != nil && !errors.Is(got.Err, want.Err)) {
		t.Fatalf("%s: err %v, model %v", k, got.Err, want.Err)
	}
	if len(got.Enqueued) != len(want.Enqueued) {
		t.Fatalf("%s: enqueued %v, model %v", k, got.Enqueued, want.Enqueued)
	}
	for i := range got.Enqueued {
		if got.Enqueued[i] != want.Enqueued[i] {
			t.Fatalf("%s: enqueued %v, model %v", k, got.Enqueued, want.Enqueued)
		}
	}
	if len(got.Jobs) != len(want.Jobs) {
		t.Fatalf("%s: %d jobs, model %d", k, len(got.Jobs), len(want.Jobs))
	}
	for i := range got.Jobs {
		if got.Jobs[i].ID != want.Jobs[i].ID || (k == KindLease && (got.Jobs[i].LeaseID != want.Jobs[i].LeaseID || got.Jobs[i].Attempt != want.Jobs[i].Attempt)) {
			t.Fatalf("%s: job %d = %+v, model %+v", k, i, got.Jobs[i], want.Jobs[i])
		}
	}
	for i := range want.AckErrs {
		if !errors.Is(got.AckErrs[i], want.AckErrs[i]) || (want.AckErrs[i] == nil) != (got.AckErrs[i] == nil) {
			t.Fatalf("%s: ack %d err %v, model %v", k, i, got.AckErrs[i], want.AckErrs[i])
		}
	}
	if k == KindLease && got.Promoted != want.Promoted || k == KindTick && got.Expired != want.Expired || got.Purged != want.Purged {
		t.Fatalf("%s: counters %+v, model %+v", k, got, want)
	}
}
