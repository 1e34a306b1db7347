package main

import (
	"context"

	"github.com/beaver-raft/beaver-raft/internal/bench"
)

// beaverRaft runs the workloads of `beaver-raft bench` (package
// internal/bench) against an in-process server with sync always.
func beaverRaft() system {
	return system{
		Name: "beaver-raft", Setting: "sync always (fdatasync, group commit)", Durable: true,
		run: func(ctx context.Context, sc scenario, p params) (float64, error) {
			o := bench.Options{
				Scenario:    bench.Scenario(sc),
				Jobs:        p.Jobs,
				Batch:       p.Batch,
				LeaseMax:    p.LeaseMax,
				PayloadSize: p.PayloadSize,
				Sync:        bench.SyncDefault,
				Workers:     p.Workers,
				RemoteMode:  bench.RemoteLean,
				DataDir:     p.Dir,
			}
			switch sc {
			case enqueue:
				o.Clients = p.Clients
			case enqueueBatch, e2e:
				o.Clients = p.BatchClients
			case remote:
				o.Clients = p.Consumers
			}
			res, err := bench.Run(ctx, o)
			if err != nil {
				return 0, err
			}
			return res.JobsPerSec, nil
		},
	}
}
