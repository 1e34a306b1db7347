package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/client"
)

// remoteLease is the lease the remote scenario's workers take: long enough
// that no lease expires during a run.
const remoteLease = 10 * time.Minute

// enqueueBatches enqueues jobs of type typ in batches of r.o.Batch from
// r.o.Clients clients until w runs out. It records each request's latency
// in reqLat and its latency per job in jobLat (if not nil), and returns the
// number of jobs enqueued.
func (r *run) enqueueBatches(ctx context.Context, w *work, typ string, reqLat, jobLat *recorder, prog *progress) (int, error) {
	var done atomic.Int64
	err := group(ctx, r.o.Clients, func(ctx context.Context, _ int) error {
		var rs, js *shard
		if reqLat != nil {
			rs = reqLat.shard()
		}
		if jobLat != nil {
			js = jobLat.shard()
		}
		jobs := make([]api.EnqueueRequest, r.o.Batch)
		for i := range jobs {
			jobs[i] = api.EnqueueRequest{Queue: r.queue, Type: typ, Payload: r.payload}
		}
		for {
			n := w.take(r.o.Batch)
			if n == 0 {
				return nil
			}
			start := time.Now()
			res, err := r.t.c.EnqueueBatch(ctx, api.BatchRequest{Jobs: jobs[:n]})
			if err != nil {
				return fmt.Errorf("bench: enqueue batch: %w", err)
			}
			d := time.Since(start)
			if len(res.IDs) != n {
				return fmt.Errorf("bench: enqueue batch of %d answered %d ids", n, len(res.IDs))
			}
			if rs != nil {
				rs.add(d)
			}
			if js != nil {
				js.add(d / time.Duration(n))
			}
			done.Add(int64(n))
			prog.add(n)
		}
	})
	return int(done.Load()), err
}

// enqueueBatch: POST /v1/jobs/batch, Batch jobs per request.
func (r *run) enqueueBatch(ctx context.Context) error {
	w := newWork(r.o)
	reqLat, jobLat := newRecorder("request"), newRecorder("job")
	prog := startProgress(r.o.Progress, "enqueue-batch", r.o.Jobs*boolInt(r.o.Duration == 0), r.o.Duration)
	defer prog.end()
	var n int
	err := r.timed(ctx, func() error {
		var err error
		n, err = r.enqueueBatches(ctx, w, TypeBench, reqLat, jobLat, prog)
		return err
	})
	if err != nil {
		return err
	}
	rl := reqLat.summary()
	r.res.Jobs, r.res.Requests, r.res.Latency = n, rl.Count, []Latency{rl, jobLat.summary()}
	return nil
}

// e2e: enqueue Jobs noop jobs in batches while the server runs them; timed
// from the first enqueue to the last completion.
func (r *run) e2e(ctx context.Context) error {
	lat := newRecorder("enqueue")
	prog := startProgress(r.o.Progress, "e2e", r.o.Jobs, 0)
	defer prog.end()
	err := r.timed(ctx, func() error {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		enqueued := make(chan error, 1)
		go func() {
			_, err := r.enqueueBatches(ctx, newWork(r.o), TypeNoop, lat, nil, nil)
			if err != nil {
				cancel(err)
			}
			enqueued <- err
		}()
		// Once all are completed all were enqueued, but the last answer
		// may still be on its way: wait for the enqueuers, cancel them
		// only on a failure.
		werr := r.t.waitCompleted(ctx, r.queue, r.o.Jobs, prog)
		if werr != nil {
			cancel(werr)
		}
		eerr := <-enqueued
		if werr != nil {
			return context.Cause(ctx) // the first failure, the enqueuers' or the wait's
		}
		return eerr
	})
	if err != nil {
		return err
	}
	l := lat.summary()
	r.res.Jobs, r.res.Requests, r.res.Latency = r.o.Jobs, l.Count, []Latency{l}
	return nil
}

