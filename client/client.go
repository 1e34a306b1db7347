// Package client is the Go client of Beaver-Raft's HTTP API (v1), and a
// remote worker loop built on it (Worker).
//
//	c := client.New("http://127.0.0.1:7070", client.WithToken(token))
//	defer c.Close()
//	res, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "email", Payload: json.RawMessage(`{"to":"a@b.c"}`)})
//
// Every method returns the server's answer decoded, or an error: a
// *client.Error when the server answered an error (use errors.As to read
// its status and code), or the transport's error.
//
// A Client is safe for concurrent use. Its default transport keeps up to
// 256 idle keep-alive connections to the server, enough for many
// concurrent callers (benchmarks, workers with high concurrency).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// MaxIdleConns is the number of idle keep-alive connections the default
// transport keeps to the server.
const MaxIdleConns = 256

// Client calls the HTTP API of one server.
type Client struct {
	base  string   // the first server
	bases []string // every server, base first
	cur   atomic.Int32
	token string
	hc    *http.Client
	owned bool // hc was made by New: Close closes its idle connections

	noStream  bool               // WithoutStream
	streamOff atomic.Bool        // the server has no stream route
	sm        sync.Mutex         // guards pipe and pipes
	pipe      *pipe              // the enqueue stream new calls go on, or nil
	pipes     map[*pipe]struct{} // every stream whose goroutines run
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer token" with every call.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes the Client use hc (its transport, timeouts,
// redirects). Do not give hc a Timeout shorter than the long polls of
// Lease; bound each call with its context instead. With a Timeout, Enqueue
// sends one POST /v1/jobs per call (as WithoutStream): the timeout would
// cut the long-lived enqueue stream.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc, c.owned = hc, false } }

// WithServers adds other nodes of the same cluster. A call that finds its
// node down, or answered that nothing was written (503 unavailable or
// not_leader), is sent again to the next node; an enqueue whose outcome was
// lost with a leader (503 unknown_outcome) is sent again only when every
// job of it has a unique_key, which makes the retry safe. Retries stop
// with the call's context.
func WithServers(urls ...string) Option {
	return func(c *Client) {
		for _, u := range urls {
			c.bases = append(c.bases, normalizeURL(u))
		}
	}
}

func normalizeURL(u string) string {
	u = strings.TrimRight(u, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u
}

// NewTransport returns the transport New uses: a clone of
// http.DefaultTransport keeping MaxIdleConns idle connections per server.
func NewTransport() *http.Transport {
	t, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		t = t.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second}
	}
	t.MaxIdleConns = MaxIdleConns
	t.MaxIdleConnsPerHost = MaxIdleConns
	return t
}

