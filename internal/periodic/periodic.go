// Package periodic is the one place that reads a schedule's definition: it
// turns what a caller asks for (the API, the configuration file) into an
// fsm.ScheduleDef through one builder, parses cron expressions with
// github.com/robfig/cron/v3, and computes which runs of a stored schedule
// are due and what its catch-up policy does with them (Plan). The state
// machine only checks and records (fsm/periodic.go); the leader-only
// scheduler proposes what Plan says (internal/scheduler).
//
// Cron expressions have the standard five fields (minute hour day-of-month
// month day-of-week) or a descriptor (@yearly, @monthly, @weekly, @daily,
// @hourly, @every 90s). They are read in UTC unless they start with
// CRON_TZ=Zone (or TZ=Zone), e.g. "CRON_TZ=Europe/Paris 0 3 * * *": every
// node of a cluster then computes the same times whatever its local zone.
package periodic

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
)

// Limits and defaults of schedules.
const (
	// Grace is how late a run may be and still be fired under catch_up
	// none: a run missed by more (the server was down, no leader) is
	// skipped.
	Grace = time.Minute
	// MaxCatchUp bounds the missed runs that catch_up all fires: the most
	// recent MaxCatchUp are fired, older ones are skipped.
	MaxCatchUp = fsm.MaxFires
	// FiresPerCommand bounds the runs one fire command enqueues; a longer
	// catch-up takes several commands.
	FiresPerCommand = 100
	// MaxEvery bounds an interval.
	MaxEvery = 10 * 366 * 24 * time.Hour
	// DefaultCatchUp is the policy of a schedule that names none.
	DefaultCatchUp = fsm.CatchUpOne
	// maxSteps bounds the cron times one Plan walks through (a year of
	// minutes is 527,040); beyond, the runs walked are skipped and the
	// next Plan goes on from there.
	maxSteps = 1 << 20
)

// Input is a schedule as a caller asks for it. Exactly one of Cron and
// Every is set.
type Input struct {
	Cron    string
	Every   time.Duration
	CatchUp string // none, one or all; empty: one
	Job     jobspec.Input
}

// Builder builds schedule definitions with the job defaults and limits of
// the server (jobspec.Builder).
type Builder struct {
	Jobs jobspec.Builder
}

// Error is a refused definition; Field names it ("cron", "job.type").
type Error = jobspec.Error

