package cli

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

func newWALCmd(e *env) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "wal",
		Short: "Offline tools for the write-ahead log (run them with the server stopped)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./data", "data directory")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every WAL record's framing, checksum and sequence (the WAL only)",
		Long: `Check every WAL segment as the server does at start-up, without changing
anything. Exit status 0: the log is clean (or has a torn tail the server
would cut); 2: the log is damaged and the server would refuse to start.

It checks the WAL only, not the snapshots: 'beaver-raft verify' checks both
and says whether the server would open the directory.

  beaver-raft wal verify --data-dir ./data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := wal.Verify(filepath.Join(dataDir, "wal"), vfs.OS)
			printVerify(e.stdout, rep, true)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return nil
		},
	}
	cmd.AddCommand(verify, newRepairCmd(e, &dataDir))
	return cmd
}

// newRepairCmd is `wal repair`; newRoot also adds it as `repair`.
func newRepairCmd(e *env, dataDir *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "repair",
		Short: "Cut a damaged WAL at its first bad record, keeping a .broken copy of everything removed",
		Long: `Cut the write-ahead log at its first damaged record so the server can
start again. Every file it changes or deletes is first copied to
<file>.broken. It prints exactly which records (LSNs) and bytes were removed:
the jobs those records held are lost unless you restore them from a backup.
Run it with the server stopped, after 'beaver-raft wal verify'.

  beaver-raft repair --data-dir ./data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := wal.Repair(filepath.Join(*dataDir, "wal"), vfs.OS)
			if err != nil {
				return err
			}
			printRepair(e.stdout, rep)
			return nil
		},
	}
	if dataDir == nil {
		dataDir = new(string)
		c.Flags().StringVar(dataDir, "data-dir", "./data", "data directory")
	}
	return c
}

func printVerify(w io.Writer, rep wal.Report, walOnly bool) {
	for _, s := range rep.Segments {
		state := "ok"
		if !s.Checked {
			state = "not checked (after the damage)"
		}
		fmt.Fprintf(w, "%s  first LSN %d  %d records  %d bytes  %s\n", s.File, s.FirstLSN, s.Records, s.Bytes, state)
	}
	fmt.Fprintf(w, "%d segments, %d intact records, LSN %d-%d\n", len(rep.Segments), rep.Records, rep.FirstLSN, rep.LastLSN)
	switch d := rep.Damage; {
	case d == nil:
		if walOnly {
			fmt.Fprintln(w, "WAL ok: no damage (the WAL only; 'beaver-raft verify' checks the snapshots too)")
		} else {
			fmt.Fprintln(w, "ok: no damage")
		}
	case d.Torn:
		fmt.Fprintf(w, "torn tail: %s at offset %d (LSN %d, %d bytes): %s; the server cuts it at start-up (keeping a .broken copy)\n", d.File, d.Offset, d.LSN, d.Bytes, d.Reason)
	default:
		fmt.Fprintf(w, "DAMAGED: %s at offset %d, record LSN %d: %s\nthe server refuses to start; see 'beaver-raft repair --help'\n", d.File, d.Offset, d.LSN, d.Reason)
	}
}

func printRepair(w io.Writer, rep wal.RepairReport) {
	if rep.Damage == nil {
		fmt.Fprintln(w, "the WAL is clean: nothing changed")
		return
	}
	d := rep.Damage
	fmt.Fprintf(w, "damage: %s at offset %d (LSN %d): %s\n", d.File, d.Offset, d.LSN, d.Reason)
	for _, r := range rep.Removed {
		what := fmt.Sprintf("cut at offset %d", r.Offset)
		if r.Deleted {
			what = "deleted"
		}
		fmt.Fprintf(w, "  %s: %s, %d bytes removed, copy kept in %s\n", r.File, what, r.Bytes, r.Broken)
	}
	if rep.RemovedThroughLSN > 0 {
		fmt.Fprintf(w, "removed records LSN %d-%d; the log now ends at LSN %d\n", rep.RemovedFromLSN, rep.RemovedThroughLSN, rep.LastLSN)
	} else {
		fmt.Fprintf(w, "removed the damaged record LSN %d only; the log now ends at LSN %d\n", rep.RemovedFromLSN, rep.LastLSN)
	}
}
