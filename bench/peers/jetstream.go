package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream, its subject and the consumer every workload uses.
const (
	jsStream   = "BENCH"
	jsSubject  = "bench"
	jsConsumer = "workers"
	// jsAckWait is longer than any run: no message is redelivered while a
	// consumer holds it.
	jsAckWait = 10 * time.Minute
	// jsIdleFlush is how long an e2e consumer waits for the next message
	// before it confirms the acks it has sent.
	jsIdleFlush = 10 * time.Millisecond
)

// jetStream runs the workloads against an embedded NATS server with
// JetStream on a temporary directory: a file-backed work-queue stream and
// one durable pull consumer with explicit acks. syncAlways is the server's
// SyncAlways option (jetstream { sync_interval: always }): every write of a
// stream store is fsynced; otherwise the default sync_interval (2 minutes).
func jetStream(syncAlways bool) system { return jetStreamCluster(1, syncAlways) }

// jetStreamCluster is jetStream on n embedded servers in this process,
// clustered over loopback routes, with a stream (and consumer) of n
// replicas; the clients connect to the stream's leader.
func jetStreamCluster(n int, syncAlways bool) system {
	s := system{Name: "jetstream", Durable: syncAlways}
	if syncAlways {
		s.Setting = "sync_interval always (fsync every write)"
	} else {
		s.Setting = "sync_interval 2m (default)"
	}
	if n > 1 {
		s.Name = fmt.Sprintf("jetstream-%d", n)
		s.Setting = fmt.Sprintf("%d servers, stream R%d, %s", n, n, s.Setting)
	}
	s.run = func(ctx context.Context, sc scenario, p params) (float64, error) {
		srv, err := startJetStream(ctx, p.Dir, n, syncAlways)
		if err != nil {
			return 0, err
		}
		defer srv.stop()
		return srv.runScenario(ctx, sc, p)
	}
	return s
}

type jsServer struct {
	srvs []*natsserver.Server
	url  string
	dir  string
}

// jsReadyTimeout bounds the wait for a cluster's JetStream to accept the
// stream.
const jsReadyTimeout = 30 * time.Second

