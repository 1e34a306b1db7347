package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

// target is the server a run drives.
type target struct {
	name string
	// url is the base URL of the node the clients talk to
	// (http://host:port), and token the bearer token it wants ("": none):
	// for the load generators that speak HTTP without the Go client.
	url         string
	token       string
	c           *client.Client
	dir         string // the data directory of a server this run started
	usageSource string
	// metricsURL is the server's /metrics, read for the WAL's figures
	// ("": unknown).
	metricsURL string
	hc         *http.Client
	// usage reads the server's CPU time and memory.
	usage func(ctx context.Context) (Usage, error)
	// counts reads the jobs of a queue by state.
	counts func(ctx context.Context, queue string) (api.StateCounts, error)
	// changed returns a channel closed at the next change that may have
	// completed jobs; nil: poll.
	changed func() <-chan struct{}
	close   func() error
	// answered counts the requests the noop-http handler answered.
	answered atomic.Int64
	// settle, if set, waits until the node the clients talk to has applied
	// every write answered so far (a follower of a cluster).
	settle func(ctx context.Context) error
}

// statusCounts reads a queue's counts from GET /v1/status.
func statusCounts(ctx context.Context, c *client.Client, queue string) (api.StateCounts, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return api.StateCounts{}, err
	}
	return st.Queues[queue], nil
}

// dialTarget checks that the server at o.Server is ready and returns it.
func dialTarget(ctx context.Context, o Options) (*target, error) {
	var opts []client.Option
	if o.Token != "" {
		opts = append(opts, client.WithToken(o.Token))
	}
	c := client.New(o.Server, opts...)
	if _, err := c.Status(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: server %s: %w", o.Server, err)
	}
	metricsURL := o.Metrics
	if metricsURL == "" {
		var err error
		if metricsURL, err = DefaultMetricsURL(o.Server); err != nil {
			c.Close()
			return nil, err
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	return &target{
		name:        o.Server,
		url:         normalizeURL(o.Server),
		token:       o.Token,
		c:           c,
		usageSource: "metrics",
		metricsURL:  metricsURL,
		hc:          hc,
		usage:       func(ctx context.Context) (Usage, error) { return metricsUsage(ctx, hc, metricsURL) },
		counts:      func(ctx context.Context, q string) (api.StateCounts, error) { return statusCounts(ctx, c, q) },
		close: func() error {
			c.Close()
			hc.CloseIdleConnections()
			return nil
		},
	}, nil
}

// normalizeURL is a server URL as client.New reads it: without a trailing
// slash, http:// when it names no scheme.
func normalizeURL(u string) string {
	u = strings.TrimRight(u, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u
}

// DefaultMetricsURL is the metrics URL of the server at serverURL: the same
// host, port 9090 (the default metrics_listen), path /metrics.
func DefaultMetricsURL(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		if u, err = url.Parse("http://" + serverURL); err != nil {
			return "", fmt.Errorf("bench: server URL %q: %w", serverURL, err)
		}
	}
	return "http://" + net.JoinHostPort(u.Hostname(), "9090") + "/metrics", nil
}

// startInProcess starts a server in this process on a new temporary data
// directory.
func startInProcess(ctx context.Context, o Options) (*target, error) {
	dir, err := os.MkdirTemp(o.DataDir, "beaver-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	removeDir := func() {
		if !o.Keep {
			os.RemoveAll(dir)
		}
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Sync = config.SyncMode(o.Sync)
	cfg.Workers = o.Workers
	s, err := server.New(server.Options{Config: cfg, Logger: o.Logger, Version: "bench"})
	if err != nil {
		removeDir()
		return nil, fmt.Errorf("bench: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		stop()
		removeDir()
		return nil, fmt.Errorf("bench: starting the server: %w", err)
	case <-ctx.Done():
		stop()
		<-done
		removeDir()
		return nil, ctx.Err()
	}
	base := "http://" + s.Addr().String()
	c := client.New(base)
	hc := &http.Client{Timeout: 10 * time.Second}
	return &target{
		name:        "in-process",
		url:         base,
		c:           c,
		dir:         dir,
		usageSource: "self",
		metricsURL:  "http://" + s.MetricsAddr().String() + "/metrics",
		hc:          hc,
		usage:       func(context.Context) (Usage, error) { return selfUsage() },
		counts: func(_ context.Context, q string) (api.StateCounts, error) {
			rep := s.Replica()
			if rep == nil {
				return api.StateCounts{}, errors.New("the server is not running")
			}
			return replicaCounts(rep, q), nil
		},
		changed: func() <-chan struct{} {
			if rep := s.Replica(); rep != nil {
				return rep.Changed()
			}
			return nil
		},
		close: func() error {
			stop()
			err := <-done
			c.Close()
			hc.CloseIdleConnections()
			removeDir()
			return err
		},
	}, nil
}

// replicaCounts reads queue q's jobs by state from rep.
func replicaCounts(rep replica.Replica, q string) api.StateCounts {
	var qc fsm.QueueCounts
	rep.Read(func(m *fsm.Machine) {
		_, queues := m.Counts()
		for _, c := range queues {
			if c.Queue == q {
				qc = c
			}
		}
	})
	return api.StateCounts{
		Pending:   qc.Count(fsm.StatePending),
		Scheduled: qc.Count(fsm.StateScheduled),
		InFlight:  qc.Count(fsm.StateInFlight),
		Completed: qc.Count(fsm.StateCompleted),
		Failed:    qc.Count(fsm.StateFailed),
		Canceled:  qc.Count(fsm.StateCanceled),
	}
}

// pollEvery is how often waitCompleted reads the counts of a server it
// cannot watch for changes.
const pollEvery = 5 * time.Millisecond

// waitCompleted waits until n jobs of queue are completed. It fails when a
// job failed or was canceled, or when none completed for stallTimeout.
// prog, if set, follows the count.
func (t *target) waitCompleted(ctx context.Context, queue string, n int, prog *progress) error {
	var tick *time.Ticker
	if t.changed == nil {
		tick = time.NewTicker(pollEvery)
		defer tick.Stop()
	}
	last, lastChange := -1, time.Now()
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	for {
		var ch <-chan struct{}
		if t.changed != nil {
			ch = t.changed()
		}
		c, err := t.counts(ctx, queue)
		if err != nil {
			return err
		}
		if c.Failed > 0 || c.Canceled > 0 {
			return fmt.Errorf("bench: %d jobs failed and %d were canceled (want all completed)", c.Failed, c.Canceled)
		}
		if c.Completed != last {
			prog.add(c.Completed - max(last, 0))
			last, lastChange = c.Completed, time.Now()
			stall.Reset(stallTimeout)
		}
		if c.Completed >= n {
			return nil
		}
		var tc <-chan time.Time
		if tick != nil {
			tc = tick.C
		}
		select {
		case <-ch:
		case <-tc:
		case <-stall.C:
			return fmt.Errorf("bench: %d of %d jobs completed, none for %s since %s (does the server run these jobs?)",
				last, n, stallTimeout, lastChange.Format(time.TimeOnly))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
