package bench

import (
	"strings"
	"testing"
)

// TestCluster runs small scenarios against an in-process 3-node cluster,
// on the leader and through a follower.
func TestCluster(t *testing.T) {
	for _, tc := range []struct {
		sc     Scenario
		target ClusterTarget
	}{{Enqueue, TargetLeader}, {EnqueueBatch, TargetFollower}, {Remote, TargetFollower}, {Stream, TargetFollower}} {
		t.Run(string(tc.sc)+"/"+string(tc.target), func(t *testing.T) {
			o := tiny(t, tc.sc)
			o.Jobs = 60
			o.Cluster, o.ClusterTarget = 3, tc.target
			res := runOK(t, o)
			if res.Jobs != 60 || res.Cluster != 3 || !strings.Contains(res.Target, "cluster of 3, clients on the "+string(tc.target)) {
				t.Fatalf("jobs %d, cluster %d, target %q", res.Jobs, res.Cluster, res.Target)
			}
			want := res.Counts.Pending
			if tc.sc == Remote {
				want = res.Counts.Completed
			}
			if want != 60 {
				t.Fatalf("counts %+v", res.Counts)
			}
		})
	}
}

func TestClusterOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Scenario: Enqueue, Cluster: 1, ClusterTarget: TargetFollower}, "needs --cluster 2"},
		{Options{Scenario: Enqueue, Cluster: 3, ClusterTarget: "any"}, "not leader or follower"},
		{Options{Scenario: Enqueue, Cluster: 3, Server: "http://127.0.0.1:1"}, "leave out --server"},
		{Options{Scenario: Recovery, Cluster: 3}, "leave out --server, and recovery"},
	} {
		if _, err := tc.o.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}
