package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Periodic jobs. A schedule is named, holds a job template and either a
// cron expression or an interval, and records the scheduled time of the
// last run it fired. The machine never parses the cron expression nor
// computes a next time (that needs a time zone database and a parser, and
// is the proposer's work: internal/periodic); it checks and records:
//
//   - PeriodicPut stores a definition. Putting the same definition again
//     (a configuration applied at every start) changes nothing; a changed
//     definition restarts the schedule at the put's time (Since), keeping
//     its last fired run, so that runs of the old definition are not fired
//     late under the new one.
//   - PeriodicFire names the schedule and scheduled times. Each time after
//     the schedule's last fired time enqueues one job from the template,
//     with the unique key "periodic:<name>:<RFC 3339 time>", and becomes
//     the last fired time, in the same command; a time at or before it is
//     a duplicate and enqueues nothing. However often a fire is proposed
//     again (a retry, a crash before the answer, a new leader looking at
//     the same due run), each run is enqueued once. SkipTo records runs
//     that the catch-up policy skipped, without enqueueing them.
//
// The schedules are a state section (tag 10), written whole into every
// snapshot and delta: their number and the size of their templates are
// bounded (MaxSchedules, MaxTemplatePayload).

// Limits of schedules.
const (
	MaxSchedules       = 1000
	MaxTemplatePayload = 64 << 10
	MaxCronLen         = 256
	// MinEvery is the shortest interval of a schedule.
	MinEvery = time.Second
	// MaxFires bounds the runs one PeriodicFire enqueues (catch_up all
	// fires at most this many missed runs; see internal/periodic).
	MaxFires = 1000
)

// CatchUp is what a schedule does with the runs it missed while no
// scheduler was running (the server was down, no leader).
type CatchUp uint8

const (
	// CatchUpNone skips the missed runs: only a run that is due now (late
	// by less than a grace period) is fired.
	CatchUpNone CatchUp = iota + 1
	// CatchUpOne fires the latest missed run once and skips the others.
	CatchUpOne
	// CatchUpAll fires every missed run (at most MaxFires at once; older
	// ones are skipped).
	CatchUpAll
)

var catchUpNames = [...]string{CatchUpNone: "none", CatchUpOne: "one", CatchUpAll: "all"}

func (c CatchUp) String() string {
	if c >= CatchUpNone && c <= CatchUpAll {
		return catchUpNames[c]
	}
	return fmt.Sprintf("catch_up(%d)", uint8(c))
}

// ParseCatchUp is the inverse of CatchUp.String.
func ParseCatchUp(s string) (CatchUp, bool) {
	for c := CatchUpNone; c <= CatchUpAll; c++ {
		if catchUpNames[c] == s {
			return c, true
		}
	}
	return 0, false
}

// Origins of a schedule (ScheduleDef.Origin).
const (
	OriginAPI    = "api"    // put through the API (or the Go client, the CLI)
	OriginConfig = "config" // applied from the configuration file's periodic: section
)

// ScheduleDef is what a PeriodicPut sets.
type ScheduleDef struct {
	// Cron is a cron expression (or a descriptor such as @hourly), as the
	// proposer's parser reads it; empty when Every is set.
	Cron string
	// Every is an interval in ns, counted from Since; 0 when Cron is set.
	Every   int64
	CatchUp CatchUp
	// Job is the template of every run: queue, type, payload, priority,
	// max attempts and timeout (no run_at, unique key or dependencies).
	Job JobSpec
	// Origin says who put the schedule: OriginAPI or OriginConfig.
	Origin string
}

// Schedule is a stored schedule, as queries return it. Times are Unix ns.
type Schedule struct {
	Name string
	ScheduleDef
	// Since is when the definition was put last with a change: runs are
	// due after it (and an interval counts from it).
	Since int64
	// LastFired is the scheduled time of the last run fired or skipped (0:
	// none yet).
	LastFired int64
	// Fired and Skipped count the runs enqueued and those the catch-up
	// policy skipped.
	Fired, Skipped uint64
	CreatedAt      int64
	UpdatedAt      int64
}

// PeriodicCommand is the argument of the periodic commands.
type PeriodicCommand struct {
	Name string
	Def  ScheduleDef // Put
	// Fires are the scheduled times to enqueue, ascending (Fire).
	Fires []int64
	// SkipTo marks the runs up to this time as handled without enqueueing
	// them (applied before Fires, which follow the skipped runs); Skipped
	// says how many they are, for the counters (Fire).
	SkipTo  int64
	Skipped int
}

// ErrNoSchedule: a periodic command names a schedule that does not exist.
var ErrNoSchedule = errors.New("fsm: no such schedule")

