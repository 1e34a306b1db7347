package fsm

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Dependencies between jobs. A job enqueued with Deps waits in
// StateBlocked until every job it depends on has completed; it then
// becomes pending (or scheduled, if its run_at is still ahead). When one of
// them ends failed or canceled instead, the dependent is canceled with a
// last error naming it ("dependency 42 failed"), and that cancellation
// settles the dependent's own dependents in turn; with RunOnFailure the
// dependent counts such a dependency as done and runs anyway.
//
// A job can depend only on jobs that exist when it is enqueued (by id) or
// on earlier jobs of its own batch (by index), so a cycle cannot be made.
// The blocked jobs are indexed by what they wait for (Machine.waits, an
// ordered set of (dependency, dependent) edges, derived from the jobs by
// index and unindex), so a job that finishes settles its dependents in
// O(dependents · log n), and a cascade (a chain of dependents canceled one
// after the other) runs in one command, in id order, without recursion.

// Limits of dependencies.
const (
	// MaxDeps bounds the dependencies of one job (ids and indexes).
	MaxDeps = 1000
)

// Deps are the dependencies of a job to enqueue (JobSpec.Deps).
type Deps struct {
	// On names existing jobs by id.
	On []uint64
	// OnIndex names earlier jobs of the same Enqueue by their index in
	// Jobs (the job of that index, or the existing job it was a duplicate
	// of).
	OnIndex []int
	// RunOnFailure runs the job once its dependencies are finished, even
	// when one failed or was canceled.
	RunOnFailure bool
}

// JobDeps are the dependencies of a job as queries show them (Job.Deps).
type JobDeps struct {
	On           []uint64 // every dependency, ascending
	Waiting      []uint64 // those not completed yet; set while the job is blocked
	RunOnFailure bool
}

// jobDeps is the machine's form: never changed in place (copy on write,
// like jobExt).
type jobDeps struct {
	on      []uint64
	waiting []uint64 // ascending; non-empty exactly while the job is blocked
	run     bool
}

func (d *jobDeps) view() *JobDeps {
	if d == nil {
		return nil
	}
	v := &JobDeps{On: slices.Clone(d.on), RunOnFailure: d.run}
	if len(d.waiting) > 0 {
		v.Waiting = slices.Clone(d.waiting)
	}
	return v
}

// unblocked returns d without anything to wait for.
func (d *jobDeps) unblocked() *jobDeps {
	c := *d
	c.waiting = nil
	return &c
}

// depEdge says that blocked job `job` waits for job `dep`.
type depEdge struct{ dep, job uint64 }

func lessEdge(a, b depEdge) bool {
	if a.dep != b.dep {
		return a.dep < b.dep
	}
	return a.job < b.job
}

// cascade counts what the current command did to dependents (copied into
// its Result by settled).
type cascade struct{ unblocked, canceled int }

// settled adds to r what the command did to dependents: the kinds that end
// jobs return through it (an Enqueue that is canceled at once because of a
// failed dependency says so in its own result).
func (m *Machine) settled(r Result) Result {
	if m.cascade != (cascade{}) {
		r.Unblocked, r.DepCanceled = m.cascade.unblocked, m.cascade.canceled
		m.cascade = cascade{}
	}
	return r
}

// validateDeps checks what needs no state: sizes, and that indexes name
// earlier jobs of the batch (index is the job's own).
func validateDeps(index int, d *Deps) error {
	bad := func(field, msg string) error { return &InvalidError{Index: index, Field: field, Msg: msg} }
	if len(d.On)+len(d.OnIndex) > MaxDeps {
		return bad("depends_on", fmt.Sprintf("names more than %d jobs", MaxDeps))
	}
	for k, i := range d.OnIndex {
		if i < 0 || i >= index {
			if index == 0 {
				return bad(fmt.Sprintf("depends_on_index[%d]", k), "must name an earlier job of the same batch, and this is the first one")
			}
			return bad(fmt.Sprintf("depends_on_index[%d]", k), fmt.Sprintf("is %d: it must name an earlier job of the same batch (0 to %d)", i, index-1))
		}
	}
	for k, id := range d.On {
		if id == 0 {
			return bad(fmt.Sprintf("depends_on[%d]", k), "is not a job id")
		}
	}
	if d.RunOnFailure && len(d.On) == 0 && len(d.OnIndex) == 0 {
		return bad("on_dependency_failure", "needs depends_on or depends_on_index")
	}
	return nil
}

