package handlers

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handle runs h on a job of the given type and payload.
func handle(ctx context.Context, h Handler, typ, payload string) ([]byte, error) {
	return h.Handle(ctx, &Job{ID: "j1", Queue: "default", Type: typ, Payload: []byte(payload), Attempt: 1, MaxAttempts: 3})
}
