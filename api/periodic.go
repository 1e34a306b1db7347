package api

import (
	"encoding/json"
	"time"
)

// PeriodicRequest is the body of PUT /v1/periodic/{name}: a schedule that
// enqueues Job at every time of Cron, or every Every. Exactly one of Cron
// and Every is given. docs/periodic.md describes them.
type PeriodicRequest struct {
	// Cron is a cron expression of five fields ("0 3 * * *") or a
	// descriptor ("@hourly", "@every 90s"), in UTC unless it starts with
	// CRON_TZ=Zone.
	Cron string `json:"cron,omitempty"`
	// Every is an interval, e.g. "15m" (at least "1s"), counted from the
	// time the schedule was put.
	Every string `json:"every,omitempty"`
	// CatchUp is what happens to the runs missed while the server was down
	// (or without a leader): "none" skips them, "one" (the default) fires
	// the latest once, "all" fires each (at most the 1000 most recent).
	CatchUp string `json:"catch_up,omitempty"`
	// Job is the template of every run.
	Job PeriodicJob `json:"job"`
}

// PeriodicJob is the job template of a schedule: the fields of an
// [EnqueueRequest] that a run repeats. Only Type is required.
type PeriodicJob struct {
	Queue       string          `json:"queue,omitempty"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Priority    int32           `json:"priority,omitempty"`
	MaxAttempts int             `json:"max_attempts,omitempty"`
	Timeout     string          `json:"timeout,omitempty"`
}

// Periodic is a schedule as the server shows it (GET /v1/periodic/{name},
// the list, and the answer of PUT).
type Periodic struct {
	Name    string      `json:"name"`
	Cron    string      `json:"cron,omitempty"`
	Every   string      `json:"every,omitempty"`
	CatchUp string      `json:"catch_up"`
	Job     PeriodicJob `json:"job"`
	// Origin is "api" for a schedule put through the API, "config" for
	// one applied from the configuration file.
	Origin string `json:"origin"`
	// NextRun is the next run to fire (in the past while one is due).
	NextRun time.Time `json:"next_run,omitzero"`
	// LastFired is the scheduled time of the last run fired or skipped.
	LastFired time.Time `json:"last_fired,omitzero"`
	// Fired and Skipped count the runs enqueued and those the catch-up
	// policy skipped.
	Fired   uint64 `json:"fired"`
	Skipped uint64 `json:"skipped"`
	// Since is when the definition last changed: runs count from it.
	Since     time.Time `json:"since"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PeriodicList answers GET /v1/periodic: every schedule, by name.
type PeriodicList struct {
	Schedules []Periodic `json:"schedules"`
}
