package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// Limits of jobs list --limit (the server's).
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	// lastErrorWidth is where jobs list cuts last_error.
	lastErrorWidth = 60
)

var jobStates = []string{api.StatePending, api.StateScheduled, api.StateInFlight, api.StateBlocked, api.StateCompleted, api.StateFailed, api.StateCanceled}

func newJobsCmd(e *env) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, show, cancel and retry jobs",
		Long:  `List, show, cancel and retry the jobs of a server.`,
		Example: `  beaver-raft jobs list --state failed
  beaver-raft jobs get 42
  beaver-raft jobs retry 42`,
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
	cmd.AddCommand(newJobsListCmd(e, &cf), newJobsGetCmd(e, &cf), newJobsActionCmd(e, &cf, "cancel"), newJobsActionCmd(e, &cf, "retry"))
	return cmd
}

func newJobsListCmd(e *env, cf *clientFlags) *cobra.Command {
	var opts client.ListOptions
	var all, jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs in id order",
		Long: `List jobs in id order, one page (--limit jobs) or, with --all, every page.

The table shows each job's id, queue, type, state, attempts (started/max),
when it finished (for completed, failed and canceled jobs) or when it runs
(for the others), and the start of its last error. --json prints each job
as a line of JSON instead (jq-friendly).

Without --all, a page that is not the last ends with a note on stderr
giving the --cursor of the next page.`,
		Example: `  beaver-raft jobs list
  beaver-raft jobs list --queue emails --state failed --all
  beaver-raft jobs list --type resize --all --json | jq -r .id`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.State != "" && !slices.Contains(jobStates, opts.State) {
				return usageErrorf("--state must be one of %s, got %q", strings.Join(jobStates, ", "), opts.State)
			}
			if opts.Limit < 1 || opts.Limit > maxListLimit {
				return usageErrorf("--limit must be between 1 and %d, got %d", maxListLimit, opts.Limit)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			n := 0
			for {
				var page api.ListResponse
				err := cf.call(cmd.Context(), func(ctx context.Context) (err error) {
					page, err = c.List(ctx, opts)
					return err
				})
				if err != nil {
					return err
				}
				for _, j := range page.Jobs {
					if jsonOut {
						if err := writeJSONLine(e.stdout, j); err != nil {
							return err
						}
						continue
					}
					if n == 0 {
						fmt.Fprintln(tw, "ID\tQUEUE\tTYPE\tSTATE\tATTEMPT\tRUN_AT/FINISHED_AT\tLAST_ERROR")
					}
					writeJobRow(tw, j)
					n++
				}
				if err := tw.Flush(); err != nil { // a page at a time
					return err
				}
				if page.NextCursor == "" {
					break
				}
				if !all {
					fmt.Fprintf(e.stderr, "more jobs: add --all, or --cursor %s for the next page\n", page.NextCursor)
					break
				}
				opts.Cursor = page.NextCursor
			}
			if n == 0 && !jsonOut {
				fmt.Fprintln(e.stderr, "no jobs")
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Queue, "queue", "", "only jobs of this queue")
	fs.StringVar(&opts.State, "state", "", "only jobs in this state: "+strings.Join(jobStates, ", "))
	fs.StringVar(&opts.Type, "type", "", "only jobs of this type")
	fs.IntVar(&opts.Limit, "limit", defaultListLimit, fmt.Sprintf("jobs per page, at most %d", maxListLimit))
	fs.StringVar(&opts.Cursor, "cursor", "", "start at this page (the cursor a previous list printed)")
	fs.BoolVar(&all, "all", false, "list every page, not only the first")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object per job and line")
	return cmd
}

// writeJobRow writes one row of jobs list.
func writeJobRow(w io.Writer, j api.Job) {
	when := j.RunAt
	if !j.FinishedAt.IsZero() {
		when = j.FinishedAt
	}
	ts := "-"
	if !when.IsZero() {
		ts = when.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Queue, j.Type, j.State, j.Attempt, j.MaxAttempts, ts, oneLine(j.LastError, lastErrorWidth))
}

// oneLine collapses the white space of s (newlines included) and cuts it to
// width runes, marking a cut with "…".
func oneLine(s string, width int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

func newJobsGetCmd(e *env, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "get ID",
		Short:   "Print a job as JSON",
		Example: `  beaver-raft jobs get 42`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var j api.Job
			err = cf.call(cmd.Context(), func(ctx context.Context) (err error) {
				j, err = c.Get(ctx, args[0])
				return err
			})
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(j, "", "  ")
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(append(b, '\n'))
			return err
		},
	}
}

// newJobsActionCmd is jobs cancel or jobs retry.
func newJobsActionCmd(e *env, cf *clientFlags, action string) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:  action + " ID...",
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			failed := 0
			var last error
			for _, id := range args {
				var j api.Job
				err := cf.call(cmd.Context(), func(ctx context.Context) (err error) {
					if action == "cancel" {
						j, err = c.Cancel(ctx, id)
					} else {
						j, err = c.Retry(ctx, id)
					}
					return err
				})
				if err != nil {
					if len(args) == 1 {
						return err
					}
					fmt.Fprintln(e.stderr, "beaver-raft:", err)
					failed++
					last = err
					continue
				}
				if jsonOut {
					if err := writeJSONLine(e.stdout, j); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(e.stdout, "%s %s\n", j.ID, j.State)
			}
			if failed > 0 {
				return &requestError{msg: fmt.Sprintf("could not %s %d of %d jobs (see above)", action, failed, len(args)), err: last}
			}
			return nil
		},
	}
	switch action {
	case "cancel":
		cmd.Short = "Cancel jobs"
		cmd.Long = `Cancel jobs: a pending, scheduled or in-flight job becomes canceled (a worker
still running it has its report refused). Prints each job's id and new state.
Canceling a finished job is an error (conflict).`
		cmd.Example = `  beaver-raft jobs cancel 42
  beaver-raft jobs list --state scheduled --type report --all --json | jq -r .id | xargs beaver-raft jobs cancel`
	default:
		cmd.Short = "Retry jobs now"
		cmd.Long = `Retry jobs: a failed or canceled job starts over (attempt 0), a scheduled job
becomes runnable now. Prints each job's id and new state (pending). Retrying
a pending, in-flight or completed job is an error (conflict).`
		cmd.Example = `  beaver-raft jobs retry 42
  beaver-raft jobs list --state failed --all --json | jq -r .id | xargs beaver-raft jobs retry`
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print each job as a line of JSON")
	return cmd
}
