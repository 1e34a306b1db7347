package client

import (
	"context"
	"net/url"

	"github.com/beaver-raft/beaver-raft/api"
)

// PutPeriodic creates or replaces the schedule name and returns it as
// stored (PUT /v1/periodic/{name}). Putting the same definition again
// changes nothing, so the call is safe to retry.
func (c *Client) PutPeriodic(ctx context.Context, name string, req api.PeriodicRequest) (api.Periodic, error) {
	var out api.Periodic
	return out, c.call(ctx, "PUT", "/v1/periodic/"+url.PathEscape(name), req, &out, true)
}

// GetPeriodic returns the schedule name, with its next run
// (GET /v1/periodic/{name}).
func (c *Client) GetPeriodic(ctx context.Context, name string) (api.Periodic, error) {
	var out api.Periodic
	return out, c.do(ctx, "GET", "/v1/periodic/"+url.PathEscape(name), nil, &out)
}

// ListPeriodic returns every schedule (GET /v1/periodic).
func (c *Client) ListPeriodic(ctx context.Context) (api.PeriodicList, error) {
	var out api.PeriodicList
	return out, c.do(ctx, "GET", "/v1/periodic", nil, &out)
}

// DeletePeriodic deletes the schedule name and returns it as it was
// (DELETE /v1/periodic/{name}). The jobs it enqueued stay.
func (c *Client) DeletePeriodic(ctx context.Context, name string) (api.Periodic, error) {
	var out api.Periodic
	return out, c.do(ctx, "DELETE", "/v1/periodic/"+url.PathEscape(name), nil, &out)
}