// checkDepIDs checks that the ids of d name jobs that exist.
func (m *Machine) checkDepIDs(index int, d *Deps) error {
	for k, id := range d.On {
		if m.jobs.get(id) == nil {
			return &InvalidError{Index: index, Field: fmt.Sprintf("depends_on[%d]", k),
				Msg: fmt.Sprintf("names job %d, which does not exist (never enqueued, or purged): a job can depend only on existing jobs and on earlier jobs of its batch", id)}
		}
	}
	return nil
}

// enqueueDeps sets up the dependencies of the new job j (not yet indexed),
// given the results of the earlier jobs of its batch: j becomes blocked
// while some are unfinished, or canceled at once if one already failed or
// was canceled (unless it runs anyway).
func (m *Machine) enqueueDeps(j *job, d *Deps, earlier []EnqueueResult) {
	on := make([]uint64, 0, len(d.On)+len(d.OnIndex))
	on = append(on, d.On...)
	for _, i := range d.OnIndex {
		on = append(on, earlier[i].ID)
	}
	if len(on) == 0 {
		return // an empty Deps is no dependency
	}
	slices.Sort(on)
	on = slices.Compact(on)
	x := j.ext
	if x == nil {
		x = &jobExt{}
		j.ext = x
	}
	dp := &jobDeps{on: on, run: d.RunOnFailure}
	x.dep = dp
	for _, id := range on {
		st := depState(m.jobs.get(id), id, earlier)
		switch {
		case st == StateCompleted:
		case st.Final():
			if dp.run {
				continue
			}
			x.lastError = fmt.Sprintf("dependency %d %s", id, st)
			x.finishedAt = m.now
			dp.waiting = nil
			j.state = StateCanceled
			m.keyFinished(j) // a unique_for window holds the key
			return
		default:
			dp.waiting = append(dp.waiting, id)
		}
	}
	if len(dp.waiting) > 0 {
		j.state = StateBlocked
	}
}

// depState is the state of dependency id, job dj: an earlier job of the
// batch may be the duplicate of a job that was purged (its unique key is
// reserved by a unique_for window, unique.go): its state is then the final
// state its enqueue result gives.
func depState(dj *job, id uint64, earlier []EnqueueResult) State {
	if dj != nil {
		return dj.state
	}
	for _, e := range earlier {
		if e.ID == id {
			return e.State
		}
	}
	return StateCompleted // not reached: checkDepIDs checked the ids of On
}

// waitAgain makes j, a failed or canceled job being retried (unindexed,
// writable, with a private ext), wait again for those of its dependencies
// that are unfinished. Dependencies that failed or were canceled no longer
// hold it back: a retry is asked for by hand.
func (m *Machine) waitAgain(j *job) {
	dp := *j.ext.dep
	dp.waiting = nil
	for _, id := range dp.on {
		if dj := m.jobs.get(id); dj != nil && !dj.state.Final() {
			dp.waiting = append(dp.waiting, id)
		}
	}
	j.ext.dep = &dp
	if len(dp.waiting) > 0 {
		j.state = StateBlocked
	}
}