// ErrScheduleLimit: a put of a new schedule when MaxSchedules exist.
var ErrScheduleLimit = fmt.Errorf("fsm: at most %d schedules", MaxSchedules)

// PeriodicKey is the unique key of the run of schedule name at scheduled
// time at (Unix ns).
func PeriodicKey(name string, at int64) string {
	return "periodic:" + name + ":" + time.Unix(0, at).UTC().Format(time.RFC3339Nano)
}

// ValidateScheduleDef checks a definition as PeriodicPut will. Proposers
// call it after filling in the template's defaults.
func ValidateScheduleDef(name string, d *ScheduleDef) error {
	bad := func(field, msg string) error { return &InvalidError{Field: field, Msg: msg} }
	if !ValidQueueName(name) {
		return bad("name", "must match [a-zA-Z0-9_.-]{1,128}")
	}
	switch {
	case d.Cron == "" && d.Every == 0:
		return bad("cron", "or every is required")
	case d.Cron != "" && d.Every != 0:
		return bad("cron", "and every are exclusive: give one of them")
	case len(d.Cron) > MaxCronLen:
		return bad("cron", fmt.Sprintf("is longer than %d bytes", MaxCronLen))
	case d.Cron == "" && d.Every < int64(MinEvery):
		return bad("every", fmt.Sprintf("must be at least %v", MinEvery))
	case d.CatchUp < CatchUpNone || d.CatchUp > CatchUpAll:
		return bad("catch_up", "must be none, one or all")
	case d.Origin != OriginAPI && d.Origin != OriginConfig:
		return bad("origin", "must be api or config")
	}
	j := &d.Job
	if err := ValidateSpec(0, j); err != nil {
		var inv *InvalidError
		if errors.As(err, &inv) {
			return bad("job."+inv.Field, inv.Msg)
		}
		return err
	}
	switch {
	case j.Queue == "":
		return bad("job.queue", "is required in a stored template")
	case j.MaxAttempts == 0 || j.Timeout == 0:
		return bad("job.max_attempts", "and job.timeout are required in a stored template")
	case len(j.Payload) > MaxTemplatePayload:
		return bad("job.payload", fmt.Sprintf("is %d bytes, more than the limit of %d bytes for a template", len(j.Payload), MaxTemplatePayload))
	case j.RunAt != 0:
		return bad("job.run_at", "is not allowed in a template")
	case j.UniqueKey != "":
		return bad("job.unique_key", "is not allowed in a template (every run has its own)")
	case j.Deps != nil:
		return bad("job.depends_on", "is not allowed in a template")
	}
	return nil
}

// Schedules returns every schedule, sorted by name.
func (m *Machine) Schedules() []Schedule {
	out := make([]Schedule, len(m.periodic))
	for i, s := range m.periodic {
		out[i] = *s
	}
	return out
}

// Schedule returns the schedule called name.
func (m *Machine) Schedule(name string) (Schedule, bool) {
	if s := m.findSchedule(name); s != nil {
		return *s, true
	}
	return Schedule{}, false
}

func (m *Machine) scheduleIndex(name string) (int, bool) {
	i := sort.Search(len(m.periodic), func(i int) bool { return m.periodic[i].Name >= name })
	return i, i < len(m.periodic) && m.periodic[i].Name == name
}

func (m *Machine) findSchedule(name string) *Schedule {
	if i, ok := m.scheduleIndex(name); ok {
		return m.periodic[i]
	}
	return nil
}

func periodicArg(c *Command) (*PeriodicCommand, error) {
	if c.Periodic == nil {
		return nil, &InvalidError{Field: "periodic", Msg: "missing"}
	}
	return c.Periodic, nil
}

func sameDef(a, b *ScheduleDef) bool {
	return a.Cron == b.Cron && a.Every == b.Every && a.CatchUp == b.CatchUp &&
		a.Job.Queue == b.Job.Queue && a.Job.Type == b.Job.Type && a.Job.Payload == b.Job.Payload &&
		a.Job.Priority == b.Job.Priority && a.Job.MaxAttempts == b.Job.MaxAttempts && a.Job.Timeout == b.Job.Timeout
}

func (m *Machine) periodicPut(c *Command) Result {
	p, err := periodicArg(c)
	if err != nil {
		return Result{Err: err}
	}
	if err := ValidateScheduleDef(p.Name, &p.Def); err != nil {
		return Result{Err: err}
	}
	i, ok := m.scheduleIndex(p.Name)
	if ok {
		s := m.periodic[i]
		if !sameDef(&s.ScheduleDef, &p.Def) {
			s.Since = m.now
		}
		s.ScheduleDef = p.Def
		s.UpdatedAt = m.now
		return Result{}
	}
	if len(m.periodic) >= MaxSchedules {
		return Result{Err: ErrScheduleLimit}
	}
	s := &Schedule{Name: p.Name, ScheduleDef: p.Def, Since: m.now, CreatedAt: m.now, UpdatedAt: m.now}
	m.periodic = append(m.periodic, nil)
	copy(m.periodic[i+1:], m.periodic[i:])
	m.periodic[i] = s
	return Result{}
}

