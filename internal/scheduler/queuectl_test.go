package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// A purge is also proposed when the unique_for reservation of a purged job
// ended, so that the reservation does not stay in every snapshot.
func TestPurgeOnceDropsEndedReservations(t *testing.T) {
	r, clk := setup(t)
	s := New(Options{Replica: r, Clock: clk.now, Retention: fsm.Retention{Completed: int64(time.Hour)}})
	now := clk.now().UnixNano()
	propose(t, r, &fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "a", UniqueKey: "k", UniqueFor: int64(3 * time.Hour)}}})
	l := propose(t, r, &fsm.Command{Kind: fsm.KindLease, Now: now, Types: []string{"a"}, Max: 1})
	propose(t, r, &fsm.Command{Kind: fsm.KindAck, Now: now, Acks: []fsm.Ack{{ID: l.Jobs[0].ID, LeaseID: l.Jobs[0].LeaseID}}})
	reservations := func() (n int) {
		r.Read(func(m *fsm.Machine) { n = m.Reservations() })
		return n
	}
	clk.add(2 * time.Hour) // past retention, inside the window
	s.PurgeOnce(context.Background())
	if reservations() != 1 {
		t.Fatalf("%d reservations after the purge, want 1", reservations())
	}
	applied := r.Status().AppliedLSN
	clk.add(30 * time.Minute)
	s.PurgeOnce(context.Background())
	if r.Status().AppliedLSN != applied {
		t.Fatal("a purge was proposed although nothing was due")
	}
	clk.add(31 * time.Minute) // the window ended
	s.PurgeOnce(context.Background())
	if reservations() != 0 || r.Status().AppliedLSN == applied {
		t.Fatalf("%d reservations after the window, applied %d (was %d)", reservations(), r.Status().AppliedLSN, applied)
	}
}
