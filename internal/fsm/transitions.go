package fsm

import "time"

// promoteBudget bounds how many due scheduled jobs one Lease promotes; Tick
// promotes the rest.
const promoteBudget = 1024

func validName(s string, extra string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			ok := false
			for k := 0; k < len(extra); k++ {
				if c == extra[k] {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// ValidQueueName reports whether s matches [a-zA-Z0-9_.-]{1,128}.
func ValidQueueName(s string) bool { return validName(s, "") }

// ValidTypeName reports whether s matches [a-zA-Z0-9_.:/-]{1,128}.
func ValidTypeName(s string) bool { return validName(s, ":/") }

// ValidateSpec checks a job spec as Apply will, after defaults are filled in.
// Proposers call it to answer a precise error before proposing; index names
// the job within its batch.
func ValidateSpec(index int, s *JobSpec) error {
	bad := func(field, msg string) error { return &InvalidError{Index: index, Field: field, Msg: msg} }
	if s.Queue != "" && !ValidQueueName(s.Queue) {
		return bad("queue", "must match [a-zA-Z0-9_.-]{1,128}")
	}
	if s.Type == "" {
		return bad("type", "is required")
	}
	if !ValidTypeName(s.Type) {
		return bad("type", "must match [a-zA-Z0-9_.:/-]{1,128}")
	}
	if s.MaxAttempts < 0 || s.MaxAttempts > MaxAttemptsLimit {
		return bad("max_attempts", "must be between 1 and 65535")
	}
	if s.Timeout != 0 && (s.Timeout < int64(MinTimeout) || s.Timeout > int64(MaxTimeout)) {
		return bad("timeout", "must be between 1ms and 168h")
	}
	if len(s.UniqueKey) > MaxUniqueKeyLen {
		return bad("unique_key", "is longer than 256 bytes")
	}
	if s.Deps != nil {
		if err := validateDeps(index, s.Deps); err != nil {
			return err
		}
	}
	return validateUniqueFor(index, s)
}

func (m *Machine) enqueue(c *Command) Result {
	if len(c.Jobs) == 0 {
		return Result{Err: &InvalidError{Field: "jobs", Msg: "no jobs to enqueue"}}
	}
	for i := range c.Jobs {
		if err := ValidateSpec(i, &c.Jobs[i]); err != nil {
			return Result{Err: err}
		}
		if c.Jobs[i].Deps != nil {
			if err := m.checkDepIDs(i, c.Jobs[i].Deps); err != nil {
				return Result{Err: err}
			}
		}
	}
	out := make([]EnqueueResult, len(c.Jobs))
	var slab []job // the jobs of a batch share allocations (restore.go)
	for i := range c.Jobs {
		s := &c.Jobs[i]
		if s.UniqueKey != "" {
			if id, st, ok := m.uniqueHolder(s.UniqueKey); ok {
				out[i] = EnqueueResult{ID: id, State: st, Duplicate: true}
				continue
			}
		}
		qn := s.Queue
		if qn == "" {
			qn = DefaultQueue
		}
		cls := m.lastClass
		if cls == nil || cls.q.name != qn || cls.typ != s.Type {
			cls = m.classFor(qn, s.Type)
			m.lastClass = cls
		}
		if len(slab) == 0 {
			slab = make([]job, min(len(c.Jobs)-i, jobSlabJobs))
		}
		j := &slab[0]
		slab = slab[1:]
		*j = job{
			id:          m.nextID,
			cls:         cls,
			payload:     s.Payload,
			runAt:       m.now,
			createdAt:   m.now,
			priority:    s.Priority,
			gen:         m.gen,
			maxAttempts: DefaultMaxAttempt,
			timeoutMs:   uint32(DefaultTimeout / time.Millisecond),
			state:       StatePending,
		}
		m.nextID++
		if s.MaxAttempts > 0 {
			j.maxAttempts = uint16(s.MaxAttempts)
		}
		if s.Timeout > 0 {
			j.timeoutMs = uint32(s.Timeout / int64(time.Millisecond))
		}
		if s.RunAt > m.now {
			j.runAt = s.RunAt
			j.state = StateScheduled
		}
		if s.UniqueKey != "" {
			j.ext = &jobExt{uniqueKey: s.UniqueKey, uniqueFor: s.UniqueFor}
			m.takeKey(s.UniqueKey, j.id)
		}
		if s.Deps != nil {
			m.enqueueDeps(j, s.Deps, out[:i])
		}
		m.jobs.set(j.id, j, m.gen)
		m.index(j)
		out[i] = EnqueueResult{ID: j.id, State: j.state}
	}
	return Result{Enqueued: out}
}

// promote moves up to max due scheduled jobs to pending (max <= 0: all).
func (m *Machine) promote(max int) (n int, more bool) {
	for {
		j, ok := m.scheduled.Min()
		if !ok || j.runAt > m.now {
			return n, false
		}
		if max > 0 && n >= max {
			return n, true
		}
		j = m.jobs.get(j.id)
		m.unindex(j)
		j = m.writable(j)
		j.state = StatePending
		m.index(j)
		n++
	}
}

func (m *Machine) lease(c *Command) Result {
	if c.Max <= 0 {
		return Result{Err: &InvalidError{Field: "max", Msg: "must be at least 1"}}
	}
	if len(c.Queues) == 0 && len(c.Types) == 0 {
		return Result{Err: &InvalidError{Field: "queues", Msg: "name at least one queue or type"}}
	}
	if c.LeaseFor < 0 {
		return Result{Err: &InvalidError{Field: "lease", Msg: "must not be negative"}}
	}
	var ackErrs []error
	if len(c.Acks) > 0 {
		// a worker pool reports what it finished and asks for more in one
		// command: one log record instead of two
		ackErrs = m.applyAcks(c.Acks)
	}
	promoted, _ := m.promote(max(promoteBudget, c.Max))
	cands := m.classesFor(c.Queues, c.Types)
	// the result is allocated once, at most as large as the jobs there are
	avail := 0
	for _, cl := range cands {
		if avail += cl.runnable.Len(); avail >= c.Max {
			break
		}
	}
	var leased []Job
	if n := min(avail, c.Max); n > 0 {
		leased = make([]Job, 0, n)
	}
	for len(leased) < c.Max {
		// the best head across the matching classes whose queue admits a
		// lease now (queuectl.go: paused, concurrency and rate limits)
		var best *job
		for _, cl := range cands {
			if cl.q.ctl != nil && !cl.q.admits(m.now) {
				continue
			}
			if h, ok := cl.runnable.Min(); ok && (best == nil || lessRunnable(h, best)) {
				best = h
			}
		}
		if best == nil {
			break
		}
		j := m.jobs.get(best.id)
		m.unindex(j)
		j = m.writable(j)
		x := j.cloneExt()
		x.leaseID = m.nextLease
		m.nextLease++
		lease := c.LeaseFor
		if lease == 0 {
			lease = int64(j.timeoutMs)*1e6 + int64(LeaseGrace)
		}
		x.leaseDeadline = m.now + lease
		x.worker = c.Worker
		x.startedAt = m.now
		x.result = ""
		j.ext = x
		j.attempt++
		j.state = StateInFlight
		m.index(j)
		if j.cls.q.ctl != nil {
			j.cls.q.ctl.leased(m.now)
		}
		leased = append(leased, j.view())
	}
	return Result{Jobs: leased, Promoted: promoted, AckErrs: ackErrs}
}

// classesFor lists the classes of the given queues and types (an empty list
// matches all), in classList order.
func (m *Machine) classesFor(queues, types []string) []*class {
	var out []*class
	for _, cl := range m.classList {
		if (len(queues) == 0 || contains(queues, cl.q.name)) && (len(types) == 0 || contains(types, cl.typ)) {
			out = append(out, cl)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inFlight finds the job an ack or heartbeat names and checks its lease.
func (m *Machine) inFlight(id, leaseID uint64) (*job, error) {
	j := m.jobs.get(id)
	switch {
	case j == nil:
		return nil, ErrNotFound
	case j.state == StateCanceled:
		return nil, ErrCanceled
	case j.state != StateInFlight:
		return nil, ErrNotInFlight
	case j.ext.leaseID != leaseID:
		return nil, ErrLeaseMismatch
	}
	return j, nil
}

func (m *Machine) ack(c *Command) Result {
	if len(c.Acks) == 0 {
		return Result{Err: &InvalidError{Field: "acks", Msg: "no acks"}}
	}
	return Result{AckErrs: m.applyAcks(c.Acks)}
}

// applyAcks applies each outcome and returns its rejection, if any.
func (m *Machine) applyAcks(acks []Ack) []error {
	errs := make([]error, len(acks))
	for i := range acks {
		a := &acks[i]
		j, err := m.inFlight(a.ID, a.LeaseID)
		if err != nil {
			errs[i] = err
			continue
		}
		m.unindex(j)
		j = m.writable(j)
		x := j.cloneExt()
		x.leaseID, x.leaseDeadline = 0, 0
		j.ext = x
		switch {
		case !a.Fail:
			x.result = a.Result
			m.finish(j, StateCompleted)
		case a.Final || j.attempt >= j.maxAttempts:
			x.lastError = clip(a.Error, MaxErrorLen)
			m.finish(j, StateFailed)
		default:
			x.lastError = clip(a.Error, MaxErrorLen)
			m.requeue(j, a.RetryAt)
		}
		m.index(j)
	}
	return errs
}

// finish puts an unindexed, writable j with a private ext into a final state.
func (m *Machine) finish(j *job, s State) {
	if j.state == StateBlocked {
		j.ext.dep = j.ext.dep.unblocked()
	}
	j.state = s
	j.ext.finishedAt = m.now
	j.ext.leaseID, j.ext.leaseDeadline = 0, 0
	m.keyFinished(j)
	if m.waits.Len() > 0 {
		m.settleDependents(j.id, s)
	}
}

// requeue makes an unindexed, writable j runnable at runAt (now if earlier).
func (m *Machine) requeue(j *job, runAt int64) {
	if runAt > m.now {
		j.state = StateScheduled
		j.runAt = runAt
	} else {
		j.state = StatePending
		j.runAt = m.now
	}
}

func (m *Machine) heartbeat(c *Command) Result {
	if c.LeaseFor < 0 {
		return Result{Err: &InvalidError{Field: "extend", Msg: "must not be negative"}}
	}
	j, err := m.inFlight(c.ID, c.LeaseID)
	if err != nil {
		return Result{Err: err}
	}
	m.unindex(j)
	j = m.writable(j)
	x := j.cloneExt()
	ext := c.LeaseFor
	if ext == 0 {
		ext = int64(j.timeoutMs)*1e6 + int64(LeaseGrace)
	}
	x.leaseDeadline = m.now + ext
	j.ext = x
	m.index(j)
	return Result{Jobs: []Job{j.view()}}
}

func (m *Machine) cancel(c *Command) Result {
	j := m.jobs.get(c.ID)
	if j == nil {
		return Result{Err: ErrNotFound}
	}
	if j.state.Final() {
		return Result{Err: ErrFinal}
	}
	running := j.state == StateInFlight
	m.unindex(j)
	j = m.writable(j)
	j.ext = j.cloneExt()
	m.finish(j, StateCanceled)
	m.index(j)
	return Result{Jobs: []Job{j.view()}, CanceledRunning: running}
}

func (m *Machine) retry(c *Command) Result {
	j := m.jobs.get(c.ID)
	if j == nil {
		return Result{Err: ErrNotFound}
	}
	switch j.state {
	case StateScheduled:
		m.unindex(j)
		j = m.writable(j)
		j.state, j.runAt = StatePending, m.now
		m.index(j)
		return Result{Jobs: []Job{j.view()}}
	case StateFailed, StateCanceled:
	default:
		return Result{Err: ErrNotRetryable}
	}
	key := j.x().uniqueKey
	if key != "" {
		if holder, _, held := m.uniqueHolder(key); held && holder != j.id {
			return Result{Err: ErrUniqueConflict}
		}
		m.takeKey(key, j.id)
	}
	m.unindex(j)
	j = m.writable(j)
	x := j.cloneExt()
	x.finishedAt = 0
	j.ext = x
	j.attempt = 0
	j.state, j.runAt = StatePending, m.now
	if x.dep != nil {
		m.waitAgain(j)
	}
	m.index(j)
	return Result{Jobs: []Job{j.view()}}
}

func (m *Machine) tick(c *Command) Result {
	promoted, more := m.promote(c.Max)
	budget := 0
	if c.Max > 0 {
		budget = c.Max - promoted
		if budget <= 0 {
			_, ok := m.inflight.Min()
			return Result{Promoted: promoted, More: more || ok}
		}
	}
	expired, more2 := m.expire(budget, "lease expired", true)
	return Result{Promoted: promoted, Expired: expired, More: more || more2}
}

// expire ends leases: with onlyDue, those whose deadline has passed,
// otherwise all of them. A job with attempts left goes back to pending; one
// without fails.
func (m *Machine) expire(max int, why string, onlyDue bool) (n int, more bool) {
	for {
		j, ok := m.inflight.Min()
		if !ok || (onlyDue && j.x().leaseDeadline > m.now) {
			return n, false
		}
		if max > 0 && n >= max {
			return n, true
		}
		j = m.jobs.get(j.id)
		m.unindex(j)
		j = m.writable(j)
		x := j.cloneExt()
		x.lastError = why
		x.leaseID, x.leaseDeadline = 0, 0
		j.ext = x
		if j.attempt >= j.maxAttempts {
			m.finish(j, StateFailed)
		} else {
			m.requeue(j, 0)
		}
		m.index(j)
		n++
	}
}

func (m *Machine) recoverInFlight() Result {
	n, _ := m.expire(0, "in flight when the server stopped", false)
	return Result{Expired: n}
}

func (m *Machine) purge(c *Command) Result {
	r := c.Retention
	n := 0
	for _, p := range [...]struct {
		s    State
		keep int64
	}{{StateCompleted, r.Completed}, {StateFailed, r.Failed}, {StateCanceled, r.Canceled}} {
		s, keep := p.s, p.keep
		if keep <= 0 {
			continue
		}
		cutoff := m.now - keep
		t := m.finished[s]
		for {
			j, ok := t.Min()
			if !ok || j.x().finishedAt > cutoff {
				break
			}
			if c.Max > 0 && n >= c.Max {
				return Result{Purged: n, More: true}
			}
			j = m.jobs.get(j.id)
			m.unindex(j)
			m.keyPurged(j)
			m.jobs.set(j.id, nil, m.gen)
			n++
		}
	}
	m.dropExpiredReservations()
	return Result{Purged: n}
}
