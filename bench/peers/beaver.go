package main

import (
	"context"
	"fmt"

	"github.com/beaver-raft/beaver-raft/internal/bench"
)

// beaverRaft runs the workloads of `beaver-raft bench` (package
// internal/bench) against an in-process server with sync always.
func beaverRaft() system { return beaverRaftCluster(0, "", "") }

// beaverRaftCluster is beaverRaft against an in-process cluster of n nodes
// (cluster mode, raft's log fsynced on every append), the clients on the
// leader or on a follower that forwards the writes; n 0 is the single node.
// store is the nodes' raft log store (wal or bolt; "" the default), named
// in the system's name when given.
func beaverRaftCluster(n int, target bench.ClusterTarget, store string) system {
	s := system{Name: "beaver-raft", Setting: "sync always (fdatasync, group commit)", Durable: true}
	if n > 0 {
		s.Name = fmt.Sprintf("beaver-raft-%d", n)
		s.Setting = fmt.Sprintf("%d-node raft, clients on the %s", n, target)
		if target == bench.TargetFollower {
			s.Name += "-follower"
		}
		if store != "" {
			s.Name += "-" + store
			s.Setting += ", raft log in " + store
		}
	}
	s.run = func(ctx context.Context, sc scenario, p params) (float64, error) {
		o := bench.Options{
			Scenario:      bench.Scenario(sc),
			Jobs:          p.Jobs,
			Batch:         p.Batch,
			LeaseMax:      p.LeaseMax,
			PayloadSize:   p.PayloadSize,
			Sync:          bench.SyncDefault,
			Workers:       p.Workers,
			RemoteMode:    bench.RemoteLean,
			DataDir:       p.Dir,
			Cluster:       n,
			ClusterTarget: target,
			RaftLogStore:  store,
		}
		switch sc {
		case enqueue, enqueueClient:
			o.Clients = p.Clients
		case stream:
			o.Clients = p.Streams
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
	}
	return s
}
