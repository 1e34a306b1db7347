package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

func TestClientPeriodic(t *testing.T) {
	c, _, _ := newServer(t, nil)
	ctx := context.Background()
	p := ok(c.PutPeriodic(ctx, "nightly", api.PeriodicRequest{Cron: "0 3 * * *", CatchUp: "all",
		Job: api.PeriodicJob{Queue: "reports", Type: "report", Payload: json.RawMessage(`{"a":1}`)}})).must(t)
	if p.Name != "nightly" || p.CatchUp != "all" || p.NextRun.IsZero() || p.Origin != "api" {
		t.Fatalf("put %+v", p)
	}
	if g := ok(c.GetPeriodic(ctx, "nightly")).must(t); g.Cron != "0 3 * * *" || g.Job.Queue != "reports" {
		t.Fatalf("get %+v", g)
	}
	if l := ok(c.ListPeriodic(ctx)).must(t); len(l.Schedules) != 1 {
		t.Fatalf("list %+v", l)
	}
	ok(c.DeletePeriodic(ctx, "nightly")).must(t)
	_, err := c.GetPeriodic(ctx, "nightly")
	if e, isErr := err.(*client.Error); !isErr || e.Status != http.StatusNotFound {
		t.Fatalf("get after delete: %v", err)
	}
	_, err = c.PutPeriodic(ctx, "x", api.PeriodicRequest{Every: "1ms", Job: api.PeriodicJob{Type: "t"}})
	if client.ErrorCode(err) != api.CodeInvalidArgument {
		t.Fatalf("bad interval: %v", err)
	}
}

func TestClientDependsOn(t *testing.T) {
	c, _, _ := newServer(t, nil)
	ctx := context.Background()
	a := ok(c.Enqueue(ctx, api.EnqueueRequest{Type: "t"})).must(t)
	b := ok(c.EnqueueBatch(ctx, api.BatchRequest{Jobs: []api.EnqueueRequest{
		{Type: "t"}, {Type: "t", DependsOn: []string{a.ID}, DependsOnIndex: []int{0}},
	}})).must(t)
	j := ok(c.Get(ctx, b.IDs[1])).must(t)
	if j.State != api.StateBlocked || len(j.WaitingFor) != 2 {
		t.Fatalf("dependent %+v", j)
	}
}
