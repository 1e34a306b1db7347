package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// QueuesConfig holds settings of named queues (YAML `queues:`, flag
// --queue). The server proposes them at start (in a cluster, the first
// time this node leads after its start), for the settings that differ from
// the state: a setting given here replaces what the API set; a setting not
// given keeps it. docs/queues.md describes the controls.
//
//	queues:
//	  emails: {concurrency: 5, rate: {limit: 100, period: 1s}}
//	  reports: {paused: true}
type QueuesConfig map[string]QueueConfig

// QueueConfig is the settings of one queue; nil fields are not set.
type QueueConfig struct {
	// Paused makes leases skip the queue (true), or resumes it (false).
	Paused *bool `yaml:"paused"`
	// Concurrency is the most jobs of the queue in flight at once, across
	// every worker (0: no limit).
	Concurrency *int `yaml:"concurrency"`
	// Rate is the most leases of the queue per period (limit 0: no limit).
	Rate *RateConfig `yaml:"rate"`
}

// RateConfig is a rate limit: at most Limit leases per Period.
type RateConfig struct {
	Limit  int      `yaml:"limit"`
	Period Duration `yaml:"period"`
}

// Limits of queue settings (as the state machine's).
const (
	maxQueueConcurrency = 1_000_000
	maxQueueRate        = 1_000_000_000
	maxRatePeriod       = 7 * 24 * time.Hour
)

var queueKeys = []string{"paused", "concurrency", "rate"}
var rateKeys = []string{"limit", "period"}

// UnmarshalYAML decodes the queues mapping strictly: an unknown key of a
// queue or of its rate is an error naming it and its line.
func (q *QueuesConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("must be a mapping of queue names to their settings")
	}
	out := QueuesConfig{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, vn := n.Content[i].Value, n.Content[i+1]
		if _, dup := out[name]; dup {
			return fmt.Errorf("%s (line %d): queue listed twice", name, n.Content[i].Line)
		}
		var qc QueueConfig
		if err := decodeMapping(vn, name, queueKeys, func(key string, v *yaml.Node) error {
			switch key {
			case "paused":
				qc.Paused = new(bool)
				return v.Decode(qc.Paused)
			case "concurrency":
				qc.Concurrency = new(int)
				return v.Decode(qc.Concurrency)
			}
			qc.Rate = &RateConfig{}
			return decodeMapping(v, name+".rate", rateKeys, func(key string, v *yaml.Node) error {
				if key == "limit" {
					return v.Decode(&qc.Rate.Limit)
				}
				return v.Decode(&qc.Rate.Period)
			})
		}); err != nil {
			return err
		}
		out[name] = qc
	}
	if len(out) == 0 {
		out = nil // as the default
	}
	*q = out
	return nil
}

// decodeMapping calls set for each key of the mapping n (at path), which
// must be one of known.
func decodeMapping(n *yaml.Node, path string, known []string, set func(key string, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s (line %d): must be a mapping with keys %s", path, n.Line, strings.Join(known, ", "))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			return fmt.Errorf("%s.%s (line %d): unknown key (known keys: %s)", path, k.Value, k.Line, strings.Join(known, ", "))
		}
		if err := set(k.Value, v); err != nil {
			return fmt.Errorf("%s.%s (line %d): %s", path, k.Value, v.Line, yamlProblem(err))
		}
	}
	return nil
}