func (m *Machine) periodicDelete(c *Command) Result {
	p, err := periodicArg(c)
	if err != nil {
		return Result{Err: err}
	}
	i, ok := m.scheduleIndex(p.Name)
	if !ok {
		return Result{Err: ErrNoSchedule}
	}
	m.periodic = append(m.periodic[:i], m.periodic[i+1:]...)
	if len(m.periodic) == 0 {
		m.periodic = nil
	}
	return Result{}
}

func (m *Machine) periodicFire(c *Command) Result {
	p, err := periodicArg(c)
	if err != nil {
		return Result{Err: err}
	}
	bad := func(field, msg string) Result { return Result{Err: &InvalidError{Field: field, Msg: msg}} }
	switch {
	case len(p.Fires) == 0 && p.SkipTo == 0:
		return bad("fires", "name a run to fire or a time to skip to")
	case len(p.Fires) > MaxFires:
		return bad("fires", fmt.Sprintf("at most %d runs at once", MaxFires))
	case p.Skipped < 0 || (p.Skipped > 0 && p.SkipTo == 0):
		return bad("skipped", "counts the runs SkipTo skips")
	case p.SkipTo > m.now:
		return bad("skip_to", "is in the future")
	}
	for i, t := range p.Fires {
		switch {
		case t <= 0 || t > m.now:
			return bad("fires", "a run must be due (at or before the command's time)")
		case i > 0 && t <= p.Fires[i-1]:
			return bad("fires", "must be ascending")
		}
	}
	s := m.findSchedule(p.Name)
	if s == nil {
		return Result{Err: ErrNoSchedule}
	}
	res := Result{}
	if p.SkipTo > s.LastFired {
		// runs the catch-up policy skipped: counted once, however often
		// the command is proposed
		s.LastFired = p.SkipTo
		s.Skipped += uint64(p.Skipped)
		res.Skipped = p.Skipped
	}
	out := make([]EnqueueResult, len(p.Fires))
	var specs []JobSpec
	var at []int
	for i, t := range p.Fires {
		if t <= s.LastFired || t <= s.Since {
			// fired (or skipped) before, or due before the definition
			// changed: nothing to do
			out[i] = EnqueueResult{Duplicate: true}
			continue
		}
		j := s.Job
		j.UniqueKey = PeriodicKey(s.Name, t)
		specs = append(specs, j)
		at = append(at, i)
	}
	if len(specs) > 0 {
		r := m.enqueue(&Command{Kind: KindEnqueue, Now: c.Now, Jobs: specs})
		if r.Err != nil {
			return r // the template was checked at put: not expected
		}
		for k, e := range r.Enqueued {
			out[at[k]] = e
			if !e.Duplicate {
				s.Fired++
			}
		}
		s.LastFired = p.Fires[len(p.Fires)-1]
	}
	res.Enqueued = out
	return res
}

// The codec of the periodic commands (AppendCommand, DecodeCommand).

func appendTemplate(dst []byte, s *JobSpec) []byte {
	dst = appendString(dst, s.Queue)
	dst = appendString(dst, s.Type)
	dst = appendString(dst, s.Payload)
	dst = binary.AppendVarint(dst, int64(s.Priority))
	dst = binary.AppendVarint(dst, s.RunAt)
	dst = binary.AppendVarint(dst, int64(s.MaxAttempts))
	dst = binary.AppendVarint(dst, s.Timeout)
	dst = appendString(dst, s.UniqueKey)
	return appendSpecFields(dst, s)
}

func (d *decoder) template() JobSpec {
	var s JobSpec
	s.Queue = d.string()
	s.Type = d.string()
	s.Payload = d.string()
	s.Priority = d.int32()
	s.RunAt = d.varint()
	s.MaxAttempts = d.int()
	s.Timeout = d.varint()
	s.UniqueKey = d.string()
	d.specFields(&s)
	return s
}

