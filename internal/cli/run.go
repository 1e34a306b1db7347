package cli

import (
	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/internal/config"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

func newRunCmd(e *env) *cobra.Command {
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the server",
		Long: `Run the Beaver-Raft server on a local data directory (default ./data).

Every configuration key is a flag; --config reads a YAML file first and the
flags you give override it. See docs/config.md and beaver.example.yaml.

  beaver-raft run --workers 8
  beaver-raft run --config beaver.yaml --listen 127.0.0.1:7070`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := config.Resolve(cmd.Flags())
			if err != nil {
				return err
			}
			log, err := newLogger(e.stderr, c.Log.Format, c.Log.Level)
			if err != nil {
				return err
			}
			s, err := server.New(server.Options{Config: c, Logger: log, Version: version()})
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	config.BindFlags(cmd.Flags(), &cfg)
	return cmd
}
