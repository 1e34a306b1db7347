package client

import (
	"context"
	"errors"
	"net/url"

	"github.com/beaver-raft/beaver-raft/api"
)

// Queues lists every queue that holds jobs or has settings, with its
// counts, settings and what holds back its leases (GET /v1/queues).
func (c *Client) Queues(ctx context.Context) ([]api.Queue, error) {
	var out api.QueueList
	return out.Queues, c.do(ctx, "GET", "/v1/queues", nil, &out)
}

// Queue returns one queue (GET /v1/queues/{name}); a queue nobody used yet
// answers with no jobs and no settings.
func (c *Client) Queue(ctx context.Context, name string) (api.Queue, error) {
	var out api.Queue
	return out, c.do(ctx, "GET", queuePath(name), nil, &out)
}

// SetQueue replaces every setting of a queue: those s leaves nil take
// their default, running without limits (PUT /v1/queues/{name}).
func (c *Client) SetQueue(ctx context.Context, name string, s api.QueueSettings) (api.Queue, error) {
	var out api.Queue
	return out, c.call(ctx, "PUT", queuePath(name), s, &out, true)
}

// UpdateQueue changes the settings s gives and keeps the others (PATCH
// /v1/queues/{name}). A Concurrency of 0 or a Rate with Limit 0 removes
// that limit.
func (c *Client) UpdateQueue(ctx context.Context, name string, s api.QueueSettings) (api.Queue, error) {
	var out api.Queue
	return out, c.call(ctx, "PATCH", queuePath(name), s, &out, true)
}

// PauseQueue pauses a queue: leases skip it, enqueues still work (POST
// /v1/queues/{name}/pause). Jobs already running go on.
func (c *Client) PauseQueue(ctx context.Context, name string) (api.Queue, error) {
	var out api.Queue
	return out, c.call(ctx, "POST", queuePath(name)+"/pause", nil, &out, true)
}

// ResumeQueue resumes a paused queue (POST /v1/queues/{name}/resume).
func (c *Client) ResumeQueue(ctx context.Context, name string) (api.Queue, error) {
	var out api.Queue
	return out, c.call(ctx, "POST", queuePath(name)+"/resume", nil, &out, true)
}

func queuePath(name string) string { return "/v1/queues/" + url.PathEscape(name) }

// ErrJobCanceled is the cause (context.Cause) of the context of a Worker's
// handler whose job was canceled while it ran: the server answered a
// heartbeat with 409 canceled. The handler should stop; whatever it
// returns is not reported.
var ErrJobCanceled = errors.New("client: the job was canceled")

// IsCanceled reports whether err is the server's answer that the job was
// canceled (409 canceled) to a heartbeat, completion or failure.
func IsCanceled(err error) bool { return ErrorCode(err) == api.CodeCanceled }
