package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

func newPeriodicCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "periodic",
		Short: "List, show, create and delete schedules of periodic jobs",
		Long: `Schedules enqueue a job from their template at every time of a cron
expression, or every interval. Each scheduled time is enqueued exactly once,
across crashes, restarts and leader changes (docs/periodic.md).`,
		Example: `  beaver-raft periodic put nightly --cron "0 3 * * *" --type report --queue reports
  beaver-raft periodic put heartbeat --every 30s --type ping --catch-up none
  beaver-raft periodic list
  beaver-raft periodic get nightly
  beaver-raft periodic delete nightly`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPeriodicListCmd(e), newPeriodicGetCmd(e), newPeriodicPutCmd(e), newPeriodicDeleteCmd(e))
	return cmd
}

func newPeriodicListCmd(e *env) *cobra.Command {
	var cf clientFlags
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the schedules",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out api.PeriodicList
			if err := periodicCall(cmd.Context(), &cf, func(ctx context.Context, c *client.Client) (err error) {
				out, err = c.ListPeriodic(ctx)
				return err
			}); err != nil {
				return err
			}
			if jsonOut {
				return writeJSONLine(e.stdout, out)
			}
			return writePeriodicTable(e.stdout, out.Schedules)
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the server's answer as JSON")
	return cmd
}

func newPeriodicGetCmd(e *env) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a schedule as JSON, with its next run and last fired run",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return periodicShow(cmd.Context(), e, &cf, func(ctx context.Context, c *client.Client) (api.Periodic, error) {
				return c.GetPeriodic(ctx, args[0])
			})
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	return cmd
}

func newPeriodicDeleteCmd(e *env) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a schedule (the jobs it enqueued stay)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return periodicShow(cmd.Context(), e, &cf, func(ctx context.Context, c *client.Client) (api.Periodic, error) {
				return c.DeletePeriodic(ctx, args[0])
			})
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	return cmd
}

func newPeriodicPutCmd(e *env) *cobra.Command {
	var cf clientFlags
	var req api.PeriodicRequest
	var file, payload string
	cmd := &cobra.Command{
		Use:   "put NAME (--cron EXPR | --every DURATION) --type TYPE [flags] | put NAME --file FILE",
		Short: "Create or replace a schedule",
		Long: `Create or replace the schedule NAME. Give --cron (five fields, or a
descriptor such as @hourly or "@every 90s"; UTC unless it starts with
CRON_TZ=Zone) or --every, and the job template (--type and the other job
flags), or --file with the JSON body of PUT /v1/periodic/{name}.

Putting the same definition again changes nothing; a changed one counts its
runs from now on. It prints the schedule as stored.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				for _, name := range []string{"cron", "every", "catch-up", "type", "queue", "payload", "priority", "max-attempts", "job-timeout"} {
					if cmd.Flags().Changed(name) {
						return usageErrorf("--%s cannot be used with --file", name)
					}
				}
				b, err := readFileArg(e, file)
				if err != nil {
					return err
				}
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&req); err != nil {
					return usageErrorf("--file %s: %v", file, err)
				}
			} else {
				if req.Cron == "" && req.Every == "" {
					return usageErrorf("give --cron or --every (or --file)")
				}
				if req.Job.Type == "" {
					return usageErrorf("--type is required")
				}
				if req.Every != "" {
					if _, err := time.ParseDuration(req.Every); err != nil {
						return usageErrorf("--every: %v", err)
					}
				}
				if req.Job.Timeout != "" {
					if _, err := time.ParseDuration(req.Job.Timeout); err != nil {
						return usageErrorf("--job-timeout: %v", err)
					}
				}
				if payload != "" {
					p, err := readPayload(e, payload)
					if err != nil {
						return err
					}
					req.Job.Payload = p
				}
			}
			return periodicShow(cmd.Context(), e, &cf, func(ctx context.Context, c *client.Client) (api.Periodic, error) {
				return c.PutPeriodic(ctx, args[0], req)
			})
		},
	}
	usageFlagErrors(cmd)
	fs := cmd.Flags()
	cf.bind(fs)
	fs.StringVar(&file, "file", "", "read the schedule from this JSON file (- for stdin): the body of PUT /v1/periodic/{name}")
	fs.StringVar(&req.Cron, "cron", "", `cron expression, e.g. "0 3 * * *", "@hourly" or "@every 90s"`)
	fs.StringVar(&req.Every, "every", "", "interval between runs, e.g. 15m (at least 1s)")
	fs.StringVar(&req.CatchUp, "catch-up", "", "runs missed while the server was down: none, one (default) or all")
	fs.StringVar(&req.Job.Type, "type", "", "type of the jobs")
	fs.StringVar(&req.Job.Queue, "queue", "", "queue of the jobs (default: the server's default queue)")
	fs.StringVar(&payload, "payload", "", "payload of the jobs: JSON text, or @FILE (default null)")
	fs.Int32Var(&req.Job.Priority, "priority", 0, "priority of the jobs")
	fs.IntVar(&req.Job.MaxAttempts, "max-attempts", 0, "attempts of each job (default: the server's)")
	fs.StringVar(&req.Job.Timeout, "job-timeout", "", "time limit of each attempt (default: the server's)")
	return cmd
}

// periodicCall runs fn with a client of the server the flags name.
func periodicCall(ctx context.Context, cf *clientFlags, fn func(context.Context, *client.Client) error) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	return cf.call(ctx, func(ctx context.Context) error { return fn(ctx, c) })
}

// periodicShow prints the schedule fn returns as indented JSON.
func periodicShow(ctx context.Context, e *env, cf *clientFlags, fn func(context.Context, *client.Client) (api.Periodic, error)) error {
	var p api.Periodic
	if err := periodicCall(ctx, cf, func(ctx context.Context, c *client.Client) (err error) {
		p, err = fn(ctx, c)
		return err
	}); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func writePeriodicTable(w io.Writer, list []api.Periodic) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCHEDULE\tCATCH_UP\tQUEUE\tTYPE\tNEXT_RUN\tLAST_FIRED\tFIRED\tSKIPPED\tORIGIN")
	t := func(x time.Time) string {
		if x.IsZero() {
			return "-"
		}
		return x.UTC().Format(time.RFC3339)
	}
	for _, p := range list {
		sched := p.Cron
		if sched == "" {
			sched = "every " + p.Every
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Name, sched, p.CatchUp, p.Job.Queue, p.Job.Type,
			t(p.NextRun), t(p.LastFired), p.Fired, p.Skipped, p.Origin)
	}
	return tw.Flush()
}

// readFileArg reads a file argument (- for stdin).
func readFileArg(e *env, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(e.stdin)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return b, nil
}