// New returns a Client of the server at baseURL, e.g.
// "http://127.0.0.1:7070" ("127.0.0.1:7070" means the same).
func New(baseURL string, opts ...Option) *Client {
	base := normalizeURL(baseURL)
	c := &Client{base: base, bases: []string{base}, hc: &http.Client{Transport: NewTransport()}, owned: true}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close ends the Client's enqueue stream, waits for its goroutines, and
// closes the idle connections of the default transport. Enqueue calls
// waiting on the stream get an error (unknown_outcome for the lines that
// were sent). The Client remains usable (it opens new connections).
func (c *Client) Close() {
	c.closeStream()
	if c.owned {
		c.hc.CloseIdleConnections()
	}
}

// Error is an error answer of the server.
type Error struct {
	Status  int    // HTTP status, e.g. 409
	Code    string // one of the api.Code constants, e.g. api.CodeConflict
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("beaver-raft: %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrorCode returns the api code of err if it is (or wraps) an *Error, else
// "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Enqueue adds one job. It returns once the job is durable.
//
// Concurrent calls are coalesced onto one enqueue stream
// (POST /v1/jobs/stream), opened at the first call and closed after
// StreamIdle without calls or by Close: each call still gets its own
// answer. When the stream breaks, a call whose line was sent and not
// answered gets unknown_outcome, and is sent again only if it has a
// unique_key (as WithServers retries); a call whose line was not sent is
// sent again on a new stream. A server without the stream route (404/405)
// makes the Client send one POST /v1/jobs per call from then on, as
// WithoutStream does.
func (c *Client) Enqueue(ctx context.Context, req api.EnqueueRequest) (api.EnqueueResponse, error) {
	if !c.noStream && c.hc.Timeout == 0 && !c.streamOff.Load() {
		return c.enqueueStream(ctx, req)
	}
	var out api.EnqueueResponse
	return out, c.call(ctx, "POST", "/v1/jobs", req, &out, req.UniqueKey != "")
}

// EnqueueBatch adds many jobs in one durable write, all or none
// (POST /v1/jobs/batch).
func (c *Client) EnqueueBatch(ctx context.Context, req api.BatchRequest) (api.BatchResponse, error) {
	var out api.BatchResponse
	keyed := len(req.Jobs) > 0
	for _, j := range req.Jobs {
		keyed = keyed && j.UniqueKey != ""
	}
	var in any = req
	if b, ok := encodeBatch(&req); ok {
		in = encodedBody(b) // what json.Marshal(req) gives, without reflection
	}
	return out, c.call(ctx, "POST", "/v1/jobs/batch", in, &out, keyed)
}

// Get returns job id (GET /v1/jobs/{id}).
func (c *Client) Get(ctx context.Context, id string) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &out)
}

// ListOptions filter GET /v1/jobs. Zero fields match everything.
type ListOptions struct {
	Queue  string
	State  string // one of the api.State constants
	Type   string
	Limit  int    // jobs per page: default 100, at most 1000
	Cursor string // NextCursor of the previous page
}

// List returns one page of jobs in id order (GET /v1/jobs).
func (c *Client) List(ctx context.Context, opts ListOptions) (api.ListResponse, error) {
	q := url.Values{}
	for k, v := range map[string]string{"queue": opts.Queue, "state": opts.State, "type": opts.Type, "cursor": opts.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	path := "/v1/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out api.ListResponse
	return out, c.do(ctx, "GET", path, nil, &out)
}

// Cancel cancels job id and returns it (POST /v1/jobs/{id}/cancel).
func (c *Client) Cancel(ctx context.Context, id string) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &out)
}

// Retry makes a failed, canceled or scheduled job id runnable now and
// returns it (POST /v1/jobs/{id}/retry).
func (c *Client) Retry(ctx context.Context, id string) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/retry", nil, &out)
}

// Lease takes runnable jobs, long-polling up to req.Wait when there is none
// (POST /v1/lease). Cancel ctx to stop waiting.
func (c *Client) Lease(ctx context.Context, req api.LeaseRequest) (api.LeaseResponse, error) {
	var out api.LeaseResponse
	return out, c.do(ctx, "POST", "/v1/lease", req, &out)
}

// Complete reports the success of a leased job and returns the job
// (POST /v1/jobs/{id}/complete).
func (c *Client) Complete(ctx context.Context, id string, req api.CompleteRequest) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/complete", req, &out)
}

// Fail reports the failure of a leased job and returns the job, scheduled
// for a retry or failed (POST /v1/jobs/{id}/fail).
func (c *Client) Fail(ctx context.Context, id string, req api.FailRequest) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/fail", req, &out)
}

// Heartbeat extends the lease of a running job and returns the job with its
// new lease deadline (POST /v1/jobs/{id}/heartbeat).
func (c *Client) Heartbeat(ctx context.Context, id string, req api.HeartbeatRequest) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/heartbeat", req, &out)
}

