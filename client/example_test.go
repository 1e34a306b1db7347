package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

func ExampleClient_Enqueue() {
	c := client.New("http://127.0.0.1:7070", client.WithToken("s3cret"))
	defer c.Close()
	res, err := c.Enqueue(context.Background(), api.EnqueueRequest{
		Type:      "email",
		Payload:   json.RawMessage(`{"to":"ada@example.com"}`),
		Delay:     "5m",
		UniqueKey: "welcome-ada",
	})
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.Code == api.CodeQueueFull:
		log.Print("server is full, try later")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("job", res.ID, res.State)
	}
}

func ExampleWorker() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := client.New("http://127.0.0.1:7070")
	defer c.Close()
	w := &client.Worker{
		Client:      c,
		Queues:      []string{"default"},
		Types:       []string{"email"},
		Concurrency: 16,
		BatchAcks:   true,
		Handler: func(ctx context.Context, job api.Job) (json.RawMessage, error) {
			var p struct{ To string }
			if err := json.Unmarshal(job.Payload, &p); err != nil {
				return nil, client.Permanent(err) // retrying cannot fix it
			}
			// ... send the email, honouring ctx ...
			return json.RawMessage(`{"sent":true}`), nil
		},
	}
	if err := w.Run(ctx); err != nil { // returns after SIGINT, once running jobs are done
		log.Fatal(err)
	}
}
