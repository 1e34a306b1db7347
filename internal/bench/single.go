package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// The single-job scenarios (enqueue, noop-http, enqueue-client) share one
// load generator, singles: Clients goroutines, each making one call for one
// job at a time until the work runs out. enqueue and noop-http also share
// the call, poster.post: the same HTTP client settings, headers and body,
// against the server or against the noop handler, so that the ratio of
// their figures is the server's own cost.

// singles runs call once per job from r.o.Clients goroutines until the
// work runs out, as the timed phase, and records each call's latency as
// "request". label names the scenario in errors and the progress bar.
func (r *run) singles(ctx context.Context, label string, call func(ctx context.Context) error) error {
	w := newWork(r.o)
	lat := newRecorder("request")
	prog := startProgress(r.o.Progress, label, r.o.Jobs*boolInt(r.o.Duration == 0), r.o.Duration)
	defer prog.end()
	var done atomic.Int64
	err := r.timed(ctx, func() error {
		return group(ctx, r.o.Clients, func(ctx context.Context, _ int) error {
			sh := lat.shard()
			for w.take(1) == 1 {
				start := time.Now()
				if err := call(ctx); err != nil {
					return fmt.Errorf("bench: %s: %w", label, err)
				}
				sh.add(time.Since(start))
				done.Add(1)
				prog.add(1)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	l := lat.summary()
	r.res.Jobs, r.res.Requests, r.res.Latency = int(done.Load()), l.Count, []Latency{l}
	return nil
}

// benchRequest is the job every single-job and stream scenario enqueues.
func (r *run) benchRequest() api.EnqueueRequest {
	return api.EnqueueRequest{Queue: r.queue, Type: TypeBench, Payload: r.payload}
}

// enqueue: single-job POST /v1/jobs from Clients clients.
func (r *run) enqueue(ctx context.Context) error {
	p, err := newPoster(r.t.url, r.t.token, r.benchRequest())
	if err != nil {
		return err
	}
	defer p.close()
	return r.singles(ctx, "enqueue", p.post)
}

// noopHTTP: enqueue's load generator against the noop handler (the
// target startNoop made).
func (r *run) noopHTTP(ctx context.Context) error {
	p, err := newPoster(r.t.url, "", r.benchRequest())
	if err != nil {
		return err
	}
	defer p.close()
	if err := r.singles(ctx, "noop-http", p.post); err != nil {
		return err
	}
	r.res.Answered = int(r.t.answered.Load())
	if r.res.Answered != r.res.Jobs {
		return fmt.Errorf("bench: noop-http: the handler answered %d requests, the clients counted %d", r.res.Answered, r.res.Jobs)
	}
	return nil
}

// enqueueClient: Clients goroutines calling the Go client's Enqueue on the
// target's one client.Client.
func (r *run) enqueueClient(ctx context.Context) error {
	req := r.benchRequest()
	return r.singles(ctx, "enqueue-client", func(ctx context.Context) error {
		res, err := r.t.c.Enqueue(ctx, req)
		if err == nil && res.ID == "" {
			err = errors.New("an answer without an id")
		}
		return err
	})
}

// newHTTPClient returns an HTTP client with the transport of client.New.
func newHTTPClient() *http.Client { return &http.Client{Transport: client.NewTransport()} }

// maxAnswer bounds how much of an answer poster reads.
const maxAnswer = 1 << 20

// poster sends single-job enqueues, POST /v1/jobs, as the Go client's
// Enqueue did before it could use a stream: one request per job, the JSON
// body (encoded once: every job is the same), Content-Type and Accept
// application/json, the bearer token, and the answer decoded.
type poster struct {
	hc    *http.Client
	url   string
	token string
	body  []byte
}

func newPoster(base, token string, req api.EnqueueRequest) (*poster, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("bench: encode the job: %w", err)
	}
	return &poster{hc: newHTTPClient(), url: base + "/v1/jobs", token: token, body: body}, nil
}

// post enqueues one job; an answer other than 201 with an id is an error.
func (p *poster) post(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("POST /v1/jobs: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/jobs: %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), bytes.TrimSpace(b))
	}
	var out api.EnqueueResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("POST /v1/jobs: decode answer: %w", err)
	}
	if out.ID == "" {
		return fmt.Errorf("POST /v1/jobs: an answer without an id: %s", bytes.TrimSpace(b))
	}
	return nil
}

func (p *poster) close() { p.hc.CloseIdleConnections() }

// noopAnswer is the noop handler's answer: the size of a real enqueue
// answer (a 7-digit id).
var noopAnswer = []byte(`{"id":"1000000","state":"pending","duplicate":false}` + "\n")

// noopHandler reads the body and answers 201 with noopAnswer, as POST
// /v1/jobs does, doing nothing else; it counts its answers.
func noopHandler(answered *atomic.Int64) http.Handler {
	n := strconv.Itoa(len(noopAnswer))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", n)
		w.WriteHeader(http.StatusCreated)
		w.Write(noopAnswer)
		answered.Add(1)
	})
}

// startNoop starts the noop handler on a listener of its own on 127.0.0.1
// and returns it as the target of noop-http (its usage is this process's;
// it holds no queue).
func startNoop() (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: noop handler: %w", err)
	}
	t := &target{usageSource: "self"}
	srv := &http.Server{Handler: noopHandler(&t.answered), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.url = "http://" + ln.Addr().String()
	t.name = "noop HTTP handler in this process (" + t.url + ")"
	t.usage = func(context.Context) (Usage, error) { return selfUsage() }
	t.counts = func(context.Context, string) (api.StateCounts, error) { return api.StateCounts{}, nil }
	t.close = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if err != nil {
			srv.Close()
		}
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}
	return t, nil
}
