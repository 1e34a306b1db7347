package fsm

import (
	"errors"
	"testing"
)

// Canceling a running job ends it canceled at once; its worker's later
// heartbeat, completion or failure is refused with ErrCanceled, and the job
// never becomes completed.
func TestCancelRunningJob(t *testing.T) {
	m := New()
	apply(t, m, enq(sec, JobSpec{Type: "t", MaxAttempts: 3}, JobSpec{Type: "t"}))
	run := leaseOne(t, m, 2*sec)
	r := apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: run.ID})
	if r.Err != nil || !r.CanceledRunning || r.Jobs[0].State != StateCanceled || r.Jobs[0].LeaseID != 0 || r.Jobs[0].Worker != run.Worker {
		t.Fatalf("cancel of a running job: %+v", r)
	}
	if r := apply(t, m, &Command{Kind: KindCancel, Now: 3 * sec, ID: 2}); r.Err != nil || r.CanceledRunning {
		t.Fatalf("cancel of a pending job: %+v", r)
	}
	for _, c := range []*Command{
		{Kind: KindHeartbeat, Now: 4 * sec, ID: run.ID, LeaseID: run.LeaseID, LeaseFor: sec},
		{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: run.ID, LeaseID: run.LeaseID, Result: `"done"`}}},
		{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: run.ID, LeaseID: run.LeaseID, Fail: true, Error: "x"}}},
		{Kind: KindLease, Now: 4 * sec, Queues: []string{"default"}, Max: 1, Acks: []Ack{{ID: run.ID, LeaseID: run.LeaseID}}},
		{Kind: KindAck, Now: 4 * sec, Acks: []Ack{{ID: run.ID, LeaseID: run.LeaseID + 7}}}, // any lease: the job is canceled
	} {
		r := apply(t, m, c)
		err := r.Err
		if len(r.AckErrs) > 0 {
			err = r.AckErrs[0]
		}
		if !errors.Is(err, ErrCanceled) || errors.Is(err, ErrNotInFlight) {
			t.Fatalf("%s of the canceled job: %v, want ErrCanceled", c.Kind, err)
		}
		if j := mustGet(t, m, run.ID); j.State != StateCanceled || j.Result != "" {
			t.Fatalf("after a %s: %+v", c.Kind, j)
		}
	}
	// retried and leased again, the old attempt's report is a stale lease
	apply(t, m, &Command{Kind: KindRetry, Now: 5 * sec, ID: run.ID})
	again := leaseOne(t, m, 5*sec)
	if again.ID != run.ID {
		t.Fatalf("leased %d after the retry", again.ID)
	}
	if r := apply(t, m, &Command{Kind: KindAck, Now: 6 * sec, Acks: []Ack{{ID: run.ID, LeaseID: run.LeaseID}}}); !errors.Is(r.AckErrs[0], ErrLeaseMismatch) {
		t.Fatalf("report of the canceled attempt after a retry: %v", r.AckErrs[0])
	}
	// a completed job is not in flight (and not canceled)
	apply(t, m, &Command{Kind: KindAck, Now: 6 * sec, Acks: []Ack{{ID: again.ID, LeaseID: again.LeaseID}}})
	if r := apply(t, m, &Command{Kind: KindAck, Now: 6 * sec, Acks: []Ack{{ID: again.ID, LeaseID: again.LeaseID}}}); !errors.Is(r.AckErrs[0], ErrNotInFlight) {
		t.Fatalf("second completion: %v", r.AckErrs[0])
	}
}
