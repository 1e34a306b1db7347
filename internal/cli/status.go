package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/api"
)

func newStatusCmd(e *env) *cobra.Command {
	var cf clientFlags
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the server's job counts, WAL, snapshots and last recovery",
		Long: `Show what the server holds and how its storage is doing (GET /v1/status):
its role, version, uptime and applied log position; the jobs by state,
overall and per queue; the write-ahead log; the snapshots; and what the last
start did to recover.`,
		Example: `  beaver-raft status
  beaver-raft status --server http://10.0.0.5:7070 --json | jq .jobs   # one line of JSON`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var st api.Status
			err = cf.call(cmd.Context(), func(ctx context.Context) (err error) {
				st, err = c.Status(ctx)
				return err
			})
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSONLine(e.stdout, st)
			}
			return writeStatus(e.stdout, cf.server, st, time.Now())
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the status as JSON")
	return cmd
}

// writeStatus writes st for people. now is the time ages are computed at.
func writeStatus(w io.Writer, server string, st api.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kv := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	kv("Server", "%s", server)
	kv("Role", "%s", st.Role)
	kv("Version", "%s", orDash(st.Version))
	kv("Uptime", "%s", roundDuration(st.Uptime))
	kv("Applied LSN", "%d", st.AppliedLSN)
	if st.Failed != "" {
		kv("LOG FAILED", "%s (writes are refused until the server restarts)", st.Failed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := writeCounts(w, st); err != nil {
		return err
	}
	if len(st.PausedQueues) > 0 {
		fmt.Fprintf(w, "Paused queues: %s (see beaver-raft queues list)\n", strings.Join(st.PausedQueues, ", "))
	}
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kv("WAL", "LSN %d-%d, %s, %s", st.WAL.FirstLSN, st.WAL.LastLSN, plural(st.WAL.Segments, "segment", "segments"), humanBytes(st.WAL.Bytes))
	kv("Snapshots", "%s", snapshotLine(st.Snapshot, now))
	if st.Snapshot.LastError != "" {
		kv("Snapshot error", "%s", st.Snapshot.LastError)
	}
	kv("Recovery", "%s", recoveryLine(st.Recovery))
	if len(st.Recovery.SkippedSnapshots) > 0 {
		kv("Skipped", "corrupt snapshots: %s", strings.Join(st.Recovery.SkippedSnapshots, ", "))
	}
	return tw.Flush()
}

// writeCounts writes the job counts by state, overall and per queue, as a
// table with the numbers aligned right.
func writeCounts(w io.Writer, st api.Status) error {
	names := slices.Sorted(maps.Keys(st.Queues))
	width := len("QUEUE")
	for _, n := range append(names, "(all)") {
		width = max(width, len(n))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, cells ...any) {
		fmt.Fprintf(tw, "%-*s\t", width, name)
		for _, c := range cells {
			fmt.Fprintf(tw, "%v\t", c)
		}
		fmt.Fprintln(tw)
	}
	row("QUEUE", "PENDING", "SCHEDULED", "IN_FLIGHT", "BLOCKED", "COMPLETED", "FAILED", "CANCELED", "TOTAL")
	counts := func(name string, c api.StateCounts) {
		total := c.Pending + c.Scheduled + c.InFlight + c.Blocked + c.Completed + c.Failed + c.Canceled
		row(name, c.Pending, c.Scheduled, c.InFlight, c.Blocked, c.Completed, c.Failed, c.Canceled, total)
	}
	counts("(all)", st.Jobs)
	for _, n := range names {
		counts(n, st.Queues[n])
	}
	return tw.Flush()
}

func snapshotLine(s api.SnapshotStatus, now time.Time) string {
	var b strings.Builder
	if s.Count == 0 {
		b.WriteString("none kept")
	} else {
		fmt.Fprintf(&b, "%d kept; last at LSN %d, %s", s.Count, s.LastLSN, humanBytes(s.LastSize))
		if s.LastDuration != "" && s.LastDuration != "0s" {
			fmt.Fprintf(&b, ", took %s", s.LastDuration)
		}
		if !s.LastTime.IsZero() {
			fmt.Fprintf(&b, ", %s ago", now.Sub(s.LastTime).Round(time.Second))
		}
	}
	fmt.Fprintf(&b, "; %d taken since start, %d failed", s.Taken, s.Failures)
	return b.String()
}

func recoveryLine(r api.RecoveryStatus) string {
	var parts []string
	parts = append(parts, "took "+orDash(r.Duration))
	if r.SnapshotLSN > 0 {
		parts = append(parts, fmt.Sprintf("snapshot at LSN %d with %s", r.SnapshotLSN, plural(r.SnapshotJobs, "job", "jobs")))
	} else {
		parts = append(parts, "no snapshot")
	}
	parts = append(parts, plural(int(r.RecordsReplayed), "WAL record replayed", "WAL records replayed"))
	if r.TornBytes > 0 {
		parts = append(parts, fmt.Sprintf("%s torn tail cut from %s", humanBytes(r.TornBytes), orDash(r.TornFile)))
	} else {
		parts = append(parts, "no torn tail")
	}
	parts = append(parts, plural(r.Requeued, "in-flight job requeued", "in-flight jobs requeued"))
	return strings.Join(parts, "; ")
}

// humanBytes is n in B, KiB, MiB, GiB or TiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return fmt.Sprintf("%d B", n) // unreachable
}

// roundDuration rounds a duration string to the second (the millisecond
// under a second), or returns it as it is if it does not parse.
func roundDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return orDash(s)
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
