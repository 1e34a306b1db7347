package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

func TestLoadPeriodic(t *testing.T) {
	c, err := Load(writeFile(t, `
periodic:
  nightly:
    cron: "0 3 * * *"
    catch_up: all
    job: {queue: reports, type: report, payload: {kind: daily, n: [1, 2]}, timeout: 10m, max_attempts: 3}
  tick:
    every: 30s
    job: {type: noop}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	names, defs, err := c.BuildPeriodic()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "nightly" || names[1] != "tick" {
		t.Fatalf("names %v", names)
	}
	n := defs[0]
	if n.Cron != "0 3 * * *" || n.CatchUp != fsm.CatchUpAll || n.Origin != fsm.OriginConfig || n.Job.Queue != "reports" ||
		n.Job.Payload != `{"kind":"daily","n":[1,2]}` || n.Job.MaxAttempts != 3 || n.Job.Timeout != 600e9 {
		t.Fatalf("nightly %+v", n)
	}
	if d := defs[1]; d.Every != 30e9 || d.CatchUp != fsm.CatchUpOne || d.Job.Queue != "default" || d.Job.Payload != "null" {
		t.Fatalf("tick %+v", d)
	}
}

func TestPeriodicBad(t *testing.T) {
	for yaml, want := range map[string]string{
		"periodic: [1]": "periodic: must be a mapping",
		"periodic:\n  s: {cron: '@hourly', jobs: {}}":                  "jobs",
		"periodic:\n  s: {cron: '@hourly', job: {type: t, delay: 1s}}": "delay",
	} {
		if _, err := Load(writeFile(t, yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
	for yaml, key := range map[string]string{
		"periodic:\n  s: {job: {type: t}}":                            "periodic.s",
		"periodic:\n  s: {cron: 'x y', job: {type: t}}":               "periodic.s.cron",
		"periodic:\n  s: {every: 10ms, job: {type: t}}":               "periodic.s.every",
		"periodic:\n  s: {every: 1m, catch_up: many, job: {type: t}}": "periodic.s.catch_up",
		"periodic:\n  s: {every: 1m, job: {queue: t}}":                "periodic.s.job.type",
		"periodic:\n  'a b': {every: 1m, job: {type: t}}":             "periodic.a b",
	} {
		c, err := Load(writeFile(t, yaml))
		if err != nil {
			t.Errorf("%q: %v", yaml, err)
			continue
		}
		err = c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Key != key {
			t.Errorf("%q: %v, want an error naming %s", yaml, err, key)
		}
	}
}
