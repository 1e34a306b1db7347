package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// model is a deliberately naive reimplementation of the job rules: a slice of
// jobs, linear scans and sorting. The machine must agree with it on every
// result and every job.
type model struct {
	now    int64
	jobs   []*mjob // index = id-1; nil when purged
	gone   []*mjob // purged jobs: a unique_for window outlives its job
	lease  uint64
	sched  map[string]*msched
	queues map[string]*mqueue
}

// mqueue is a queue's settings and every lease handed out since its rate
// limit was last set: the rate windows are recomputed from that history.
type mqueue struct {
	s      QueueSettings
	leases []int64
}

// window returns the rate window the lease history ends in: its start and
// its leases (0, 0 when there is no lease). A window begins with the first
// lease not inside the previous one.
func (q *mqueue) window() (start int64, used int) {
	for _, t := range q.leases {
		if used == 0 || t >= start+q.s.RatePeriod {
			start, used = t, 0
		}
		used++
	}
	return start, used
}

func (md *model) queue(name string) *mqueue {
	if md.queues == nil {
		md.queues = map[string]*mqueue{}
	}
	q := md.queues[name]
	if q == nil {
		q = &mqueue{}
		md.queues[name] = q
	}
	return q
}

// admits reports whether the queue may hand out a job now.
func (md *model) admits(name string) bool {
	q := md.queue(name)
	if q.s.Paused {
		return false
	}
	if q.s.Concurrency > 0 {
		n := 0
		for _, j := range md.jobs {
			if j != nil && j.queue == name && j.state == StateInFlight {
				n++
			}
		}
		if n >= q.s.Concurrency {
			return false
		}
	}
	if q.s.RateLimit > 0 {
		if start, used := q.window(); used >= q.s.RateLimit && md.now < start+q.s.RatePeriod {
			return false
		}
	}
	return true
}

// msched is a schedule of the model.
type msched struct {
	def              ScheduleDef
	since, lastFired int64
	fired, skipped   uint64
}

type mjob struct {
	id                   uint64
	queue, key           string
	uniqueFor            int64
	prio                 int32
	state                State
	attempt, max         int
	runAt, deadline, fin int64
	leaseID              uint64
	deps, waiting        []uint64 // dependencies, and those not completed yet (while blocked)
	runAnyway            bool
	lastErr              string
}

func (md *model) get(id uint64) *mjob {
	if id == 0 || id > uint64(len(md.jobs)) {
		return nil
	}
	return md.jobs[id-1]
}

