// Package scheduler runs the leader-only housekeeping loops. They never
// change state themselves: each proposes a command through the replica.
//
//   - ticks: when a scheduled job is due or a lease has expired (the
//     machine's NextDue), propose Tick to promote and expire them;
//   - purge: drop finished jobs older than their retention;
//   - periodic: apply the configuration's schedules, then fire the runs of
//     every schedule as they come due (periodic.go).
//
// (Snapshots are scheduled by the replica itself: the local replica by
// record count and interval, raft by its own snapshot settings.)
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// Defaults of Options.
const (
	DefaultTickEvery  = 250 * time.Millisecond
	DefaultPurgeEvery = time.Minute
	// Batch bounds the jobs one Tick or Purge command touches, so one
	// command never stalls the log; the loop proposes again at once while
	// there is more.
	Batch = 10_000
)

// Options configure the loops.
type Options struct {
	Replica    replica.Replica
	Retention  fsm.Retention
	TickEvery  time.Duration // how often to look for due work; default 250ms
	PurgeEvery time.Duration // default 1m
	Clock      func() time.Time
	Logger     *slog.Logger

	// Periodic are the schedules of the configuration file, applied each
	// time the loops start (that is, each time this node becomes the
	// leader); see periodic.go.
	Periodic []ConfigSchedule
	// PeriodicPoll bounds the wait between two looks at the schedules
	// (one put through the API is seen within it); default 1s.
	PeriodicPoll time.Duration
	// Admit, if set, is asked before runs are enqueued (the queue depth
	// limit); a refusal delays them to the next look.
	Admit func(n int) error
}

// Scheduler owns the loops.
type Scheduler struct{ o Options }

// New returns a Scheduler; Run starts it.
func New(o Options) *Scheduler {
	if o.TickEvery <= 0 {
		o.TickEvery = DefaultTickEvery
	}
	if o.PurgeEvery <= 0 {
		o.PurgeEvery = DefaultPurgeEvery
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PeriodicPoll <= 0 {
		o.PeriodicPoll = DefaultPeriodicPoll
	}
	return &Scheduler{o: o}
}

// Run runs the loops until ctx is canceled and they have stopped.
func (s *Scheduler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.loop(ctx, s.o.TickEvery, s.TickOnce) }()
	go func() { defer wg.Done(); s.loop(ctx, s.o.PurgeEvery, s.PurgeOnce) }()
	go func() { defer wg.Done(); s.periodicLoop(ctx) }()
	wg.Wait()
}

func (s *Scheduler) loop(ctx context.Context, every time.Duration, once func(context.Context) (bool, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		more, err := once(ctx)
		if err != nil && ctx.Err() == nil {
			s.o.Logger.Error("scheduler", "err", err)
		}
		if more && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// TickOnce proposes a Tick if something is due. more reports that the Tick
// stopped at its batch bound.
func (s *Scheduler) TickOnce(ctx context.Context) (more bool, err error) {
	now := s.o.Clock().UnixNano()
	var due bool
	s.o.Replica.Read(func(m *fsm.Machine) {
		at, ok := m.NextDue()
		due = ok && at <= now
	})
	if !due {
		return false, nil
	}
	r, err := s.o.Replica.Propose(ctx, &fsm.Command{Kind: fsm.KindTick, Now: now, Max: Batch})
	if err != nil {
		return false, err
	}
	if r.Expired > 0 {
		s.o.Logger.Info("leases expired", "jobs", r.Expired)
	}
	return r.More, nil
}

// PurgeOnce proposes a Purge if a finished job is past its retention.
func (s *Scheduler) PurgeOnce(ctx context.Context) (more bool, err error) {
	now := s.o.Clock().UnixNano()
	ret := s.o.Retention
	var due bool
	s.o.Replica.Read(func(m *fsm.Machine) {
		c, f, x := m.NextPurge()
		past := func(first, keep int64) bool { return first != 0 && keep > 0 && first <= now-keep }
		due = past(c, ret.Completed) || past(f, ret.Failed) || past(x, ret.Canceled)
		// a purge also drops the unique_for reservations that ended
		if end, ok := m.NextReservationEnd(); ok && end <= now {
			due = true
		}
	})
	if !due {
		return false, nil
	}
	r, err := s.o.Replica.Propose(ctx, &fsm.Command{Kind: fsm.KindPurge, Now: now, Max: Batch, Retention: ret})
	if err != nil {
		return false, err
	}
	if r.Purged > 0 {
		s.o.Logger.Debug("purged finished jobs", "jobs", r.Purged)
	}
	return r.More, nil
}
