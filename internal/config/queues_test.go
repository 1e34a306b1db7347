package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestQueuesFromYAML(t *testing.T) {
	c, err := Load(writeFile(t, `
queues:
  emails:
    concurrency: 5
    rate: {limit: 100, period: 1s}
  reports: {paused: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e, r := c.Queues["emails"], c.Queues["reports"]
	if e.Paused != nil || e.Concurrency == nil || *e.Concurrency != 5 || e.Rate == nil || e.Rate.Limit != 100 || e.Rate.Period.Duration() != time.Second {
		t.Fatalf("emails: %+v", e)
	}
	if r.Paused == nil || !*r.Paused || r.Concurrency != nil || r.Rate != nil {
		t.Fatalf("reports: %+v", r)
	}
}

func TestQueuesYAMLIsStrict(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"queues:\n  emails: {concurency: 5}\n", "emails.concurency (line 2): unknown key"},
		{"queues:\n  emails: {rate: {limit: 1, per: 1s}}\n", "emails.rate.per (line 2): unknown key"},
		{"queues:\n  emails: {concurrency: many}\n", "emails.concurrency (line 2)"},
		{"queues:\n  emails: {rate: {limit: 1, period: 10}}\n", "emails.rate.period (line 2)"},
		{"queues:\n  emails: 5\n", "emails (line 2): must be a mapping"},
		{"queues: [a]\n", "must be a mapping"},
	} {
		_, err := Load(writeFile(t, tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !slices.Equal(keysOf(err), []string{"queues"}) {
			t.Errorf("%q: %v, want an error on queues containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestQueuesValidate(t *testing.T) {
	neg, big, zero := -1, maxQueueConcurrency+1, 0
	for _, tc := range []struct {
		q   QueueConfig
		key string
	}{
		{QueueConfig{}, "queues.q"},
		{QueueConfig{Concurrency: &neg}, "queues.q.concurrency"},
		{QueueConfig{Concurrency: &big}, "queues.q.concurrency"},
		{QueueConfig{Rate: &RateConfig{Limit: -1, Period: Duration(time.Second)}}, "queues.q.rate.limit"},
		{QueueConfig{Rate: &RateConfig{Limit: 5}}, "queues.q.rate.period"},
		{QueueConfig{Rate: &RateConfig{Period: Duration(time.Second)}}, "queues.q.rate.period"},
		{QueueConfig{Rate: &RateConfig{Limit: 5, Period: Duration(200 * time.Hour)}}, "queues.q.rate.period"},
	} {
		c := Default()
		c.Queues = QueuesConfig{"q": tc.q}
		if err := c.Validate(); !slices.Equal(keysOf(err), []string{tc.key}) {
			t.Errorf("%+v: %v, want an error naming %s", tc.q, err, tc.key)
		}
	}
	c := Default()
	c.Queues = QueuesConfig{"bad name": {Concurrency: &zero}}
	if err := c.Validate(); !slices.Equal(keysOf(err), []string{"queues.bad name"}) {
		t.Errorf("bad queue name: %v", err)
	}
	c.Queues = QueuesConfig{"ok": {Concurrency: &zero, Rate: &RateConfig{}}}
	if err := c.Validate(); err != nil {
		t.Errorf("clearing limits: %v", err)
	}
}

func TestQueueFlag(t *testing.T) {
	fs, err := parse(t, "--config", writeFile(t, "queues: {fromfile: {paused: true}}\n"),
		"--queue", "emails:concurrency=5,rate=100/1s", "--queue", "reports:paused=true", "--queue", "old:rate=0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Resolve(fs)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Queues) != 3 {
		t.Fatalf("flags should replace the file's queues: %v", c.Queues.String())
	}
	if got := c.Queues.String(); got != "emails:concurrency=5,rate=100/1s old:rate=0/0s reports:paused=true" {
		t.Fatalf("queues %q", got)
	}
	for _, bad := range []string{"emails", "emails:", "emails:speed=1", "emails:rate=100", "emails:rate=x/1s", "emails:paused=maybe", "emails:concurrency=five"} {
		if _, err := parse(t, "--queue", bad); err == nil || !strings.Contains(err.Error(), "queue") {
			t.Errorf("--queue %s: %v", bad, err)
		}
	}
}
