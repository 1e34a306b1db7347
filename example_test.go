package beaver_test

import (
	"context"
	"fmt"
	"os"

	beaver "github.com/beaver-raft/beaver-raft"
)

// A program that embeds the server, handles its own job type and enqueues a
// job to it.
func Example() {
	dir, _ := os.MkdirTemp("", "beaver-example")
	defer os.RemoveAll(dir)

	cfg := beaver.DefaultConfig()
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0" // any free port
	cfg.MetricsListen = "127.0.0.1:0"
	srv, err := beaver.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	greeted := make(chan string, 1)
	srv.HandleFunc("greet", func(ctx context.Context, job *beaver.Job) ([]byte, error) {
		greeted <- string(job.Payload)
		return []byte(`{"ok":true}`), nil
	})

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()

	id, _, err := srv.Enqueue(ctx, beaver.JobSpec{Type: "greet", Payload: []byte(`"hello"`)})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("enqueued job", id)
	fmt.Println("handler got", <-greeted)

	stop()
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	// Output:
	// enqueued job 1
	// handler got "hello"
}