func appendPeriodic(dst []byte, c *Command) []byte {
	p := c.Periodic
	if p == nil {
		p = &PeriodicCommand{}
	}
	dst = appendString(dst, p.Name)
	switch c.Kind {
	case KindPeriodicPut:
		dst = appendString(dst, p.Def.Cron)
		dst = binary.AppendVarint(dst, p.Def.Every)
		dst = append(dst, byte(p.Def.CatchUp))
		dst = appendString(dst, p.Def.Origin)
		dst = appendTemplate(dst, &p.Def.Job)
	case KindPeriodicFire:
		dst = binary.AppendUvarint(dst, uint64(len(p.Fires)))
		for _, t := range p.Fires {
			dst = binary.AppendVarint(dst, t)
		}
		dst = binary.AppendVarint(dst, p.SkipTo)
		dst = binary.AppendVarint(dst, int64(p.Skipped))
	}
	return dst
}

func (d *decoder) periodic(k Kind) *PeriodicCommand {
	p := &PeriodicCommand{Name: d.string()}
	switch k {
	case KindPeriodicPut:
		p.Def.Cron = d.string()
		p.Def.Every = d.varint()
		p.Def.CatchUp = CatchUp(d.byte())
		p.Def.Origin = d.string()
		p.Def.Job = d.template()
	case KindPeriodicFire:
		n := d.count()
		if n > 0 {
			p.Fires = make([]int64, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			p.Fires[i] = d.varint()
		}
		p.SkipTo = d.varint()
		p.Skipped = d.int()
	}
	return p
}

// The schedules section (tag 10): uvarint count | per schedule, by name:
// name | cron | varint every | u8 catch_up | origin | template (queue,
// type, payload, varint priority, varint max_attempts, varint timeout) |
// varint since | varint last_fired | uvarint fired | uvarint skipped |
// varint created_at | varint updated_at.
const tagSchedules = 10

func init() {
	registerSection(section{
		tag:  tagSchedules,
		name: "schedules",
		encode: func(m *Machine, dst []byte) []byte {
			if len(m.periodic) == 0 {
				return dst
			}
			dst = binary.AppendUvarint(dst, uint64(len(m.periodic)))
			for _, s := range m.periodic {
				dst = appendString(dst, s.Name)
				dst = appendString(dst, s.Cron)
				dst = binary.AppendVarint(dst, s.Every)
				dst = append(dst, byte(s.CatchUp))
				dst = appendString(dst, s.Origin)
				dst = appendString(dst, s.Job.Queue)
				dst = appendString(dst, s.Job.Type)
				dst = appendString(dst, s.Job.Payload)
				dst = binary.AppendVarint(dst, int64(s.Job.Priority))
				dst = binary.AppendVarint(dst, int64(s.Job.MaxAttempts))
				dst = binary.AppendVarint(dst, s.Job.Timeout)
				dst = binary.AppendVarint(dst, s.Since)
				dst = binary.AppendVarint(dst, s.LastFired)
				dst = binary.AppendUvarint(dst, s.Fired)
				dst = binary.AppendUvarint(dst, s.Skipped)
				dst = binary.AppendVarint(dst, s.CreatedAt)
				dst = binary.AppendVarint(dst, s.UpdatedAt)
			}
			return dst
		},
		decode: func(b []byte) (func(*Machine), error) {
			var list []*Schedule
			if len(b) > 0 {
				d := decoder{b: b}
				n := d.count()
				if d.err == nil && (n == 0 || n > MaxSchedules) {
					return nil, fmt.Errorf("%w: %d schedules", ErrCorrupt, n)
				}
				for i := 0; i < n && d.err == nil; i++ {
					s := &Schedule{Name: d.string()}
					s.Cron = d.string()
					s.Every = d.varint()
					s.CatchUp = CatchUp(d.byte())
					s.Origin = d.string()
					s.Job.Queue = d.string()
					s.Job.Type = d.string()
					s.Job.Payload = d.string()
					s.Job.Priority = d.int32()
					s.Job.MaxAttempts = d.int()
					s.Job.Timeout = d.varint()
					s.Since = d.varint()
					s.LastFired = d.varint()
					s.Fired = d.uvarint()
					s.Skipped = d.uvarint()
					s.CreatedAt = d.varint()
					s.UpdatedAt = d.varint()
					if d.err != nil {
						break
					}
					if err := ValidateScheduleDef(s.Name, &s.ScheduleDef); err != nil {
						return nil, fmt.Errorf("%w: schedule %q: %v", ErrCorrupt, s.Name, err)
					}
					if len(list) > 0 && list[len(list)-1].Name >= s.Name {
						return nil, fmt.Errorf("%w: schedules out of order", ErrCorrupt)
					}
					list = append(list, s)
				}
				if d.err == nil && len(d.b) != 0 {
					d.err = fmt.Errorf("%w: trailing bytes after the schedules", ErrCorrupt)
				}
				if d.err != nil {
					return nil, d.err
				}
			}
			return func(m *Machine) { m.periodic = list }, nil
		},
	})
}
