// Command beaver-raft is the Beaver-Raft job queue server and its CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/beaver-raft/beaver-raft/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
