package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/replica/raftrep"
	"github.com/beaver-raft/beaver-raft/internal/server"
)

func newClusterCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "See and change a cluster: status, join, remove, init",
		Long: `Commands of cluster mode (docs/cluster.md). status, join and remove talk to any
node's API (--server); a follower passes join and remove to the leader. init
turns a single-node data directory into the first node of a cluster.`,
	}
	cmd.AddCommand(newClusterStatusCmd(e), newClusterJoinCmd(e), newClusterRemoveCmd(e), newClusterInitCmd(e))
	return cmd
}

func newClusterStatusCmd(e *env) *cobra.Command {
	var cf clientFlags
	var jsonOut bool
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the nodes, the leader, the term, commit and applied index, and lag",
		Example: `  beaver-raft cluster status --server http://127.0.0.1:7072`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return clusterCall(cmd.Context(), &cf, e, jsonOut, func(ctx context.Context, c clusterClient) (api.ClusterStatus, error) {
				return c.Cluster(ctx)
			})
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the status as JSON")
	return cmd
}

func newClusterJoinCmd(e *env) *cobra.Command {
	var cf clientFlags
	var id, addr string
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Add a node to the cluster as a voter",
		Long: `Add a node as a voter. Start the new node first with --cluster, its own
--node-id and --raft-listen, and no --bootstrap; then join it through any node.`,
		Example: `  beaver-raft cluster join --server http://127.0.0.1:7071 --node-id n4 --raft-addr 127.0.0.1:7104`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" || addr == "" {
				return usageErrorf("--node-id and --raft-addr are required")
			}
			return clusterCall(cmd.Context(), &cf, e, false, func(ctx context.Context, c clusterClient) (api.ClusterStatus, error) {
				return c.ClusterJoin(ctx, id, addr)
			})
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&id, "node-id", "", "id of the node to add")
	cmd.Flags().StringVar(&addr, "raft-addr", "", "its node-to-node address (its --raft-listen or --raft-advertise)")
	return cmd
}

func newClusterRemoveCmd(e *env) *cobra.Command {
	var cf clientFlags
	var id string
	cmd := &cobra.Command{
		Use:     "remove",
		Short:   "Remove a node from the cluster (never the last voter)",
		Example: `  beaver-raft cluster remove --server http://127.0.0.1:7071 --node-id n4`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageErrorf("--node-id is required")
			}
			return clusterCall(cmd.Context(), &cf, e, false, func(ctx context.Context, c clusterClient) (api.ClusterStatus, error) {
				return c.ClusterRemove(ctx, id)
			})
		},
	}
	usageFlagErrors(cmd)
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&id, "node-id", "", "id of the node to remove")
	return cmd
}

func newClusterInitCmd(e *env) *cobra.Command {
	var dir, id, raftAddr, logStore string
	var peers []string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Seed a cluster from a single-node data directory (keeps every job)",
		Long: `Turn a stopped single-node server's data directory into the first node of a
cluster: its state (snapshot + WAL) becomes the node's first raft snapshot,
and wal/ and snapshots/ are kept in single-node.seeded/. Then start this node
with --cluster (and the same --node-id), and the other nodes empty and
without --bootstrap: they receive the state from it.`,
		Example: `  beaver-raft cluster init --data-dir d1 --node-id n1 \
    --peer n1=127.0.0.1:7101 --peer n2=127.0.0.1:7102 --peer n3=127.0.0.1:7103`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || id == "" {
				return usageErrorf("--data-dir and --node-id are required")
			}
			ps, err := server.ParsePeers(peers)
			if err != nil {
				return usageErrorf("%v", err)
			}
			if err := raftrep.Seed(raftrep.SeedOptions{Dir: dir, NodeID: id, Peers: ps, Addr: raftAddr, LogStore: logStore}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "seeded %s as cluster node %s; start it with: beaver-raft run --cluster --data-dir %s --node-id %s ...\n", dir, id, dir, id)
			return nil
		},
	}
	usageFlagErrors(cmd)
	cmd.Flags().StringVar(&dir, "data-dir", "", "the single-node data directory (the server must be stopped)")
	cmd.Flags().StringVar(&id, "node-id", "", "this node's id in the cluster")
	cmd.Flags().StringArrayVar(&peers, "peer", nil, "voter of the new cluster as id=host:port (repeatable, this node included)")
	cmd.Flags().StringVar(&raftAddr, "raft-addr", "", "this node's raft address, for a cluster of this node alone (no --peer)")
	cmd.Flags().StringVar(&logStore, "raft-log-store", raftrep.DefaultLogStore, "raft log store to create: wal or bolt (as cluster.log_store)")
	return cmd
}

type clusterClient interface {
	Cluster(ctx context.Context) (api.ClusterStatus, error)
	ClusterJoin(ctx context.Context, id, addr string) (api.ClusterStatus, error)
	ClusterRemove(ctx context.Context, id string) (api.ClusterStatus, error)
}

func clusterCall(ctx context.Context, cf *clientFlags, e *env, jsonOut bool, fn func(context.Context, clusterClient) (api.ClusterStatus, error)) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	var st api.ClusterStatus
	err = cf.call(ctx, func(ctx context.Context) (err error) {
		st, err = fn(ctx, c)
		return err
	})
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSONLine(e.stdout, st)
	}
	return writeCluster(e.stdout, st)
}

func writeCluster(w io.Writer, st api.ClusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	leader := st.LeaderID
	if leader == "" {
		leader = "(none known: an election may be running)"
	} else {
		leader += " at " + st.LeaderAddr
	}
	fmt.Fprintf(tw, "Node:\t%s (%s)\n", st.NodeID, st.Role)
	fmt.Fprintf(tw, "Leader:\t%s\n", leader)
	fmt.Fprintf(tw, "Term:\t%d\n", st.Term)
	fmt.Fprintf(tw, "Commit index:\t%d\n", st.CommitIndex)
	fmt.Fprintf(tw, "Applied index:\t%d (lag %d)\n", st.AppliedIndex, st.Lag)
	fmt.Fprintf(tw, "Last contact:\t%s\n", st.LastContact)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRAFT ADDRESS\tSUFFRAGE\tROLE")
	for _, s := range st.Servers {
		suffrage, role := "voter", "follower"
		if !s.Voter {
			suffrage = "nonvoter"
		}
		if s.Leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.RaftAddr, suffrage, role)
	}
	return tw.Flush()
}
