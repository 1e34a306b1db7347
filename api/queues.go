package api

import "time"

// CodeCanceled (409): a heartbeat, completion or failure names a job that
// was canceled (typically while the worker ran it): stop working on it; the
// report was refused and the job stays canceled.
const CodeCanceled = "canceled"

// Queue is one queue as GET /v1/queues and GET /v1/queues/{name} show it,
// and as the calls that change it answer: its jobs by state, its settings
// and what holds back its leases.
type Queue struct {
	Name string `json:"name"`
	// Paused queues hand out no job; enqueues still work.
	Paused bool `json:"paused"`
	// Concurrency is the most jobs of the queue in flight at once, across
	// every worker (0: no limit).
	Concurrency int `json:"concurrency"`
	// Rate is the most leases per period (null: no limit).
	Rate *Rate       `json:"rate"`
	Jobs StateCounts `json:"jobs"`
	// RateWindow is the current rate window, while one is open.
	RateWindow *RateWindow `json:"rate_window,omitempty"`
	// Blocked says what holds back leases now: "paused", "concurrency"
	// (the limit of jobs in flight is reached) or "rate" (the rate window
	// is used up); omitted when nothing does.
	Blocked string `json:"blocked,omitempty"`
}

// Rate is a rate limit: at most Limit leases per Period (a duration
// string, "1s"). In a request, a Limit of 0 (or null for the whole rate)
// removes the limit.
type Rate struct {
	Limit  int    `json:"limit"`
	Period string `json:"period,omitempty"`
}

// RateWindow is a queue's open rate window: Used of the rate's Limit
// leases were handed out in it; it ends at ResetsAt.
type RateWindow struct {
	Used     int       `json:"used"`
	ResetsAt time.Time `json:"resets_at"`
}

// QueueList answers GET /v1/queues: every queue that holds jobs or has
// settings, sorted by name.
type QueueList struct {
	Queues []Queue `json:"queues"`
}

// QueueSettings is the body of PUT /v1/queues/{name}, which replaces every
// setting (an absent one takes its default: running, no limit), and of
// PATCH /v1/queues/{name}, which changes only the settings given. A
// concurrency of 0 and a rate with limit 0 (or null) mean no limit.
type QueueSettings struct {
	Paused      *bool `json:"paused,omitempty"`
	Concurrency *int  `json:"concurrency,omitempty"`
	Rate        *Rate `json:"rate,omitempty"`
}
