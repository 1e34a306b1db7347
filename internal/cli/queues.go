package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/config"
)

func newQueuesCmd(e *env) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List queues; pause, resume and limit them",
		Long: `List the queues of a server with their jobs and settings; pause and resume
them; set their concurrency and rate limits (docs/queues.md).

A paused queue hands out no job (in-process and remote workers alike);
enqueues still work and running jobs go on. A concurrency limit bounds the
jobs of the queue in flight at once across every worker; a rate limit the
leases per period. The settings are durable and hold in a cluster.`,
		Example: `  beaver-raft queues list
  beaver-raft queues pause emails
  beaver-raft queues set emails --concurrency 5 --rate 100/1s
  beaver-raft queues resume emails`,
		Args: usageArgs(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q (see '%s --help')", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.PersistentFlags())
	cmd.AddCommand(newQueuesListCmd(e, &cf), newQueuesGetCmd(e, &cf), newQueuesPauseCmd(e, &cf, true), newQueuesPauseCmd(e, &cf, false), newQueuesSetCmd(e, &cf))
	return cmd
}

func newQueuesListCmd(e *env, cf *clientFlags) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the queues, their jobs and settings",
		Long: `List every queue that holds jobs or has settings (GET /v1/queues): whether it
is paused, its concurrency limit and rate limit ("-": none), its pending,
scheduled and in-flight jobs, and what holds back its leases now (BLOCKED:
paused, concurrency, or rate with the time its rate window ends). --json
prints each queue as a line of JSON instead.`,
		Example: `  beaver-raft queues list
  beaver-raft queues list --json | jq -r 'select(.paused) | .name'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var qs []api.Queue
			if err := cf.call(cmd.Context(), func(ctx context.Context) (err error) {
				qs, err = c.Queues(ctx)
				return err
			}); err != nil {
				return err
			}
			if jsonOut {
				for _, q := range qs {
					if err := writeJSONLine(e.stdout, q); err != nil {
						return err
					}
				}
				return nil
			}
			if len(qs) == 0 {
				fmt.Fprintln(e.stderr, "no queues")
				return nil
			}
			return writeQueues(e.stdout, qs)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object per queue and line")
	return cmd
}

// writeQueues writes the table of queues list.
func writeQueues(w io.Writer, qs []api.Queue) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPAUSED\tCONCURRENCY\tRATE\tPENDING\tSCHEDULED\tIN_FLIGHT\tBLOCKED")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", q.Name, yesNo(q.Paused), limitText(q.Concurrency), rateText(q.Rate),
			q.Jobs.Pending, q.Jobs.Scheduled, q.Jobs.InFlight, blockedText(q))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func limitText(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func rateText(r *api.Rate) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%s", r.Limit, r.Period)
}

func blockedText(q api.Queue) string {
	switch {
	case q.Blocked == "":
		return "-"
	case q.Blocked == "rate" && q.RateWindow != nil:
		return "rate until " + q.RateWindow.ResetsAt.UTC().Format(time.RFC3339)
	}
	return q.Blocked
}

// queueLine is the one-line summary of a queue that pause, resume and set
// print.
func queueLine(q api.Queue) string {
	state := "running"
	if q.Paused {
		state = "paused"
	}
	return fmt.Sprintf("%s %s, concurrency %s, rate %s", q.Name, state, limitText(q.Concurrency), rateText(q.Rate))
}

func newQueuesGetCmd(e *env, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Print a queue as JSON",
		Example: `  beaver-raft queues get emails`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var q api.Queue
			if err := cf.call(cmd.Context(), func(ctx context.Context) (err error) {
				q, err = c.Queue(ctx, args[0])
				return err
			}); err != nil {
				return err
			}
			b, err := json.MarshalIndent(q, "", "  ")
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(append(b, '\n'))
			return err
		},
	}
}

// newQueuesPauseCmd is queues pause or queues resume.
func newQueuesPauseCmd(e *env, cf *clientFlags, pause bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:  "pause NAME...",
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			for _, name := range args {
				var q api.Queue
				if err := cf.call(cmd.Context(), func(ctx context.Context) (err error) {
					if pause {
						q, err = c.PauseQueue(ctx, name)
					} else {
						q, err = c.ResumeQueue(ctx, name)
					}
					return err
				}); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, queueLine(q))
			}
			return nil
		},
	}
	if pause {
		cmd.Short = "Pause queues: leases skip them"
		cmd.Long = `Pause queues: no worker (in-process or remote) gets a job of a paused queue.
Enqueues still work, and jobs already running go on and report as usual.
Pausing a queue that holds no jobs yet works: it applies when jobs arrive.
The pause is durable: it holds across restarts and on every cluster node.`
		cmd.Example = `  beaver-raft queues pause emails reports`
	} else {
		cmd.Use = "resume NAME..."
		cmd.Short = "Resume paused queues"
		cmd.Long = `Resume paused queues: their jobs are handed out again, in their order.`
		cmd.Example = `  beaver-raft queues resume emails`
	}
	return cmd
}

func newQueuesSetCmd(e *env, cf *clientFlags) *cobra.Command {
	var paused bool
	var concurrency int
	var rate string
	cmd := &cobra.Command{
		Use:   "set NAME [--paused=BOOL] [--concurrency N] [--rate LIMIT/PERIOD]",
		Short: "Set a queue's pause, concurrency limit and rate limit",
		Long: `Set the settings given by flags and keep the others (PATCH /v1/queues/NAME).

--concurrency N allows at most N jobs of the queue in flight at once, across
every worker (0: no limit). --rate LIMIT/PERIOD allows at most LIMIT leases
per PERIOD, e.g. 100/1s or 10/1m (0: no limit). --paused=true pauses the
queue, --paused=false resumes it.`,
		Example: `  beaver-raft queues set emails --concurrency 5 --rate 100/1s
  beaver-raft queues set emails --rate 0          # remove the rate limit
  beaver-raft queues set reports --paused=true`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s api.QueueSettings
			fl := cmd.Flags()
			if fl.Changed("paused") {
				s.Paused = &paused
			}
			if fl.Changed("concurrency") {
				if concurrency < 0 {
					return usageErrorf("--concurrency must be 0 (no limit) or more, got %d", concurrency)
				}
				s.Concurrency = &concurrency
			}
			if fl.Changed("rate") {
				limit, period, err := config.ParseRate(rate)
				if err != nil {
					return usageErrorf("--rate: %v", err)
				}
				s.Rate = &api.Rate{Limit: limit}
				if limit > 0 {
					s.Rate.Period = period.String()
				}
			}
			if s == (api.QueueSettings{}) {
				return usageErrorf("give at least one of --paused, --concurrency and --rate (see '%s --help')", cmd.CommandPath())
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var q api.Queue
			if err := cf.call(cmd.Context(), func(ctx context.Context) (err error) {
				q, err = c.UpdateQueue(ctx, args[0], s)
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, queueLine(q))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&paused, "paused", false, "pause (true) or resume (false) the queue")
	fs.IntVar(&concurrency, "concurrency", 0, "most jobs of the queue in flight at once, all workers together (0: no limit)")
	fs.StringVar(&rate, "rate", "", "most leases per period, LIMIT/PERIOD like 100/1s (0: no limit)")
	return cmd
}
