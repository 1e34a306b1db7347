package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/internal/replica/local"
	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

func newVerifyCmd(e *env) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check a data directory (WAL and every snapshot file) and say whether the server would open it",
		Long: `Check the data directory of a stopped server without changing anything:
every WAL segment (as 'beaver-raft wal verify' does), and every snapshot
file, full or delta, in full: framing, checksums, the state encoding, and
that each delta applies onto the file before it in its chain. Then say what
the server would do at start-up: which snapshot chain it would restore, what
it would skip, and whether it would open the directory (losing nothing) or
refuse (because an acknowledged record would be missing).

Exit status 0: nothing is damaged (a torn WAL tail, which the server cuts,
is not damage); 1: something is damaged but the server would still open
the directory without losing anything; 2: the server would refuse to start.

  beaver-raft verify --data-dir ./data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := local.Verify(dataDir, vfs.OS)
			if err != nil {
				return err
			}
			printDataVerify(e.stdout, rep)
			switch {
			case !rep.Opens():
				return &exitError{code: 2, err: fmt.Errorf("the server would refuse to start: %w", rep.Refusal)}
			case rep.Damaged():
				return &exitError{code: 1, err: errors.New("damage found; the server would still open the directory without losing anything")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "data directory")
	return cmd
}

func printDataVerify(w io.Writer, rep local.VerifyReport) {
	fmt.Fprintln(w, "WAL:")
	printVerify(indent{w}, rep.WAL, false)
	fmt.Fprintf(w, "snapshots: %d files, %d complete chains\n", len(rep.Files), rep.Chains)
	for _, f := range rep.Files {
		state := "ok"
		if f.Err != nil {
			state = "DAMAGED: " + f.Err.Error()
		}
		fmt.Fprintf(w, "  %s  %s  LSN %d  %d bytes  %s\n", f.Meta.Path, f.Role, f.Meta.LSN, f.Meta.Size, state)
	}
	switch {
	case len(rep.Restore) > 0:
		fmt.Fprintf(w, "start-up would restore %s", rep.Restore[0].Path)
		if n := len(rep.Restore) - 1; n > 0 {
			fmt.Fprintf(w, " and %d deltas up to %s", n, rep.Restore[n].Path)
		}
		fmt.Fprintf(w, " (LSN %d), then replay the WAL\n", rep.RestoreLSN)
	case len(rep.Files) > 0:
		fmt.Fprintln(w, "start-up would find no usable snapshot and rebuild the state from the WAL, from LSN 1")
	default:
		fmt.Fprintln(w, "no snapshots: start-up would replay the WAL from LSN 1")
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "  skipping %s\n", s)
	}
	if rep.Opens() {
		lost := "nothing"
		if d := rep.WAL.Damage; d != nil && d.Torn {
			lost = fmt.Sprintf("nothing acknowledged (it cuts the torn WAL tail of %d bytes, an unacknowledged write)", d.Bytes)
		}
		fmt.Fprintf(w, "verdict: the server would open this directory and lose %s\n", lost)
		return
	}
	fmt.Fprintf(w, "verdict: the server would REFUSE to start: %v\n", rep.Refusal)
	if rep.WALErr != nil {
		fmt.Fprintln(w, "see 'beaver-raft repair --help' (it loses the records it cuts)")
	}
}

// indent prefixes every line written with two spaces.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	start := 0
	for k, c := range p {
		if c == '\n' {
			if _, err := fmt.Fprintf(i.w, "  %s\n", p[start:k]); err != nil {
				return start, err
			}
			start = k + 1
		}
	}
	if start < len(p) {
		if _, err := fmt.Fprintf(i.w, "  %s", p[start:]); err != nil {
			return start, err
		}
	}
	return len(p), nil
}