func startJetStream(ctx context.Context, parent string, n int, syncAlways bool) (*jsServer, error) {
	dir, err := os.MkdirTemp(parent, "jetstream-")
	if err != nil {
		return nil, err
	}
	s := &jsServer{dir: dir}
	var routes []*url.URL
	var clusterPorts []int
	if n > 1 {
		for range n {
			port, err := freePort()
			if err != nil {
				s.stop()
				return nil, err
			}
			clusterPorts = append(clusterPorts, port)
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", port)})
		}
	}
	for i := range n {
		o := &natsserver.Options{
			ServerName: fmt.Sprintf("bench-%d", i+1),
			Host:       "127.0.0.1",
			Port:       natsserver.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, strconv.Itoa(i+1)),
			SyncAlways: syncAlways,
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			o.Cluster = natsserver.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: clusterPorts[i]}
			o.Routes = routes
		}
		srv, err := natsserver.NewServer(o)
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("nats-server: %w", err)
		}
		s.srvs = append(s.srvs, srv)
		srv.Start() // does not block
	}
	for _, srv := range s.srvs {
		if !srv.ReadyForConnections(10 * time.Second) {
			s.stop()
			return nil, errors.New("nats-server: not ready within 10s")
		}
	}
	s.url = s.srvs[0].ClientURL()
	nc, js, err := s.connect()
	if err != nil {
		s.stop()
		return nil, err
	}
	defer nc.Close()
	// a cluster accepts the stream once its meta group has a leader
	deadline := time.Now().Add(jsReadyTimeout)
	var st jetstream.Stream
	for {
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: jsStream, Subjects: []string{jsSubject},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: n,
		})
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("jetstream: create stream: %w", err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, jsStream, jetstream.ConsumerConfig{
		Durable: jsConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: jsAckWait, MaxAckPending: 1 << 20,
	}); err != nil {
		s.stop()
		return nil, fmt.Errorf("jetstream: create consumer: %w", err)
	}
	if n > 1 {
		// the clients talk to the stream's leader, once it has one
		for {
			info, err := st.Info(ctx)
			if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				for _, srv := range s.srvs {
					if srv.Name() == info.Cluster.Leader {
						s.url = srv.ClientURL()
					}
				}
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				s.stop()
				return nil, fmt.Errorf("jetstream: the stream has no leader within %s (%v)", jsReadyTimeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s, nil
}

func (s *jsServer) stop() {
	for _, srv := range s.srvs {
		srv.Shutdown()
	}
	for _, srv := range s.srvs {
		srv.WaitForShutdown()
	}
	os.RemoveAll(s.dir)
}

func (s *jsServer) connect(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(s.url, nats.NoReconnect())
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connect: %w", err)
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

func (s *jsServer) runScenario(ctx context.Context, sc scenario, p params) (float64, error) {
	switch sc {
	case enqueue:
		w := &work{total: int64(p.Jobs)}
		start := time.Now()
		err := group(ctx, p.Clients, func(ctx context.Context, _ int) error {
			nc, js, err := s.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			for w.take(1) == 1 {
				if _, err := js.Publish(ctx, jsSubject, p.payload); err != nil {
					return fmt.Errorf("jetstream publish: %w", err)
				}
			}
			return nil
		})
		return rate(p.Jobs, time.Since(start)), err
	case enqueueClient:
		nc, js, err := s.connect()
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		w := &work{total: int64(p.Jobs)}
		start := time.Now()
		err = group(ctx, p.Clients, func(ctx context.Context, _ int) error {
			for w.take(1) == 1 {
				if _, err := js.Publish(ctx, jsSubject, p.payload); err != nil {
					return fmt.Errorf("jetstream publish: %w", err)
				}
			}
			return nil
		})
		return rate(p.Jobs, time.Since(start)), err
	case stream:
		start := time.Now()
		err := s.publishStream(ctx, p)
		return rate(p.Jobs, time.Since(start)), err
	case enqueueBatch:
		start := time.Now()
		err := s.publishBatches(ctx, p)
		return rate(p.Jobs, time.Since(start)), err
	case e2e:
		fin := newFinish(p.Jobs)
		start := time.Now()
		err := group(ctx, 2, func(ctx context.Context, i int) error {
			if i == 0 {
				return s.publishBatches(ctx, p)
			}
			return s.consume(ctx, p, fin)
		})
		if err != nil {
			return 0, err
		}
		return rate(p.Jobs, fin.at.Sub(start)), nil
	case remote:
		if err := s.publishBatches(ctx, p); err != nil {
			return 0, err
		}
		fin := newFinish(p.Jobs)
		start := time.Now()
		if err := s.fetchAndAck(ctx, p, fin); err != nil {
			return 0, err
		}
		d := time.Since(start)
		if n := int(fin.done.Load()); n != p.Jobs {
			return 0, errCount("jetstream fetch+ack", n, p.Jobs)
		}
		return rate(p.Jobs, d), nil
	}
	return 0, fmt.Errorf("unknown scenario %q", sc)
}

// publishBatches publishes p.Jobs messages from p.BatchClients connections:
// p.Batch asynchronous publishes at a time, then waits for all their acks.
func (s *jsServer) publishBatches(ctx context.Context, p params) error {
	w := &work{total: int64(p.Jobs)}
	return group(ctx, p.BatchClients, func(ctx context.Context, _ int) error {
		nc, js, err := s.connect(jetstream.WithPublishAsyncMaxPending(p.Batch))
		if err != nil {
			return err
		}
		defer nc.Close()
		futures := make([]jetstream.PubAckFuture, 0, p.Batch)
		for {
			n := w.take(p.Batch)
			if n == 0 {
				return nil
			}
			futures = futures[:0]
			for range n {
				f, err := js.PublishAsync(jsSubject, p.payload)
				if err != nil {
					return fmt.Errorf("jetstream publish async: %w", err)
				}
				futures = append(futures, f)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return fmt.Errorf("jetstream publish async: %w", err)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	})
}

// jsStallWait is how long an async publish waits for room in a full
// window before it fails: longer than any run, so a full window holds the
// publisher back instead of failing it.
const jsStallWait = time.Minute

// publishStream publishes p.Jobs messages from p.Streams connections,
// each publishing asynchronously without pause while up to p.Window wait
// for their acks; another goroutine per connection takes the acks in
// order. Done when every ack came back.
func (s *jsServer) publishStream(ctx context.Context, p params) error {
	w := &work{total: int64(p.Jobs)}
	return group(ctx, p.Streams, func(ctx context.Context, _ int) error {
		nc, js, err := s.connect(jetstream.WithPublishAsyncMaxPending(p.Window))
		if err != nil {
			return err
		}
		defer nc.Close()
		futures := make(chan jetstream.PubAckFuture, p.Window)
		return group(ctx, 2, func(ctx context.Context, i int) error {
			if i == 0 {
				defer close(futures)
				for w.take(1) == 1 {
					f, err := js.PublishAsync(jsSubject, p.payload, jetstream.WithStallWait(jsStallWait))
					if err != nil {
						return fmt.Errorf("jetstream publish async: %w", err)
					}
					select {
					case futures <- f:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}
			for f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return fmt.Errorf("jetstream publish async: %w", err)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	})
}

// consume (e2e) reads messages with p.Consumers pull consumers (Messages,
// p.LeaseMax buffered), until fin is done. Each message is acked at once
// without waiting; every p.LeaseMax-th, and the last before an idle
// pause, is acked with DoubleAck, which waits for the server's
// confirmation: acks of one connection are processed in order, so that
// confirms the ones before it, and only then are they counted.
func (s *jsServer) consume(ctx context.Context, p params, fin *finish) error {
	return group(ctx, p.Consumers, func(ctx context.Context, _ int) error {
		nc, js, err := s.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		cons, err := js.Consumer(ctx, jsStream, jsConsumer)
		if err != nil {
			return fmt.Errorf("jetstream consumer: %w", err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(p.LeaseMax))
		if err != nil {
			return fmt.Errorf("jetstream messages: %w", err)
		}
		defer it.Stop()
		var held jetstream.Msg // not acked yet
		acked := 0             // acked without confirmation
		confirm := func() error {
			if held == nil {
				return nil
			}
			if err := held.DoubleAck(ctx); err != nil {
				return fmt.Errorf("jetstream ack: %w", err)
			}
			fin.add(acked + 1)
			held, acked = nil, 0
			return nil
		}
		for !fin.isDone() && ctx.Err() == nil {
			msg, err := it.Next(jetstream.NextMaxWait(jsIdleFlush))
			if errors.Is(err, nats.ErrTimeout) {
				if err := confirm(); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("jetstream next: %w", err)
			}
			if held != nil {
				if err := held.Ack(); err != nil {
					return fmt.Errorf("jetstream ack: %w", err)
				}
				acked++
			}
			held = msg
			if acked+1 >= p.LeaseMax {
				if err := confirm(); err != nil {
					return err
				}
			}
		}
		return ctx.Err()
	})
}

// fetchAndAck (remote) takes the messages of a filled stream with
// p.Consumers pull consumers: FetchNoWait of p.LeaseMax, Ack of each but the
// last, DoubleAck of the last (as consume). A consumer stops when a fetch
// finds nothing.
func (s *jsServer) fetchAndAck(ctx context.Context, p params, fin *finish) error {
	return group(ctx, p.Consumers, func(ctx context.Context, _ int) error {
		nc, js, err := s.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		cons, err := js.Consumer(ctx, jsStream, jsConsumer)
		if err != nil {
			return fmt.Errorf("jetstream consumer: %w", err)
		}
		msgs := make([]jetstream.Msg, 0, p.LeaseMax)
		for ctx.Err() == nil {
			batch, err := cons.FetchNoWait(p.LeaseMax)
			if err != nil {
				return fmt.Errorf("jetstream fetch: %w", err)
			}
			msgs = msgs[:0]
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
				return fmt.Errorf("jetstream fetch: %w", err)
			}
			if len(msgs) == 0 {
				return nil
			}
			for _, m := range msgs[:len(msgs)-1] {
				if err := m.Ack(); err != nil {
					return fmt.Errorf("jetstream ack: %w", err)
				}
			}
			if err := msgs[len(msgs)-1].DoubleAck(ctx); err != nil {
				return fmt.Errorf("jetstream ack: %w", err)
			}
			fin.add(len(msgs))
		}
		return ctx.Err()
	})
}
