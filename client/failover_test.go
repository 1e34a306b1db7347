package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// A node whose leader was lost answers unknown_outcome; another answers.
func TestFailoverRetriesOnlyWhatIsSafe(t *testing.T) {
	var lost, good atomic.Int32
	lostNode := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lost.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"unknown_outcome","message":"leader lost"}}`))
	}))
	defer lostNode.Close()
	goodNode := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		good.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		w.Write([]byte(`{"id":"7","state":"pending","duplicate":true}`))
	}))
	defer goodNode.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // refuses connections

	ctx := context.Background()
	// single requests: the stream's own failover is TestEnqueueStreamFailover
	c := client.New(downURL, client.WithServers(lostNode.URL, goodNode.URL), client.WithoutStream())
	defer c.Close()
	res, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "t", UniqueKey: "k1"})
	if err != nil || res.ID != "7" || !res.Duplicate {
		t.Fatalf("keyed enqueue through a down node and a lost leader: %+v, %v", res, err)
	}
	if lost.Load() != 1 || good.Load() != 1 {
		t.Fatalf("calls: lost node %d, good node %d", lost.Load(), good.Load())
	}

	// without a unique key a lost outcome is the caller's: no retry
	c2 := client.New(lostNode.URL, client.WithServers(goodNode.URL), client.WithoutStream())
	defer c2.Close()
	_, err = c2.Enqueue(ctx, api.EnqueueRequest{Type: "t"})
	if client.ErrorCode(err) != api.CodeUnknownOutcome {
		t.Fatalf("unkeyed enqueue: %v", err)
	}
	if lost.Load() != 2 || good.Load() != 1 {
		t.Fatalf("unkeyed enqueue was retried: lost node %d, good node %d", lost.Load(), good.Load())
	}
}

// On the enqueue stream the same rules hold: a keyed job goes past a down
// node and a lost leader's unknown_outcome, an unkeyed one is not sent again.
func TestEnqueueStreamFailover(t *testing.T) {
	ctx := context.Background()
	var lost atomic.Int32
	lostNode := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lost.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"unknown_outcome","message":"leader lost"}}`))
	}))
	defer lostNode.Close()
	goodNode := httptest.NewServer(newAPI(t))
	defer goodNode.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	c := client.New(downURL, client.WithServers(lostNode.URL, goodNode.URL))
	defer c.Close()
	res, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "t", UniqueKey: "k1"})
	if err != nil || res.ID == "" {
		t.Fatalf("keyed enqueue through a down node and a lost leader: %+v, %v", res, err)
	}
	if lost.Load() != 1 {
		t.Fatalf("lost node called %d times, want 1", lost.Load())
	}
	again, err := c.Enqueue(ctx, api.EnqueueRequest{Type: "t", UniqueKey: "k1"})
	if err != nil || !again.Duplicate || again.ID != res.ID {
		t.Fatalf("the keyed job again: %+v, %v", again, err)
	}

	c2 := client.New(lostNode.URL, client.WithServers(goodNode.URL))
	defer c2.Close()
	_, err = c2.Enqueue(ctx, api.EnqueueRequest{Type: "t"})
	if client.ErrorCode(err) != api.CodeUnknownOutcome {
		t.Fatalf("unkeyed enqueue: %v", err)
	}
	if lost.Load() != 2 {
		t.Fatalf("unkeyed enqueue was retried: lost node called %d times", lost.Load())
	}
}
