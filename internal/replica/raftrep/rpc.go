package raftrep

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/beaver-raft/beaver-raft/internal/authtoken"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// rpcHandler serves the HTTP between nodes (on the node-to-node port):
//
//	POST /raft/v1/propose     body: an encoded command → wireResult
//	GET  /raft/v1/readindex   → {"index": commit index}, leader only
//	POST /raft/v1/join        {"id","addr"} → {}, leader only
//	POST /raft/v1/remove      {"id"} → {}, leader only
//
// A node answers only as the leader: it never forwards again, so a call
// cannot loop. Failures are wireFailure bodies with status 503 (or 400).
func (r *Replica) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /raft/v1/propose", func(w http.ResponseWriter, req *http.Request) {
		data, err := io.ReadAll(io.LimitReader(req.Body, maxEntry+1))
		if err != nil {
			r.fail(w, failOther, err)
			return
		}
		if !r.isLeader() {
			r.fail(w, failNotLeader, r.notLeader())
			return
		}
		res, err := r.apply(data)
		if err != nil {
			r.fail(w, failureCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, encodeResult(&res))
	})
	mux.HandleFunc("GET /raft/v1/readindex", func(w http.ResponseWriter, req *http.Request) {
		if !r.isLeader() {
			r.fail(w, failNotLeader, r.notLeader())
			return
		}
		idx, err := r.readIndex()
		if err != nil {
			r.fail(w, failureCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
	})
	member := func(op string) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			var in struct{ ID, Addr string }
			if err := json.NewDecoder(io.LimitReader(req.Body, 1<<16)).Decode(&in); err != nil {
				r.fail(w, failOther, err)
				return
			}
			if !r.isLeader() {
				r.fail(w, failNotLeader, r.notLeader())
				return
			}
			if err := r.changeMembership(op, in.ID, in.Addr); err != nil {
				r.fail(w, failureCode(err), err)
				return
			}
			writeJSON(w, http.StatusOK, struct{}{})
		}
	}
	mux.HandleFunc("POST /raft/v1/join", member("join"))
	mux.HandleFunc("POST /raft/v1/remove", member("remove"))
	return r.authenticate(mux)
}

// authenticate refuses calls without one of the API's tokens (when the
// API has any): the node-to-node port carries the same secrets.
func (r *Replica) authenticate(h http.Handler) http.Handler {
	if len(r.o.Tokens) == 0 {
		return h
	}
	tokens := authtoken.New(r.o.Tokens)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		scheme, token, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !tokens.Valid(token) {
			writeJSON(w, http.StatusUnauthorized, wireFailure{Code: failOther, Msg: "node-to-node call without a valid token"})
			return
		}
		h.ServeHTTP(w, req)
	})
}

func (r *Replica) isLeader() bool {
	return r.raft.State() == raft.Leader && !r.closed.Load()
}

func failureCode(err error) string {
	switch {
	case errors.Is(err, replica.ErrNotLeader):
		return failNotLeader
	case errors.Is(err, replica.ErrClosed):
		return failClosed
	case errors.Is(err, replica.ErrUnknownOutcome):
		return failUnknown
	case errors.Is(err, replica.ErrTooLarge):
		return failTooLarge
	case errors.Is(err, ErrLastVoter):
		return failLastVoter
	case errors.Is(err, ErrNoSuchNode):
		return failNoSuchNode
	}
	return failOther
}

func (r *Replica) fail(w http.ResponseWriter, code string, err error) {
	f := wireFailure{Code: code, Msg: err.Error()}
	var nl *replica.NotLeaderError
	if errors.As(err, &nl) {
		f.LeaderID, f.LeaderAddr = nl.LeaderID, nl.LeaderAddr
	}
	status := http.StatusServiceUnavailable
	if code == failOther || code == failTooLarge || code == failLastVoter || code == failNoSuchNode {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
