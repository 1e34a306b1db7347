package host

import (
	"context"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// The fsm decides which commands wake waiters; the host closes Changed
// exactly for those, and WaitApplied returns once an index is applied.
func TestChangedFollowsTheFSMsWakeRule(t *testing.T) {
	h := New(fsm.New(), 0, nil)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	now := time.Now().UnixNano()
	ch := h.Changed()
	h.Apply(1, &fsm.Command{Kind: fsm.KindHeartbeat, Now: now, ID: 99}, 0)
	if closed(ch) {
		t.Fatal("a heartbeat woke the waiters")
	}
	h.Apply(2, &fsm.Command{Kind: fsm.KindEnqueue, Now: now, Jobs: []fsm.JobSpec{{Type: "t", Payload: "null"}}}, 10)
	if !closed(ch) {
		t.Fatal("an enqueue did not wake the waiters")
	}
	if r, b := h.Since(); r != 2 || b != 10 {
		t.Fatalf("Since = %d, %d", r, b)
	}
	if _, idx := h.Capture(); idx != 2 {
		t.Fatalf("Capture index %d", idx)
	}
	if r, _ := h.Since(); r != 0 {
		t.Fatal("Capture did not reset the snapshot counters")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := h.WaitApplied(ctx, 3); err == nil {
		t.Fatal("WaitApplied(3) returned before index 3 was applied")
	}
	done := make(chan error, 1)
	go func() { done <- h.WaitApplied(context.Background(), 3) }()
	h.ApplyBatch([]uint64{3}, []*fsm.Command{nil}, make([]fsm.Result, 1), 0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