func invalid(field, format string, args ...any) *Error {
	return &Error{Kind: jobspec.Invalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Build checks the definition of schedule name and fills in the defaults
// of its job template. origin is fsm.OriginAPI or fsm.OriginConfig.
func (b *Builder) Build(name string, in *Input, origin string, now time.Time) (fsm.ScheduleDef, error) {
	def := fsm.ScheduleDef{Cron: strings.TrimSpace(in.Cron), Every: int64(in.Every), Origin: origin}
	if !fsm.ValidQueueName(name) {
		return def, invalid("name", "must match [a-zA-Z0-9_.-]{1,128}")
	}
	switch {
	case def.Cron == "" && in.Every == 0:
		return def, invalid("", "give cron (a cron expression such as \"0 3 * * *\" or \"@hourly\") or every (an interval such as \"15m\")")
	case def.Cron != "" && in.Every != 0:
		return def, invalid("", "cron and every are exclusive: give one of them")
	case in.Every < 0:
		return def, invalid("every", "must not be negative")
	case def.Cron == "" && in.Every < fsm.MinEvery:
		return def, invalid("every", "must be at least %v", fsm.MinEvery)
	case in.Every > MaxEvery:
		return def, invalid("every", "must be at most %v", MaxEvery)
	case len(def.Cron) > fsm.MaxCronLen:
		return def, invalid("cron", "is longer than %d bytes", fsm.MaxCronLen)
	}
	if def.Cron != "" {
		if _, err := ParseCron(def.Cron); err != nil {
			return def, invalid("cron", ": %v", err)
		}
	}
	def.CatchUp = DefaultCatchUp
	if in.CatchUp != "" {
		c, ok := fsm.ParseCatchUp(in.CatchUp)
		if !ok {
			return def, invalid("catch_up", "must be none, one or all, not %q", in.CatchUp)
		}
		def.CatchUp = c
	}
	job := in.Job
	switch {
	case !job.RunAt.IsZero() || job.Delay != 0:
		return def, invalid("job", "of a schedule takes no run_at or delay: each run is runnable at its time")
	case job.UniqueKey != "":
		return def, invalid("job.unique_key", "is not allowed: each run has its own (periodic:NAME:TIME)")
	case len(job.Payload) > fsm.MaxTemplatePayload:
		return def, &Error{Kind: jobspec.TooLarge, Field: "job.payload", Msg: fmt.Sprintf("is %d bytes, more than the limit of %d bytes for a schedule's job", len(job.Payload), fsm.MaxTemplatePayload)}
	}
	spec, err := b.Jobs.Build(&job, now, 0)
	if err != nil {
		var e *jobspec.Error
		if errors.As(err, &e) {
			return def, &Error{Kind: e.Kind, Field: joinField("job", e.Field), Msg: e.Msg}
		}
		return def, err
	}
	def.Job = spec
	if err := fsm.ValidateScheduleDef(name, &def); err != nil {
		var inv *fsm.InvalidError
		if errors.As(err, &inv) {
			return def, invalid(inv.Field, "%s", inv.Msg)
		}
		return def, err
	}
	return def, nil
}

func joinField(prefix, name string) string {
	if name == "" {
		return prefix
	}
	return prefix + "." + name
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a cron expression (see the package documentation), in
// UTC unless it names a zone.
func ParseCron(expr string) (cron.Schedule, error) {
	if !strings.HasPrefix(expr, "TZ=") && !strings.HasPrefix(expr, "CRON_TZ=") {
		expr = "CRON_TZ=UTC " + expr
	}
	return parser.Parse(expr)
}

// Sched computes the times of one stored schedule.
type Sched struct {
	s     fsm.Schedule
	cron  cron.Schedule // nil for an interval
	every int64
}

// New reads a stored schedule. It fails only for a cron expression this
// build cannot parse (stored by another build).
func New(s fsm.Schedule) (*Sched, error) {
	p := &Sched{s: s, every: s.Every}
	if s.Cron != "" {
		c, err := ParseCron(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: cron %q: %w", s.Name, s.Cron, err)
		}
		p.cron = c
	}
	return p, nil
}

// base is the time after which runs are due: the last fired (or skipped)
// run, or the time the definition was put.
func (p *Sched) base() int64 { return max(p.s.LastFired, p.s.Since) }

// after is the first run strictly after t (Unix ns); 0 if there is none
// (a cron expression that never matches, such as 30 February).
func (p *Sched) after(t int64) int64 {
	if p.cron == nil {
		anchor := p.s.Since
		if t < anchor {
			return anchor + p.every
		}
		return anchor + ((t-anchor)/p.every+1)*p.every
	}
	n := p.cron.Next(time.Unix(0, t))
	if n.IsZero() {
		return 0
	}
	return n.UnixNano()
}

// Next is the next run to fire: the first one after the last fired run
// (it may be in the past when runs are due). 0 when there is none.
func (p *Sched) Next() int64 { return p.after(p.base()) }

// Plan is what to propose for a schedule at a time: a fire command (the
// zero Plan proposes nothing).
type Plan struct {
	Fires   []int64 // runs to enqueue, ascending
	SkipTo  int64   // the last run skipped by the catch-up policy (0: none)
	Skipped int     // how many
	// More is set when the plan covers part of the due runs only (a long
	// catch-up): plan again at once after proposing it.
	More bool
}

// Empty reports whether there is nothing to propose.
func (p Plan) Empty() bool { return len(p.Fires) == 0 && p.SkipTo == 0 }

// Command is the fire command of the plan.
func (p Plan) Command(name string, now time.Time) *fsm.Command {
	return &fsm.Command{Kind: fsm.KindPeriodicFire, Now: now.UnixNano(),
		Periodic: &fsm.PeriodicCommand{Name: name, Fires: p.Fires, SkipTo: p.SkipTo, Skipped: p.Skipped}}
}

// Plan says which runs due at now to fire and which to skip, by the
// schedule's catch-up policy:
//
//   - none: the latest due run is fired if it is late by at most Grace;
//     every other due run is skipped.
//   - one: the latest due run is fired; the others are skipped.
//   - all: every due run is fired, oldest first, FiresPerCommand at a
//     time, up to the most recent MaxCatchUp; older ones are skipped.
func (p *Sched) Plan(now time.Time) Plan {
	nowNs := now.UnixNano()
	base := p.base()
	// the due runs: count them, keep the last MaxCatchUp+1
	var (
		n    int
		ring []int64
		last int64
	)
	keep := 2
	if p.s.CatchUp == fsm.CatchUpAll {
		keep = MaxCatchUp + 1
	}
	push := func(t int64) {
		n++
		last = t
		if len(ring) < keep {
			ring = append(ring, t)
		} else {
			copy(ring, ring[1:])
			ring[len(ring)-1] = t
		}
	}
	truncated := false
	if p.cron == nil && nowNs > base {
		// an interval: count arithmetically, walk only the last runs
		first := p.after(base)
		if first <= nowNs {
			total := int((nowNs-first)/p.every) + 1
			from := max(0, total-keep)
			n = from
			for k := from; k < total; k++ {
				push(first + int64(k)*p.every)
			}
		}
	} else {
		for t, steps := p.after(base), 0; t != 0 && t <= nowNs; t = p.after(t) {
			if steps++; steps > maxSteps {
				truncated = true
				break
			}
			push(t)
		}
	}
	if n == 0 {
		return Plan{}
	}
	if truncated {
		return Plan{SkipTo: last, Skipped: n, More: true}
	}
	// ring holds the last min(n, keep) runs; before holds the run just
	// before the first of them (0: none is skipped)
	var out Plan
	switch p.s.CatchUp {
	case fsm.CatchUpNone, fsm.CatchUpOne:
		late := time.Duration(nowNs - last)
		if p.s.CatchUp == fsm.CatchUpNone && late > Grace {
			return Plan{SkipTo: last, Skipped: n}
		}
		out.Fires = []int64{last}
		if n > 1 {
			out.SkipTo, out.Skipped = ring[len(ring)-2], n-1
		}
	default:
		fire := ring
		if n > MaxCatchUp {
			out.SkipTo, out.Skipped = ring[0], n-MaxCatchUp
			fire = ring[1:]
		}
		if len(fire) > FiresPerCommand {
			fire, out.More = fire[:FiresPerCommand], true
		}
		out.Fires = append([]int64(nil), fire...)
	}
	return out
}
