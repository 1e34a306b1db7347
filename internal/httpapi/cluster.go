package httpapi

import (
	"errors"
	"net/http"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// clusterStatus renders the cluster part of a replica's status (nil for a
// single node).
func clusterStatus(st replica.Status) *api.ClusterStatus {
	c := st.Cluster
	if c == nil {
		return nil
	}
	out := &api.ClusterStatus{
		NodeID: c.NodeID, Role: st.Role, LeaderID: c.LeaderID, LeaderAddr: c.LeaderAddr, Term: c.Term,
		CommitIndex: c.CommitIndex, AppliedIndex: c.AppliedIndex, LastIndex: c.LastIndex,
		LastContact: c.LastContact.String(), LeaderChanges: c.LeaderChanges, Servers: []api.ClusterServer{},
	}
	if c.CommitIndex > c.AppliedIndex {
		out.Lag = c.CommitIndex - c.AppliedIndex
	}
	for _, s := range c.Servers {
		out.Servers = append(out.Servers, api.ClusterServer{ID: s.ID, RaftAddr: s.Address, Voter: s.Voter, Leader: s.Leader})
	}
	return out
}

// GET /v1/cluster
func (a *API) cluster(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	c := clusterStatus(rep.Status())
	if c == nil {
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "this server is not in cluster mode (start it with --cluster)"}
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// POST /v1/cluster/join and /v1/cluster/remove
func (a *API) clusterJoin(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	var req api.ClusterJoinRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.NodeID == "" || req.RaftAddr == "" {
		return invalidf("node_id and raft_addr are required")
	}
	return a.membership(w, r, rep, func(m replica.Membership) error { return m.Join(r.Context(), req.NodeID, req.RaftAddr) })
}

func (a *API) clusterRemove(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	var req api.ClusterRemoveRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.NodeID == "" {
		return invalidf("node_id is required")
	}
	return a.membership(w, r, rep, func(m replica.Membership) error { return m.Remove(r.Context(), req.NodeID) })
}

func (a *API) membership(w http.ResponseWriter, r *http.Request, rep replica.Replica, change func(replica.Membership) error) error {
	m, ok := rep.(replica.Membership)
	if !ok {
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "this server is not in cluster mode (start it with --cluster)"}
	}
	if err := change(m); err != nil {
		switch {
		case errors.Is(err, replica.ErrNotLeader), errors.Is(err, replica.ErrUnknownOutcome), errors.Is(err, replica.ErrClosed):
			return systemError(0, err)
		case errors.Is(err, replica.ErrLastVoter):
			return &httpError{status: http.StatusConflict, code: api.CodeConflict, msg: err.Error()}
		case errors.Is(err, replica.ErrNoSuchNode):
			return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: err.Error()}
		}
		return &httpError{status: http.StatusBadRequest, code: api.CodeInvalidArgument, msg: err.Error()}
	}
	writeJSON(w, http.StatusOK, clusterStatus(rep.Status()))
	return nil
}
