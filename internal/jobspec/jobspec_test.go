package jobspec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

func TestBuild(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := Builder{DefaultQueue: "q", DefaultMaxAttempts: 3, DefaultTimeout: time.Minute, MaxPayload: 10}
	s, err := b.Build(&Input{Type: "t", Delay: time.Hour}, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := fsm.JobSpec{Queue: "q", Type: "t", Payload: "null", MaxAttempts: 3, Timeout: int64(time.Minute), RunAt: now.Add(time.Hour).UnixNano()}
	if s != want {
		t.Fatalf("Build = %+v, want %+v", s, want)
	}
	for _, tc := range []struct {
		in    Input
		kind  int
		field string
		msg   string
	}{
		{Input{}, Invalid, "type", "is required"},
		{Input{Type: "t", Payload: []byte(`"01234567890"`)}, TooLarge, "payload", "limit of 10 bytes"},
		{Input{Type: "t", Delay: -time.Second}, Invalid, "delay", "negative"},
		{Input{Type: "t", Delay: MaxDelay + 1}, Invalid, "delay", "at most"},
		{Input{Type: "t", Delay: time.Second, RunAt: now}, Invalid, "", "exclusive"},
		{Input{Type: "t", RunAt: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, Invalid, "run_at", "between the years"},
		{Input{Type: "t", Timeout: 8 * 24 * time.Hour}, Invalid, "timeout", "between 1ms and 168h"},
		{Input{Type: "t", Queue: "a b"}, Invalid, "queue", "must match"},
	} {
		_, err := b.Build(&tc.in, now, 0)
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.kind || e.Field != tc.field || !strings.Contains(e.Msg, tc.msg) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Build(%+v) = %v, want kind %d field %q msg %q", tc.in, err, tc.kind, tc.field, tc.msg)
		}
	}
	if _, err := ParseDuration("delay", "soon"); err == nil || !strings.HasPrefix(err.Error(), "delay: time: invalid duration") {
		t.Errorf("ParseDuration of a bad string: %v", err)
	}
}