// Ack reports many completions and failures in one durable write
// (POST /v1/ack). A rejected ack (a stale lease) is a result with OK false,
// not an error.
func (c *Client) Ack(ctx context.Context, req api.AckRequest) (api.AckResponse, error) {
	var out api.AckResponse
	var in any = req
	if b, ok := encodeAck(&req); ok {
		in = encodedBody(b) // what json.Marshal(req) gives, without reflection
	}
	return out, c.do(ctx, "POST", "/v1/ack", in, &out)
}

// Status returns the server's status (GET /v1/status).
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var out api.Status
	return out, c.do(ctx, "GET", "/v1/status", nil, &out)
}

// Cluster returns the cluster status of the node (GET /v1/cluster); a
// single-node server answers 404.
func (c *Client) Cluster(ctx context.Context) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	return out, c.do(ctx, "GET", "/v1/cluster", nil, &out)
}

// ClusterJoin adds a node as a voter (POST /v1/cluster/join); any node
// passes it to the leader.
func (c *Client) ClusterJoin(ctx context.Context, nodeID, raftAddr string) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	return out, c.do(ctx, "POST", "/v1/cluster/join", api.ClusterJoinRequest{NodeID: nodeID, RaftAddr: raftAddr}, &out)
}

// ClusterRemove removes a node from the cluster (POST /v1/cluster/remove).
func (c *Client) ClusterRemove(ctx context.Context, nodeID string) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	return out, c.do(ctx, "POST", "/v1/cluster/remove", api.ClusterRemoveRequest{NodeID: nodeID}, &out)
}

// Ready returns nil when the server is ready (GET /readyz answered 200):
// its recovery is done and its log works.
func (c *Client) Ready(ctx context.Context) error {
	var out api.Health
	return c.do(ctx, "GET", "/readyz", nil, &out)
}

// Health returns nil when the server process serves (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	var out api.Health
	return c.do(ctx, "GET", "/healthz", nil, &out)
}

// Retry pacing of call.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
	maxRetries = 30
)

// call does a call with the cluster retries of WithServers (see there).
// idempotent says that a call whose outcome is unknown may be sent again.
func (c *Client) call(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	if method == http.MethodGet {
		idempotent = true
	}
	wait := retryFirst
	for attempt := 0; ; attempt++ {
		i := int(c.cur.Load()) % len(c.bases)
		err := c.doAt(ctx, c.bases[i], method, path, in, out)
		if err == nil || attempt >= maxRetries || !retryable(err, idempotent, len(c.bases) > 1) {
			return err
		}
		c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.bases))) // try the next node
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// retryable says whether a failed call may be sent again. With one server
// only the answers of a cluster node in an election are retried: a server
// that is down or recovering is the caller's to wait for.
func retryable(err error, idempotent, others bool) bool {
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case api.CodeNotLeader:
			return true // nothing was written; a leader is being elected
		case api.CodeUnavailable:
			return others && e.Status == http.StatusServiceUnavailable // nothing was written
		case api.CodeUnknownOutcome:
			return idempotent
		}
		return false
	}
	if !others {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true // the request never left
	}
	return idempotent && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// do sends one call: in (if not nil) as the JSON body, the JSON answer
// decoded into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out, false)
}

// doAt sends one call to the server at base.
func (c *Client) doAt(ctx context.Context, base, method, path string, in, out any) error {
	var body io.Reader
	if b, ok := in.(encodedBody); ok {
		body = bytes.NewReader(b)
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody)) // keep the connection reusable
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	if hasFastDecoder(out) {
		var b []byte
		if b, err = readBody(resp); err == nil {
			err = decodeAnswer(b, out)
		}
	} else {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// readBody reads an answer's body whole: in one allocation when its length
// is known (io.ReadAll grows its buffer step by step).
func readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n > 0 && n <= maxSizedBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(resp.Body)
}

// maxSizedBody bounds the buffer readBody makes up front from a
// Content-Length; a longer body is read as it comes.
const maxSizedBody = 64 << 20

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e api.Error
	if err := json.Unmarshal(b, &e); err == nil && e.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}