// holder is the job that holds key now: unfinished, or finished within its
// unique_for window (even if it was purged since).
func (md *model) holder(key string) *mjob {
	if key == "" {
		return nil
	}
	live := func(j *mjob) bool { return !j.state.Final() || j.uniqueFor > 0 && j.fin+j.uniqueFor > md.now }
	for _, j := range md.jobs {
		if j != nil && j.key == key && live(j) {
			return j
		}
	}
	for _, j := range md.gone {
		if j.key == key && live(j) {
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
	// settle finds the blocked jobs that wait for each job that ended, in
	// the order they ended, by scanning every job.
	settle := func(first *mjob) {
		queue := []*mjob{first}
		for len(queue) > 0 {
			e := queue[0]
			queue = queue[1:]
			for _, b := range md.jobs {
				if b == nil || b.state != StateBlocked || !slices.Contains(b.waiting, e.id) {
					continue
				}
				if e.state == StateCompleted || b.runAnyway {
					b.waiting = slices.DeleteFunc(b.waiting, func(w uint64) bool { return w == e.id })
					if len(b.waiting) == 0 {
						if b.runAt > now {
							b.state = StateScheduled
						} else {
							b.state, b.runAt = StatePending, now
						}
					}
					continue
				}
				b.state, b.fin, b.waiting = StateCanceled, now, nil
				b.lastErr = fmt.Sprintf("dependency %d %s", e.id, e.state)
				queue = append(queue, b)
			}
		}
	}
	finish := func(j *mjob, s State) {
		j.state, j.fin, j.leaseID, j.waiting = s, now, 0, nil
		settle(j)
	}
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
			if d := c.Jobs[i].Deps; d != nil {
				for _, id := range d.On {
					if md.get(id) == nil {
						return Result{Err: ErrInvalid}
					}
				}
			}
		}
		var out []EnqueueResult
		for _, s := range c.Jobs {
			if h := md.holder(s.UniqueKey); h != nil {
				out = append(out, EnqueueResult{ID: h.id, State: h.state, Duplicate: true})
				continue
			}
			j := &mjob{id: uint64(len(md.jobs) + 1), queue: s.Queue, key: s.UniqueKey, uniqueFor: s.UniqueFor, prio: s.Priority, max: s.MaxAttempts, state: StatePending, runAt: now}
			if j.queue == "" {
				j.queue = "default"
			}
			if j.max == 0 {
				j.max = DefaultMaxAttempt
			}
			if s.RunAt > now {
				j.state, j.runAt = StateScheduled, s.RunAt
			}
			if d := s.Deps; d != nil {
				j.deps = append(j.deps, d.On...)
				for _, i := range d.OnIndex {
					j.deps = append(j.deps, out[i].ID)
				}
				slices.Sort(j.deps)
				j.deps = slices.Compact(j.deps)
				j.runAnyway = d.RunOnFailure
				for _, id := range j.deps {
					st := StateCompleted
					if dj := md.get(id); dj != nil {
						st = dj.state
					} else { // a duplicate of a purged job in the batch: its unique_for window
						for _, e := range out {
							if e.ID == id {
								st = e.State
							}
						}
					}
					if st == StateCompleted {
						continue
					}
					if st.Final() {
						if j.runAnyway {
							continue
						}
						j.state, j.fin, j.waiting = StateCanceled, now, nil
						j.lastErr = fmt.Sprintf("dependency %d %s", id, st)
						break
					}
					j.waiting = append(j.waiting, id)
				}
				if len(j.waiting) > 0 {
					j.state = StateBlocked
				}
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
			if !md.admits(j.queue) {
				continue
			}
			md.lease++
			j.state, j.attempt, j.leaseID = StateInFlight, j.attempt+1, md.lease
			j.deadline = now + c.LeaseFor
			if q := md.queue(j.queue); q.s.RateLimit > 0 {
				q.leases = append(q.leases, now)
			}
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
			case j.state == StateCanceled:
				errs[i] = ErrCanceled
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
		running := j.state == StateInFlight
		finish(j, StateCanceled)
		return Result{Jobs: []Job{{ID: j.id}}, CanceledRunning: running}
	case KindRetry:
		j := md.get(c.ID)
		switch {
		case j == nil:
			return Result{Err: ErrNotFound}
		case j.state == StateScheduled:
			j.state, j.runAt = StatePending, now
		case j.state == StateFailed || j.state == StateCanceled:
			if h := md.holder(j.key); h != nil && h != j {
				return Result{Err: ErrUniqueConflict}
			}
			j.state, j.attempt, j.runAt, j.fin = StatePending, 0, now, 0
			j.lastErr = "" // the machine keeps it; the model follows only the next one
			// it waits again for its dependencies that are unfinished
			j.waiting = nil
			for _, id := range j.deps {
				if dj := md.get(id); dj != nil && !dj.state.Final() {
					j.waiting = append(j.waiting, id)
				}
			}
			if len(j.waiting) > 0 {
				j.state = StateBlocked
			}
		default:
			return Result{Err: ErrNotRetryable}
		}
		return Result{Jobs: []Job{{ID: j.id}}}
	case KindSetQueue:
		if ValidateQueueChange(c.Queue) != nil {
			return Result{Err: ErrInvalid}
		}
		ch := c.Queue
		q := md.queue(ch.Queue)
		if ch.Set&SetPaused != 0 {
			q.s.Paused = ch.Settings.Paused
		}
		if ch.Set&SetConcurrency != 0 {
			q.s.Concurrency = ch.Settings.Concurrency
		}
		if ch.Set&SetRate != 0 && (q.s.RateLimit != ch.Settings.RateLimit || q.s.RatePeriod != ch.Settings.RatePeriod) {
			q.s.RateLimit, q.s.RatePeriod = ch.Settings.RateLimit, ch.Settings.RatePeriod
			q.leases = nil
		}
		start, used := q.window()
		return Result{Queue: &QueueInfo{QueueCounts: QueueCounts{Queue: ch.Queue}, Settings: q.s, RateUsed: used, RateStart: start}}
	case KindTick:
		expired := 0
		var due []*mjob
		for _, j := range md.jobs {
			if j != nil && j.state == StateScheduled && j.runAt <= now {
				j.state = StatePending
			}
			if j != nil && j.state == StateInFlight && j.deadline <= now {
				due = append(due, j)
			}
		}
		// leases expire in deadline order (a cascade depends on it)
		sort.SliceStable(due, func(a, b int) bool { return due[a].deadline < due[b].deadline })
		for _, j := range due {
			expired++
			if j.attempt >= j.max {
				j.lastErr = "lease expired"
				finish(j, StateFailed)
			} else {
				requeue(j, 0)
			}
		}
		return Result{Expired: expired}
	case KindPeriodicPut:
		p := c.Periodic
		if ValidateScheduleDef(p.Name, &p.Def) != nil {
			return Result{Err: ErrInvalid}
		}
		if md.sched == nil {
			md.sched = map[string]*msched{}
		}
		s := md.sched[p.Name]
		if s == nil {
			md.sched[p.Name] = &msched{def: p.Def, since: now}
			return Result{}
		}
		if !reflect.DeepEqual(clearOrigin(s.def), clearOrigin(p.Def)) {
			s.since = now
		}
		s.def = p.Def
		return Result{}
	case KindPeriodicDelete:
		if md.sched[c.Periodic.Name] == nil {
			return Result{Err: ErrNoSchedule}
		}
		delete(md.sched, c.Periodic.Name)
		return Result{}
	case KindPeriodicFire:
		p := c.Periodic
		bad := len(p.Fires) == 0 && p.SkipTo == 0 || len(p.Fires) > MaxFires || p.Skipped < 0 || p.Skipped > 0 && p.SkipTo == 0 || p.SkipTo > now
		for i, t := range p.Fires {
			bad = bad || t <= 0 || t > now || i > 0 && t <= p.Fires[i-1]
		}
		if bad {
			return Result{Err: ErrInvalid}
		}
		s := md.sched[p.Name]
		if s == nil {
			return Result{Err: ErrNoSchedule}
		}
		res := Result{}
		if p.SkipTo > s.lastFired {
			s.lastFired = p.SkipTo
			s.skipped += uint64(p.Skipped)
			res.Skipped = p.Skipped
		}
		var out []EnqueueResult
		for _, t := range p.Fires {
			if t <= s.lastFired || t <= s.since {
				out = append(out, EnqueueResult{Duplicate: true})
				continue
			}
			spec := s.def.Job
			spec.UniqueKey = PeriodicKey(p.Name, t)
			r := md.apply(&Command{Kind: KindEnqueue, Now: now, Jobs: []JobSpec{spec}})
			out = append(out, r.Enqueued[0])
			if !r.Enqueued[0].Duplicate {
				s.fired++
			}
			s.lastFired = t
		}
		res.Enqueued = out
		return res
	case KindPurge:
		n := 0
		for i, j := range md.jobs {
			if j != nil && j.state == StateCompleted && j.fin <= now-c.Retention.Completed {
				md.jobs[i] = nil
				md.gone = append(md.gone, j)
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
	rapid.Check(t, func(rt *rapid.T) { againstModel(rt, false) })
}

// TestQueueControlsAgainstModel is TestAgainstModel with longer runs whose
// commands favour the queue controls: settings, leases under limits, unique
// keys with windows that end before or after a purge, retries and cancels
// of running jobs.
func TestQueueControlsAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) { againstModel(rt, true) })
}

func againstModel(rt *rapid.T, controls bool) {
	{
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
		kinds := rapid.IntRange(0, 10)
		if controls {
			steps = rapid.IntRange(60, 200).Draw(rt, "steps")
			kinds = rapid.SampledFrom([]int{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 5, 5, 9, 9, 10})
		}
		for step := 0; step < steps; step++ {
			now += rapid.Int64Range(-sec, 3*sec).Draw(rt, "dt")
			var c Command
			switch kinds.Draw(rt, "kind") {
			case 0:
				n := rapid.IntRange(1, 3).Draw(rt, "n")
				for i := 0; i < n; i++ {
					s := JobSpec{
						Queue:       rapid.SampledFrom([]string{"", "a", "b"}).Draw(rt, "queue"),
						Type:        rapid.SampledFrom([]string{"t", "t", "t", ""}).Draw(rt, "type"),
						Priority:    int32(rapid.IntRange(-1, 1).Draw(rt, "prio")),
						RunAt:       now + rapid.Int64Range(-2*sec, 4*sec).Draw(rt, "runAt"),
						MaxAttempts: rapid.IntRange(0, 3).Draw(rt, "max"),
						UniqueKey:   rapid.SampledFrom([]string{"", "", "k1", "k2"}).Draw(rt, "key"),
						Deps:        drawDeps(rt, i, len(md.jobs)),
					}
					// a window shorter and one longer than the purge's retention
					// (a unique_for without a key is refused)
					if controls && s.UniqueKey == "" {
						s.UniqueKey = rapid.SampledFrom([]string{"k1", "k2", "k3"}).Draw(rt, "controls key")
					}
					if s.UniqueKey != "" || rapid.IntRange(0, 9).Draw(rt, "keyless window") == 0 {
						s.UniqueFor = rapid.SampledFrom([]int64{0, 0, 2 * sec, 6 * sec}).Draw(rt, "uniqueFor")
					}
					c.Jobs = append(c.Jobs, s)
				}
				c.Kind = KindEnqueue
			case 6:
				def := ScheduleDef{Every: rapid.Int64Range(1, 3).Draw(rt, "every") * sec, CatchUp: CatchUpOne,
					Job:    JobSpec{Queue: rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "pqueue"), Type: "t", Payload: "null", MaxAttempts: 2, Timeout: sec},
					Origin: OriginAPI}
				if rapid.IntRange(0, 9).Draw(rt, "badput") == 0 {
					def.Every = 0
				}
				c = Command{Kind: KindPeriodicPut, Periodic: &PeriodicCommand{Name: rapid.SampledFrom([]string{"p1", "p2"}).Draw(rt, "pname"), Def: def}}
			case 7:
				c = Command{Kind: KindPeriodicDelete, Periodic: &PeriodicCommand{Name: rapid.SampledFrom([]string{"p1", "p2", "p3"}).Draw(rt, "pname")}}
			case 8:
				p := &PeriodicCommand{Name: rapid.SampledFrom([]string{"p1", "p2", "p3"}).Draw(rt, "pname")}
				for _, back := range rapid.SliceOfNDistinct(rapid.Int64Range(-1, 6), 0, 3, rapid.ID[int64]).Draw(rt, "fires") {
					p.Fires = append(p.Fires, now-back*sec)
				}
				slices.Sort(p.Fires)
				if rapid.Bool().Draw(rt, "skip") {
					p.SkipTo = now - rapid.Int64Range(-1, 8).Draw(rt, "skipTo")*sec
					p.Skipped = rapid.IntRange(0, 3).Draw(rt, "skipped")
				}
				c = Command{Kind: KindPeriodicFire, Periodic: p}
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
			case 9:
				c = Command{Kind: KindSetQueue, Queue: drawQueueChange(rt)}
			case 10:
				c = Command{Kind: KindRetry, ID: ids()}
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
				if j.deps != nil && (g.Deps == nil || !slices.Equal(g.Deps.On, j.deps) || !slices.Equal(g.Deps.Waiting, j.waiting)) {
					rt.Fatalf("job %d: machine deps %+v, model %v waiting %v", j.id, g.Deps, j.deps, j.waiting)
				}
				if strings.HasPrefix(j.lastErr, "dependency") && g.LastError != j.lastErr {
					rt.Fatalf("job %d: machine last error %q, model %q", j.id, g.LastError, j.lastErr)
				}
			}
			if len(m.Schedules()) != len(md.sched) {
				rt.Fatalf("machine holds %d schedules, model %d", len(m.Schedules()), len(md.sched))
			}
			for name, ms := range md.sched {
				s, ok := m.Schedule(name)
				if !ok || s.LastFired != ms.lastFired || s.Since != ms.since || s.Fired != ms.fired || s.Skipped != ms.skipped {
					rt.Fatalf("schedule %s: machine %+v, model %+v", name, s, *ms)
				}
			}
			if m.Len() != countLive(md) {
				rt.Fatalf("machine holds %d jobs, model %d", m.Len(), countLive(md))
			}
		}
	}
}

// drawQueueChange draws a SetQueue change, now and then an invalid one.
func drawQueueChange(t *rapid.T) *QueueChange {
	ch := &QueueChange{
		Queue: rapid.SampledFrom([]string{"default", "a", "b", "b", "bad queue"}).Draw(t, "setQueue"),
		Set:   QueueFields(rapid.IntRange(0, int(AllQueueFields)).Draw(t, "set")),
	}
	s := &ch.Settings
	if ch.Set&SetPaused != 0 {
		s.Paused = rapid.Bool().Draw(t, "paused")
	}
	if ch.Set&SetConcurrency != 0 {
		s.Concurrency = rapid.IntRange(-1, 3).Draw(t, "concurrency")
	}
	if ch.Set&SetRate != 0 {
		if s.RateLimit = rapid.IntRange(0, 3).Draw(t, "rateLimit"); s.RateLimit > 0 {
			s.RatePeriod = rapid.Int64Range(0, 4).Draw(t, "ratePeriod") * sec // 0: invalid
		}
	}
	return ch
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
	if got.Skipped != want.Skipped {
		t.Fatalf("%s: skipped %d, model %d", k, got.Skipped, want.Skipped)
	}
	if k == KindLease && got.Promoted != want.Promoted || k == KindTick && got.Expired != want.Expired || got.Purged != want.Purged {
		t.Fatalf("%s: counters %+v, model %+v", k, got, want)
	}
	if got.CanceledRunning != want.CanceledRunning {
		t.Fatalf("%s: canceled running %v, model %v", k, got.CanceledRunning, want.CanceledRunning)
	}
	if (got.Queue == nil) != (want.Queue == nil) || got.Queue != nil &&
		(got.Queue.Queue != want.Queue.Queue || got.Queue.Settings != want.Queue.Settings ||
			got.Queue.RateUsed != want.Queue.RateUsed || got.Queue.RateStart != want.Queue.RateStart) {
		t.Fatalf("%s: queue %+v, model %+v", k, got.Queue, want.Queue)
	}
}

// drawDeps draws dependencies (often none) for job i of a batch, among
// jobs 1..n (sometimes a missing one) and the earlier jobs of the batch
// (sometimes a later one: invalid).
func drawDeps(rt *rapid.T, i, n int) *Deps {
	if rapid.IntRange(0, 2).Draw(rt, "deps?") != 0 {
		return nil
	}
	d := &Deps{RunOnFailure: rapid.Bool().Draw(rt, "run anyway")}
	for range rapid.IntRange(0, 2).Draw(rt, "ids") {
		d.On = append(d.On, rapid.Uint64Range(1, uint64(n)+1).Draw(rt, "dep"))
	}
	if i > 0 || rapid.IntRange(0, 9).Draw(rt, "bad index") == 0 {
		for range rapid.IntRange(0, 2).Draw(rt, "indexes") {
			d.OnIndex = append(d.OnIndex, rapid.IntRange(0, i).Draw(rt, "index"))
		}
	}
	return d
}

func clearOrigin(d ScheduleDef) ScheduleDef {
	d.Origin = ""
	return d
}
