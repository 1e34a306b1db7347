package httpapi

import (
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/replica"
	"github.com/beaver-raft/beaver-raft/internal/replica/local"
)

// The suite runs against the real single-node replica too: a WAL and
// snapshots in a temporary directory, every write fsynced.
func init() {
	replicaKinds = append(replicaKinds, struct {
		name string
		open func(t *testing.T) replica.Replica
	}{"local", openLocal})
}

func openLocal(t *testing.T) replica.Replica {
	t.Helper()
	r, err := local.Open(local.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