// Set parses one --queue flag, NAME:KEY=VALUE[,KEY=VALUE...] with the keys
// paused (true or false), concurrency (a number) and rate (LIMIT/PERIOD,
// e.g. 100/1s, or 0 for none), and adds the queue.
func (q *QueuesConfig) Set(s string) error {
	name, list, ok := strings.Cut(s, ":")
	if !ok || name == "" || list == "" {
		return fmt.Errorf("want NAME:KEY=VALUE[,KEY=VALUE...], like emails:concurrency=5,rate=100/1s, got %q", s)
	}
	var qc QueueConfig
	for _, kv := range strings.Split(list, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("queue %s: %q is not KEY=VALUE", name, kv)
		}
		switch k {
		case "paused":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("queue %s: paused must be true or false, got %q", name, v)
			}
			qc.Paused = &b
		case "concurrency":
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("queue %s: concurrency must be a number, got %q", name, v)
			}
			qc.Concurrency = &n
		case "rate":
			limit, period, err := ParseRate(v)
			if err != nil {
				return fmt.Errorf("queue %s: %w", name, err)
			}
			qc.Rate = &RateConfig{Limit: limit, Period: Duration(period)}
		default:
			return fmt.Errorf("queue %s: unknown key %q (known keys: %s)", name, k, strings.Join(queueKeys, ", "))
		}
	}
	if *q == nil {
		*q = QueuesConfig{}
	}
	(*q)[name] = qc
	return nil
}

// ParseRate parses LIMIT/PERIOD (100/1s, 5/1m) or "0" (no limit).
func ParseRate(s string) (limit int, period time.Duration, err error) {
	if s == "0" || s == "none" {
		return 0, 0, nil
	}
	l, p, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate must be LIMIT/PERIOD, like 100/1s (or 0 for no limit), got %q", s)
	}
	if limit, err = strconv.Atoi(l); err != nil {
		return 0, 0, fmt.Errorf("rate %q: the limit must be a number", s)
	}
	if period, err = time.ParseDuration(p); err != nil {
		return 0, 0, fmt.Errorf("rate %q: the period must be a duration like 1s", s)
	}
	return limit, period, nil
}

func (q *QueuesConfig) String() string {
	if q == nil || len(*q) == 0 {
		return ""
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(*q)) {
		qc := (*q)[name]
		var kv []string
		if qc.Paused != nil {
			kv = append(kv, "paused="+strconv.FormatBool(*qc.Paused))
		}
		if qc.Concurrency != nil {
			kv = append(kv, "concurrency="+strconv.Itoa(*qc.Concurrency))
		}
		if qc.Rate != nil {
			kv = append(kv, fmt.Sprintf("rate=%d/%s", qc.Rate.Limit, qc.Rate.Period))
		}
		parts = append(parts, name+":"+strings.Join(kv, ","))
	}
	return strings.Join(parts, " ")
}

// Type is the flag's value type in the help.
func (q *QueuesConfig) Type() string { return "queue" }

// validateQueues checks every queue's name and settings.
func (c *Config) validateQueues(v *validator) {
	for _, name := range slices.Sorted(maps.Keys(c.Queues)) {
		qc := c.Queues[name]
		key := "queues." + name
		if !queueName.MatchString(name) {
			v.fail(key, "the queue name must be 1 to 128 of [a-zA-Z0-9_.-]")
			continue
		}
		if qc.Paused == nil && qc.Concurrency == nil && qc.Rate == nil {
			v.fail(key, "sets nothing: give paused, concurrency or rate")
		}
		if n := qc.Concurrency; n != nil && (*n < 0 || *n > maxQueueConcurrency) {
			v.fail(key+".concurrency", "must be between 0 (no limit) and %d, got %d", maxQueueConcurrency, *n)
		}
		if r := qc.Rate; r != nil {
			switch {
			case r.Limit < 0 || r.Limit > maxQueueRate:
				v.fail(key+".rate.limit", "must be between 0 (no limit) and %d, got %d", maxQueueRate, r.Limit)
			case r.Limit == 0 && r.Period != 0:
				v.fail(key+".rate.period", "must not be given without a limit, got %s", r.Period)
			case r.Limit > 0 && (r.Period.Duration() < time.Millisecond || r.Period.Duration() > maxRatePeriod):
				v.fail(key+".rate.period", "must be between 1ms and 168h, got %s", r.Period)
			}
		}
	}
}