// settleDependents settles the jobs blocked on job id, which just ended in
// final state s, and, when that cancels some of them, theirs in turn.
func (m *Machine) settleDependents(id uint64, s State) {
	type ended struct {
		id    uint64
		state State
	}
	work := []ended{{id, s}}
	var ids []uint64
	for len(work) > 0 {
		e := work[0]
		work = work[1:]
		ids = ids[:0]
		m.waits.AscendRange(depEdge{dep: e.id}, depEdge{dep: e.id + 1}, func(x depEdge) bool {
			ids = append(ids, x.job)
			return true
		})
		for _, did := range ids {
			d := m.jobs.get(did)
			m.unindex(d)
			d = m.writable(d)
			x := d.cloneExt()
			d.ext = x
			if e.state == StateCompleted || x.dep.run {
				dp := *x.dep
				dp.waiting = slices.DeleteFunc(slices.Clone(dp.waiting), func(w uint64) bool { return w == e.id })
				x.dep = &dp
				if len(dp.waiting) == 0 {
					dp.waiting = nil
					m.cascade.unblocked++
					if d.runAt > m.now {
						d.state = StateScheduled
					} else {
						d.state, d.runAt = StatePending, m.now
					}
				}
			} else {
				m.cascade.canceled++
				x.dep = x.dep.unblocked()
				x.lastError = fmt.Sprintf("dependency %d %s", e.id, e.state)
				x.finishedAt = m.now
				d.state = StateCanceled
				m.keyFinished(d) // a unique_for window holds the key
				work = append(work, ended{d.id, StateCanceled})
			}
			m.index(d)
		}
	}
}

// The codec of dependencies: spec fields of an Enqueue (JobSpec.Deps) and
// job fields of a snapshot's job record (jobExt.dep). Tags 10 to 19.
const (
	tagDependsOn      = 10 // spec and job: uvarint n | n uvarint ids
	tagDependsOnIndex = 11 // spec: uvarint n | n uvarint indexes; job: the ids still waited for
	tagDepFailureRun  = 12 // spec and job: one byte 1: run on a dependency's failure
)

func appendIDs(dst []byte, ids []uint64) []byte {
	if len(ids) == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, id)
	}
	return dst
}

func decodeIDs(b []byte) ([]uint64, error) {
	d := decoder{b: b}
	n := d.count()
	if d.err == nil && n == 0 {
		return nil, fmt.Errorf("%w: %d ids", ErrCorrupt, n)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.uvarint()
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: trailing bytes after ids", ErrCorrupt)
	}
	return ids, d.err
}

// decodeAscending decodes ids that must be strictly ascending and non-zero.
func decodeAscending(b []byte) ([]uint64, error) {
	ids, err := decodeIDs(b)
	if err != nil {
		return nil, err
	}
	if len(ids) > MaxDeps {
		return nil, fmt.Errorf("%w: %d dependencies", ErrCorrupt, len(ids))
	}
	for i, id := range ids {
		if id == 0 || (i > 0 && id <= ids[i-1]) {
			return nil, fmt.Errorf("%w: dependency ids not ascending", ErrCorrupt)
		}
	}
	return ids, nil
}

func decodeFlag(b []byte) error {
	if len(b) != 1 || b[0] != 1 {
		return fmt.Errorf("%w: bad flag", ErrCorrupt)
	}
	return nil
}

func specDeps(s *JobSpec) *Deps {
	if s.Deps == nil {
		s.Deps = &Deps{}
	}
	return s.Deps
}

func extDeps(x *jobExt) *jobDeps {
	if x.dep == nil {
		x.dep = &jobDeps{}
	}
	return x.dep
}

