package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/beaver-raft/beaver-raft/internal/config"
)

func TestPermanent(t *testing.T) {
	base := errors.New("boom")
	p := Permanent(base)
	if p.Error() != "boom" || !errors.Is(p, base) || !IsPermanent(p) {
		t.Errorf("Permanent(boom) = %q: Is %v, IsPermanent %v", p, errors.Is(p, base), IsPermanent(p))
	}
	if wrapped := fmt.Errorf("context: %w", p); !IsPermanent(wrapped) {
		t.Errorf("IsPermanent(%q) = false through a wrap", wrapped)
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Error("IsPermanent of a plain error or nil = true")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func TestHandlerFuncAndNoop(t *testing.T) {
	var seen *Job
	h := HandlerFunc(func(_ context.Context, j *Job) ([]byte, error) { seen = j; return []byte("ok"), nil })
	job := &Job{ID: "x"}
	if res, err := h.Handle(t.Context(), job); string(res) != "ok" || err != nil || seen != job {
		t.Errorf("HandlerFunc.Handle = %q, %v", res, err)
	}
	if res, err := handle(t.Context(), Noop(), "noop", `{"anything": true}`); res != nil || err != nil {
		t.Errorf("Noop = %q, %v; want nil, nil", res, err)
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if res, err := handle(t.Context(), Sleep(), "sleep", `{"duration":"1h30m"}`); res != nil || err != nil {
			t.Fatalf("Sleep = %q, %v", res, err)
		}
		if got := time.Since(start); got != 90*time.Minute {
			t.Errorf("slept %v, want 1h30m", got)
		}
		if _, err := handle(t.Context(), Sleep(), "sleep", `{"duration":"0s"}`); err != nil {
			t.Errorf("Sleep(0s) = %v", err)
		}
	})
}

func TestSleepHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := handle(ctx, Sleep(), "sleep", `{"duration":"24h"}`)
		if !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) || time.Since(start) != time.Second {
			t.Errorf("Sleep(24h) with a 1s timeout = %v after %v; want DeadlineExceeded after 1s", err, time.Since(start))
		}

		ctx, cancel = context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := handle(ctx, Sleep(), "sleep", `{"duration":"1h"}`)
			done <- err
		}()
		synctest.Wait() // the handler is blocked in its select
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep after cancel = %v, want context.Canceled", err)
		}
	})
}

func TestSleepBadPayload(t *testing.T) {
	for _, payload := range []string{
		``, `not json`, `{}`, `{"duration":null}`, `{"duration":5}`, `{"duration":"abc"}`, `{"duration":"10"}`,
		`{"duration":"-1s"}`, `{"duration":"24h1s"}`, `{"duration":"1s","extra":1}`, `{"duration":"1s"} {}`, `[]`,
	} {
		_, err := handle(t.Context(), Sleep(), "sleep", payload)
		if !IsPermanent(err) {
			t.Errorf("Sleep(%s) = %v, want a permanent error", payload, err)
		}
	}
}

func TestBuiltins(t *testing.T) {
	cfg := config.Default().Handlers
	if got := names(Builtins(cfg)); got != "http noop sleep" {
		t.Errorf("Builtins(defaults) = %s, want http noop sleep", got)
	}
	cfg.HTTP.Enabled = false
	cfg.Exec = config.ExecConfig{Enabled: true, Allow: []string{"/bin/echo"}}
	if got := names(Builtins(cfg)); got != "exec noop sleep" {
		t.Errorf("Builtins(exec on, http off) = %s, want exec noop sleep", got)
	}
}

func names(m map[string]Handler) string { return strings.Join(slices.Sorted(maps.Keys(m)), " ") }
