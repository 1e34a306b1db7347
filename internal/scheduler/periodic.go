package scheduler

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/periodic"
)

// DefaultPeriodicPoll is the default of Options.PeriodicPoll.
const DefaultPeriodicPoll = time.Second

// ConfigSchedule is a schedule of the configuration file, built by
// periodic.Builder with origin fsm.OriginConfig.
type ConfigSchedule struct {
	Name string
	Def  fsm.ScheduleDef
}

// periodicLoop applies the configuration's schedules, then fires due runs
// until ctx ends. It runs on the leader only (the server runs the
// scheduler while this node leads), so that one proposer fires; should two
// ever propose the same run (a deposed leader that does not know it yet),
// the machine enqueues it once.
func (s *Scheduler) periodicLoop(ctx context.Context) {
	wait := time.Duration(0)
	for synced := false; ; {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		if !synced {
			if err = s.SyncPeriodic(ctx); err == nil {
				synced = true
			}
		}
		if synced {
			wait, err = s.PeriodicOnce(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.o.Logger.Error("scheduler: periodic", "err", err)
			}
			wait = s.o.PeriodicPoll
		}
	}
}

// SyncPeriodic makes the stored schedules agree with Options.Periodic:
// it puts every configured schedule whose stored definition differs (or
// that is missing), and deletes the schedules that came from the
// configuration and are no longer in it. Schedules put through the API
// and absent from the configuration are left alone; one that the API put
// under a configured name is replaced by the configuration's.
func (s *Scheduler) SyncPeriodic(ctx context.Context) error {
	stored := map[string]fsm.Schedule{}
	s.o.Replica.Read(func(m *fsm.Machine) {
		for _, sc := range m.Schedules() {
			stored[sc.Name] = sc
		}
	})
	want := map[string]bool{}
	for _, c := range s.o.Periodic {
		want[c.Name] = true
		if sc, ok := stored[c.Name]; ok && reflect.DeepEqual(sc.ScheduleDef, c.Def) {
			continue
		}
		r, err := s.o.Replica.Propose(ctx, &fsm.Command{Kind: fsm.KindPeriodicPut, Now: s.o.Clock().UnixNano(),
			Periodic: &fsm.PeriodicCommand{Name: c.Name, Def: c.Def}})
		if err != nil {
			return err
		}
		if r.Err != nil {
			s.o.Logger.Error("periodic: the configuration's schedule was refused", "schedule", c.Name, "err", r.Err)
			continue
		}
		s.o.Logger.Info("periodic: schedule applied from the configuration", "schedule", c.Name)
	}
	for name, sc := range stored {
		if sc.Origin != fsm.OriginConfig || want[name] {
			continue
		}
		r, err := s.o.Replica.Propose(ctx, &fsm.Command{Kind: fsm.KindPeriodicDelete, Now: s.o.Clock().UnixNano(),
			Periodic: &fsm.PeriodicCommand{Name: name}})
		if err != nil {
			return err
		}
		if r.Err == nil {
			s.o.Logger.Info("periodic: schedule removed from the configuration, deleted", "schedule", name)
		}
	}
	return nil
}

// PeriodicOnce proposes the fire command of every schedule that has runs
// due (or skipped by its catch-up policy), and returns how long to wait
// before the next look: until the earliest next run, at most PeriodicPoll,
// 0 to look again at once (a long catch-up goes on).
func (s *Scheduler) PeriodicOnce(ctx context.Context) (time.Duration, error) {
	now := s.o.Clock()
	var list []fsm.Schedule
	s.o.Replica.Read(func(m *fsm.Machine) { list = m.Schedules() })
	wait := s.o.PeriodicPoll
	for _, sc := range list {
		p, err := periodic.New(sc)
		if err != nil {
			s.o.Logger.Error("periodic: schedule skipped", "err", err)
			continue
		}
		plan := p.Plan(now)
		if plan.Empty() {
			if next := p.Next(); next != 0 {
				wait = min(wait, time.Unix(0, next).Sub(now))
			}
			continue
		}
		if len(plan.Fires) > 0 && s.o.Admit != nil {
			if err := s.o.Admit(len(plan.Fires)); err != nil {
				s.o.Logger.Warn("periodic: runs delayed", "schedule", sc.Name, "err", err)
				continue
			}
		}
		r, err := s.o.Replica.Propose(ctx, plan.Command(sc.Name, now))
		if err != nil {
			return 0, err
		}
		switch {
		case errors.Is(r.Err, fsm.ErrNoSchedule):
			continue // deleted meanwhile
		case r.Err != nil:
			s.o.Logger.Error("periodic: fire refused", "schedule", sc.Name, "err", r.Err)
			continue
		}
		fired := 0
		for _, e := range r.Enqueued {
			if !e.Duplicate {
				fired++
			}
		}
		if fired > 0 || r.Skipped > 0 {
			s.o.Logger.Info("periodic: runs fired", "schedule", sc.Name, "fired", fired, "skipped", r.Skipped)
		}
		wait = 0 // look again: the next run, or the rest of a catch-up
	}
	return max(wait, 0), nil
}
