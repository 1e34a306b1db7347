package beaver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	beaver "github.com/beaver-raft/beaver-raft"
)

// The embedding API goes through the same job builder as the HTTP API:
// queue depth, delay bounds and run_at range are checked.
func TestEnqueueUsesTheServersRules(t *testing.T) {
	cfg := beaver.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Limits.MaxQueueDepth = 1
	srv, err := beaver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-srv.Ready()
	if _, _, err := srv.Enqueue(ctx, beaver.JobSpec{Type: "later", Delay: 200 * 365 * 24 * time.Hour}); !errors.Is(err, beaver.ErrInvalid) {
		t.Errorf("delay over the limit: %v", err)
	}
	if _, _, err := srv.Enqueue(ctx, beaver.JobSpec{Type: "later", RunAt: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, beaver.ErrInvalid) {
		t.Errorf("run_at out of range: %v", err)
	}
	if _, _, err := srv.Enqueue(ctx, beaver.JobSpec{Type: "later", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Enqueue(ctx, beaver.JobSpec{Type: "later", Delay: time.Hour}); !errors.Is(err, beaver.ErrQueueFull) {
		t.Errorf("enqueue over max_queue_depth: %v", err)
	}
}