func init() {
	registerSpecField(specField{
		tag: tagDependsOn, name: "depends_on",
		set:    func(s *JobSpec) bool { return s.Deps != nil && len(s.Deps.On) > 0 },
		encode: func(s *JobSpec, dst []byte) []byte { return appendIDs(dst, s.Deps.On) },
		decode: func(s *JobSpec, b []byte) (err error) {
			specDeps(s).On, err = decodeIDs(b)
			return err
		},
	})
	registerSpecField(specField{
		tag: tagDependsOnIndex, name: "depends_on_index",
		set: func(s *JobSpec) bool { return s.Deps != nil && len(s.Deps.OnIndex) > 0 },
		encode: func(s *JobSpec, dst []byte) []byte {
			dst = binary.AppendUvarint(dst, uint64(len(s.Deps.OnIndex)))
			for _, i := range s.Deps.OnIndex {
				dst = binary.AppendVarint(dst, int64(i))
			}
			return dst
		},
		decode: func(s *JobSpec, b []byte) error {
			d := decoder{b: b}
			n := d.count()
			if d.err == nil && n == 0 {
				return fmt.Errorf("%w: %d indexes", ErrCorrupt, n)
			}
			idx := make([]int, n)
			for i := range idx {
				idx[i] = d.int()
			}
			if d.err == nil && len(d.b) != 0 {
				d.err = fmt.Errorf("%w: trailing bytes after indexes", ErrCorrupt)
			}
			specDeps(s).OnIndex = idx
			return d.err
		},
	})
	registerSpecField(specField{
		tag: tagDepFailureRun, name: "on_dependency_failure",
		set:    func(s *JobSpec) bool { return s.Deps != nil && s.Deps.RunOnFailure },
		encode: func(s *JobSpec, dst []byte) []byte { return append(dst, 1) },
		decode: func(s *JobSpec, b []byte) error {
			specDeps(s).RunOnFailure = true
			return decodeFlag(b)
		},
	})

	registerJobField(jobField{
		tag: tagDependsOn, name: "depends_on",
		encode: func(x *jobExt, dst []byte) []byte {
			if x.dep == nil {
				return dst
			}
			return appendIDs(dst, x.dep.on)
		},
		decode: func(x *jobExt, b []byte) (err error) {
			extDeps(x).on, err = decodeAscending(b)
			return err
		},
	})
	registerJobField(jobField{
		tag: tagDependsOnIndex, name: "waiting_for",
		encode: func(x *jobExt, dst []byte) []byte {
			if x.dep == nil {
				return dst
			}
			return appendIDs(dst, x.dep.waiting)
		},
		decode: func(x *jobExt, b []byte) (err error) {
			extDeps(x).waiting, err = decodeAscending(b)
			return err
		},
	})
	registerJobField(jobField{
		tag: tagDepFailureRun, name: "on_dependency_failure",
		encode: func(x *jobExt, dst []byte) []byte {
			if x.dep == nil || !x.dep.run {
				return dst
			}
			return append(dst, 1)
		},
		decode: func(x *jobExt, b []byte) error {
			extDeps(x).run = true
			return decodeFlag(b)
		},
	})
}

// checkDeps is decodeJob's check of a decoded job's dependencies: a job is
// blocked exactly when it waits for something, and waits only for jobs it
// depends on.
func checkDeps(j *job) error {
	var dp *jobDeps
	if j.ext != nil {
		dp = j.ext.dep
	}
	switch {
	case dp == nil && j.state == StateBlocked:
		return fmt.Errorf("%w: job %d: blocked without dependencies", ErrCorrupt, j.id)
	case dp == nil:
		return nil
	case len(dp.on) == 0:
		return fmt.Errorf("%w: job %d: dependency fields without depends_on", ErrCorrupt, j.id)
	case dp.on[len(dp.on)-1] >= j.id:
		return fmt.Errorf("%w: job %d depends on a later job", ErrCorrupt, j.id)
	case (len(dp.waiting) > 0) != (j.state == StateBlocked):
		return fmt.Errorf("%w: job %d: %s with %d dependencies to wait for", ErrCorrupt, j.id, j.state, len(dp.waiting))
	}
	for _, w := range dp.waiting {
		if _, ok := slices.BinarySearch(dp.on, w); !ok || w >= j.id {
			return fmt.Errorf("%w: job %d waits for job %d, which it does not depend on", ErrCorrupt, j.id, w)
		}
	}
	return nil
}
