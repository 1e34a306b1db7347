package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes res for people: throughput, latencies, server usage.
func WriteText(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	if rec := res.Recovery; rec != nil {
		fmt.Fprintf(tw, "%s: %s pending jobs recovered; server-reported recovery %s, wall time to ready %s\n",
			res.Scenario, thousands(float64(rec.Jobs)), roundDur(rec.ServerDuration), roundDur(rec.WallToReady))
		row("replayed", "%s jobs from a snapshot, %s WAL records", thousands(float64(rec.SnapshotJobs)), thousands(float64(rec.RecordsReplayed)))
	} else {
		fmt.Fprintf(tw, "%s: %s jobs in %s = %s jobs/s\n",
			res.Scenario, thousands(float64(res.Jobs)), roundDur(res.Elapsed), thousands(res.JobsPerSec))
	}
	target := res.Target
	if res.Target == "in-process" || res.Target == "child process" {
		target = fmt.Sprintf("%s server (sync %s, %d workers)", res.Target, res.Sync, res.Workers)
	}
	if res.Cluster > 0 {
		target = fmt.Sprintf("%s (%s, %d workers each)", res.Target, res.Sync, res.Workers)
	}
	if res.DataDir != "" {
		target += ", data kept in " + res.DataDir
	}
	row("target", "%s", target)
	row("load", "%s", loadText(res))
	if f := res.Fill; f != nil {
		row("fill", "%s jobs in %s = %s jobs/s (untimed)", thousands(float64(f.Jobs)), roundDur(f.Elapsed), thousands(f.JobsPerSec))
	}
	for _, l := range res.Latency {
		row("latency", "%-8s p50 %-9s p90 %-9s p99 %-9s max %-9s (%s)", l.Name,
			roundDur(l.P50), roundDur(l.P90), roundDur(l.P99), roundDur(l.Max), thousands(float64(l.Count)))
	}
	if res.Scenario == Remote && res.RemoteMode == RemoteWorker {
		row("latency", "not measured with client.Worker (use --remote-mode lean)")
	}
	if s := res.Server; s != nil {
		if s.Error != "" {
			row("server", "usage unknown: %s", s.Error)
		} else {
			var b strings.Builder
			fmt.Fprintf(&b, "cpu %s = %.2f cores", roundDur(s.CPU), s.CPUCores)
			if s.Source == "self" {
				b.WriteString(" (in-process: includes the load generator)")
			}
			fmt.Fprintf(&b, ", rss %s", mib(s.RSS))
			if s.PeakRSS > 0 {
				fmt.Fprintf(&b, ", peak %s", mib(s.PeakRSS))
			}
			row("server", "%s", b.String())
		}
	}
	if w := res.WAL; w != nil {
		row("wal", "%s fdatasyncs, %s each on average, %.0f%% of the time; %.1f records per fdatasync",
			thousands(float64(w.Fsyncs)), roundDur(w.FsyncAvg), w.FsyncBusy*100, w.RecordsPerFsync)
	}
	if res.Scenario == NoopHTTP {
		row("answered", "%s requests answered by the noop handler", thousands(float64(res.Answered)))
	} else {
		c := res.Counts
		row("queue", "%s: %d pending, %d in flight, %d completed, %d failed", res.Queue, c.Pending, c.InFlight, c.Completed, c.Failed)
	}
	return tw.Flush()
}

func loadText(res *Result) string {
	p := fmt.Sprintf("%d-byte payloads", res.PayloadSize)
	switch res.Scenario {
	case Enqueue:
		return fmt.Sprintf("%d clients, one job per request, %s", res.Clients, p)
	case NoopHTTP:
		return fmt.Sprintf("%d clients, one job per request (enqueue's load generator), %s; the handler only reads the body and answers 201", res.Clients, p)
	case EnqueueClient:
		return fmt.Sprintf("%d goroutines calling client.Enqueue on one shared client, %s", res.Clients, p)
	case Stream:
		streams := "streams"
		if res.Clients == 1 {
			streams = "stream"
		}
		return fmt.Sprintf("%d %s (POST /v1/jobs/stream), lines written without waiting for answers, %s", res.Clients, streams, p)
	case EnqueueBatch:
		return fmt.Sprintf("%d clients, %d jobs per request, %s", res.Clients, res.Batch, p)
	case E2E:
		return fmt.Sprintf("%d enqueuers, %d jobs per request, noop jobs run by the server's workers, %s", res.Clients, res.Batch, p)
	case Remote:
		return fmt.Sprintf("%d remote workers (%s), lease max %d, batched acks, %s", res.Clients, res.RemoteMode, res.LeaseMax, p)
	case Recovery:
		return fmt.Sprintf("filled by %d clients, %d jobs per request, %s; then SIGKILL and restart", res.Clients, res.Batch, p)
	}
	return p
}

// roundDur rounds d to 3 significant digits or so, for display.
func roundDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Nanosecond).String()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
