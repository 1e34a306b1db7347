package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/periodic"
)

// periodicKey is the top-level key of the schedules: a mapping of names
// to PeriodicConfig, outside the key table (a table of records has no
// flag).
const periodicKey = "periodic"

// PeriodicConfig is one schedule of periodic jobs (docs/periodic.md):
//
//	periodic:
//	  nightly-report:
//	    cron: "0 3 * * *"       # or every: 15m
//	    catch_up: one           # none | one | all
//	    job: {queue: reports, type: report, payload: {kind: daily}, timeout: 10m}
//
// The schedules are applied when the server starts (by the leader, in a
// cluster): each is created or replaced; one that an earlier start applied
// and that is no longer here is deleted. Schedules made through the API
// are left alone, unless the file names them too (the file wins).
type PeriodicConfig struct {
	// Cron is a cron expression of five fields or a descriptor (@hourly,
	// @every 90s), in UTC unless it starts with CRON_TZ=Zone.
	Cron string `yaml:"cron,omitempty"`
	// Every is an interval (at least 1s), the alternative to Cron.
	Every Duration `yaml:"every,omitempty"`
	// CatchUp is what happens to runs missed while the server was down:
	// none, one (the default) or all.
	CatchUp string            `yaml:"catch_up,omitempty"`
	Job     PeriodicJobConfig `yaml:"job"`
}

// PeriodicJobConfig is the job template of a schedule. Payload is any YAML
// value; it is stored as JSON.
type PeriodicJobConfig struct {
	Queue       string   `yaml:"queue,omitempty"`
	Type        string   `yaml:"type"`
	Payload     any      `yaml:"payload,omitempty"`
	Priority    int32    `yaml:"priority,omitempty"`
	MaxAttempts int      `yaml:"max_attempts,omitempty"`
	Timeout     Duration `yaml:"timeout,omitempty"`
}

// checkPeriodic checks the shape of the periodic: mapping (the strict
// decoder then reports unknown keys inside it with their line).
func checkPeriodic(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &FieldError{Key: periodicKey, Line: n.Line, Problem: "must be a mapping of schedule names to schedules"}
	}
	var scratch map[string]PeriodicConfig
	if err := n.Decode(&scratch); err != nil {
		return &FieldError{Key: periodicKey, Line: n.Line, Problem: yamlProblem(err)}
	}
	return nil
}

// Input is the schedule as the periodic builder takes it.
func (p *PeriodicConfig) Input() (periodic.Input, error) {
	in := periodic.Input{Cron: p.Cron, Every: p.Every.Duration(), CatchUp: p.CatchUp, Job: jobspec.Input{
		Queue: p.Job.Queue, Type: p.Job.Type, Priority: p.Job.Priority,
		MaxAttempts: p.Job.MaxAttempts, Timeout: p.Job.Timeout.Duration(),
	}}
	if p.Job.Payload != nil {
		b, err := json.Marshal(p.Job.Payload)
		if err != nil {
			return in, fmt.Errorf("job.payload: not representable as JSON: %v", err)
		}
		in.Job.Payload = b
	}
	return in, nil
}

// PeriodicBuilder builds the schedules with the job defaults of c.
func (c *Config) PeriodicBuilder() periodic.Builder {
	return periodic.Builder{Jobs: jobspec.Builder{
		DefaultQueue:       c.Defaults.Queue,
		DefaultMaxAttempts: c.Retry.MaxAttempts,
		DefaultTimeout:     c.Defaults.Timeout.Duration(),
		MaxPayload:         int64(c.Limits.MaxPayload),
	}}
}

// PeriodicNames lists the schedules' names in order.
func (c *Config) PeriodicNames() []string {
	names := make([]string, 0, len(c.Periodic))
	for n := range c.Periodic {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// BuildPeriodic builds the definition of every configured schedule, by
// name, with origin fsm.OriginConfig.
func (c *Config) BuildPeriodic() ([]string, []fsm.ScheduleDef, error) {
	b := c.PeriodicBuilder()
	names := c.PeriodicNames()
	defs := make([]fsm.ScheduleDef, len(names))
	for i, name := range names {
		p := c.Periodic[name]
		in, err := p.Input()
		if err != nil {
			return nil, nil, &FieldError{Key: periodicKey + "." + name, Problem: err.Error()}
		}
		if defs[i], err = b.Build(name, &in, fsm.OriginConfig, time.Unix(0, 0)); err != nil {
			return nil, nil, periodicFieldError(name, err)
		}
	}
	return names, defs, nil
}

func (c *Config) validatePeriodic(v *validator) {
	if len(c.Periodic) > fsm.MaxSchedules {
		v.fail(periodicKey, "holds %d schedules, more than the limit of %d", len(c.Periodic), fsm.MaxSchedules)
		return
	}
	b := c.PeriodicBuilder()
	for _, name := range c.PeriodicNames() {
		p := c.Periodic[name]
		in, err := p.Input()
		if err == nil {
			_, err = b.Build(name, &in, fsm.OriginConfig, time.Unix(0, 0))
		}
		if err != nil {
			fe := periodicFieldError(name, err)
			v.fail(fe.Key, "%s", fe.Problem)
		}
	}
}

func periodicFieldError(name string, err error) *FieldError {
	key := periodicKey + "." + name
	if e, ok := err.(*jobspec.Error); ok {
		if e.Field != "" && e.Field != "name" {
			key += "." + e.Field
		}
		return &FieldError{Key: key, Problem: strings.TrimPrefix(e.Msg, ": ")}
	}
	return &FieldError{Key: key, Problem: err.Error()}
}
