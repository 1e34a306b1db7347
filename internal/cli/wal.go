package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
	"github.com/beaver-raft/beaver-raft/internal/wal"
)

func newWALCmd(e *env) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "wal",
		Short: "Offline tools for the write-ahead log (run with the server stopped)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./data", "data directory")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every WAL record's framing, checksum and sequence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := wal.Verify(filepath.Join(dataDir, "wal"), vfs.OS)
			fmt.Fprintf(e.stdout, "%+v\n", rep)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintln(e.stdout, "ok")
			return nil
		},
	}
	repair := &cobra.Command{
		Use:   "repair",
		Short: "Cut a damaged WAL tail, keeping a .broken copy of everything removed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := wal.Repair(filepath.Join(dataDir, "wal"), vfs.OS)
			fmt.Fprintf(e.stdout, "%+v\n", rep)
			return err
		},
	}
	cmd.AddCommand(verify, repair)
	return cmd
}