// remote: fill the queue (untimed), then remote workers lease and ack
// every job.
func (r *run) remote(ctx context.Context) error {
	prog := startProgress(r.o.Progress, "fill", r.o.Jobs, 0)
	start := time.Now()
	n, err := r.enqueueBatches(ctx, newWork(r.o), TypeRemote, nil, nil, prog)
	prog.end()
	if err != nil {
		return err
	}
	if r.t.settle != nil {
		if err := r.t.settle(ctx); err != nil {
			return fmt.Errorf("bench: waiting for the target to apply the fill: %w", err)
		}
	}
	fill := time.Since(start)
	r.res.Fill = &Phase{Jobs: n, Elapsed: fill, JobsPerSec: float64(n) / fill.Seconds()}

	prog = startProgress(r.o.Progress, "remote", r.o.Jobs, 0)
	defer prog.end()
	if r.o.RemoteMode == RemoteWorker {
		err = r.timed(ctx, func() error { return r.remoteWorkers(ctx, prog) })
	} else {
		err = r.timed(ctx, func() error { return r.remoteLean(ctx, prog) })
	}
	if err != nil {
		return err
	}
	r.res.Jobs = r.o.Jobs
	return nil
}

// remoteLean: each client loops Lease (max LeaseMax, no wait) and one Ack
// for what it got, until a lease finds nothing (every job is leased: no
// lease expires during the run).
func (r *run) remoteLean(ctx context.Context, prog *progress) error {
	leaseLat, ackLat := newRecorder("lease"), newRecorder("ack")
	var acked atomic.Int64
	err := group(ctx, r.o.Clients, func(ctx context.Context, i int) error {
		ls, as := leaseLat.shard(), ackLat.shard()
		req := api.LeaseRequest{
			Queues: []string{r.queue}, Types: []string{TypeRemote}, Max: r.o.LeaseMax,
			Wait: "0s", Lease: remoteLease.String(), Worker: fmt.Sprintf("bench-%d", i),
		}
		var acks []api.AckItem
		for {
			start := time.Now()
			res, err := r.t.c.Lease(ctx, req)
			if err != nil {
				return fmt.Errorf("bench: lease: %w", err)
			}
			ls.add(time.Since(start))
			if len(res.Jobs) == 0 {
				return nil
			}
			acks = acks[:0]
			for _, j := range res.Jobs {
				acks = append(acks, api.AckItem{ID: j.ID, LeaseID: j.LeaseID})
			}
			start = time.Now()
			ar, err := r.t.c.Ack(ctx, api.AckRequest{Acks: acks})
			if err != nil {
				return fmt.Errorf("bench: ack: %w", err)
			}
			as.add(time.Since(start))
			for _, a := range ar.Results {
				if !a.OK {
					return fmt.Errorf("bench: ack of job %s rejected: %+v", a.ID, a.Error)
				}
			}
			acked.Add(int64(len(acks)))
			prog.add(len(acks))
		}
	})
	if err != nil {
		return err
	}
	if n := acked.Load(); n != int64(r.o.Jobs) {
		return fmt.Errorf("bench: the workers acked %d jobs, want %d", n, r.o.Jobs)
	}
	ll, al := leaseLat.summary(), ackLat.summary()
	r.res.Requests, r.res.Latency = ll.Count+al.Count, []Latency{ll, al}
	return nil
}

// remoteWorkers: Clients client.Workers (Concurrency LeaseMax, BatchAcks)
// with a handler that does nothing, until every job is acked.
func (r *run) remoteWorkers(ctx context.Context, prog *progress) error {
	var handled atomic.Int64
	all := make(chan struct{})
	total := int64(r.o.Jobs)
	h := func(context.Context, api.Job) (json.RawMessage, error) {
		n := handled.Add(1)
		prog.add(1)
		if n == total {
			close(all)
		}
		return nil, nil
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, r.o.Clients)
	var wg sync.WaitGroup
	for i := range r.o.Clients {
		wg.Go(func() {
			w := &client.Worker{
				Client: r.t.c, Queues: []string{r.queue}, Types: []string{TypeRemote},
				Concurrency: r.o.LeaseMax, Lease: remoteLease, Wait: time.Second,
				BatchAcks: true, Name: fmt.Sprintf("bench-%d", i), Handler: h,
			}
			errs <- w.Run(wctx)
		})
	}
	var err error
	select {
	case <-all:
	case <-ctx.Done():
		err = ctx.Err()
	case err = <-errs:
		if err == nil {
			err = errors.New("bench: a worker stopped early")
		}
	}
	// the workers flush their acks before Run returns
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	c, err := r.t.counts(ctx, r.queue)
	if err != nil {
		return err
	}
	if c.Completed != r.o.Jobs {
		return fmt.Errorf("bench: %d jobs completed after the workers stopped, want %d (%+v)", c.Completed, r.o.Jobs, c)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
