package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// streamWriteBuffer is the buffer of a stream's writer: its lines go to
// the connection in chunks of about this size (one chunk of the chunked
// body each), not in one write per line.
const streamWriteBuffer = 32 << 10

// streamReadBuffer is the buffer of a stream's reader; an answer longer
// than this fails the run.
const streamReadBuffer = 64 << 10

// progressEveryAnswers is how many answers a stream's reader counts before
// it adds them to the progress bar.
const progressEveryAnswers = 1024

// stream: Clients streams (POST /v1/jobs/stream), each one request that
// writes its share of Jobs lines from one goroutine as fast as it can while
// another reads the answers. Every answer must be ok. Timed from the first
// line written to the last answer; the latency of a line is from when the
// writer wrote it (into its buffer) to when its answer was read.
func (r *run) stream(ctx context.Context) error {
	line, err := json.Marshal(r.benchRequest())
	if err != nil {
		return fmt.Errorf("bench: encode the job: %w", err)
	}
	line = append(line, '\n')
	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	// Every stream's request hangs off sctx: a failure cancels it, which
	// breaks the other streams' connections and ends their goroutines.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conns := make([]*streamConn, 0, r.o.Clients)
	defer func() {
		cancel(errors.New("the run is over"))
		for _, c := range conns {
			c.close()
		}
	}()
	for i := range r.o.Clients {
		c, err := openStream(sctx, hc, r.t.url, r.t.token)
		if err != nil {
			return fmt.Errorf("bench: stream %d: %w", i+1, err)
		}
		conns = append(conns, c)
	}
	lat := newRecorder("line")
	prog := startProgress(r.o.Progress, "stream", r.o.Jobs, 0)
	defer prog.end()
	var answered atomic.Int64
	err = r.timed(ctx, func() error {
		return group(ctx, len(conns), func(_ context.Context, i int) error {
			jobs := r.o.Jobs / len(conns)
			if i < r.o.Jobs%len(conns) {
				jobs++
			}
			n, err := conns[i].run(jobs, line, lat.shard(), prog)
			answered.Add(int64(n))
			if err != nil {
				err = fmt.Errorf("bench: stream %d: %w", i+1, err)
				cancel(err)
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	l := lat.summary()
	r.res.Jobs, r.res.Requests, r.res.Latency = int(answered.Load()), len(conns), []Latency{l}
	return nil
}

// streamConn is one open POST /v1/jobs/stream: the writing end of its body
// and its answer.
type streamConn struct {
	pw   *io.PipeWriter
	resp *http.Response
}

// openStream starts POST /v1/jobs/stream at the server at base and returns
// once the server answered its headers (it does so before any line).
func openStream(ctx context.Context, hc *http.Client, base, token string) (*streamConn, error) {
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/jobs/stream", pr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", api.ContentTypeNDJSON)
	req.Header.Set("Accept", api.ContentTypeNDJSON)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		pw.Close()
		return nil, fmt.Errorf("POST /v1/jobs/stream: %w", err)
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, api.ContentTypeNDJSON) {
		pw.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		return nil, fmt.Errorf("POST /v1/jobs/stream: %d %s (%s): %s", resp.StatusCode, http.StatusText(resp.StatusCode), ct, bytes.TrimSpace(b))
	}
	return &streamConn{pw: pw, resp: resp}, nil
}

// close ends the body (if the writer has not) and closes the answer.
func (c *streamConn) close() {
	c.pw.Close()
	c.resp.Body.Close()
}

// run writes jobs lines from a goroutine of its own while it reads their
// answers, and returns the number of ok answers. An error answer, an answer
// missing or one too many fail it. On a failure the caller cancels the
// request's context, which ends the writer too; run returns once it did.
func (c *streamConn) run(jobs int, line []byte, lat *shard, prog *progress) (int, error) {
	sent := make([]atomic.Int64, jobs) // when line i was written, since base
	base := time.Now()
	written := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(c.pw, streamWriteBuffer)
		var err error
		for i := 0; i < jobs && err == nil; i++ {
			sent[i].Store(int64(time.Since(base)))
			_, err = bw.Write(line)
		}
		if err == nil {
			err = bw.Flush()
		}
		c.pw.CloseWithError(err) // nil: the body ends here
		written <- err
	}()
	ok, err := c.readAnswers(jobs, base, sent, lat, prog)
	if err != nil {
		// Unblock a writer held back by the server's in-flight bound.
		c.pw.CloseWithError(err)
	}
	if werr := <-written; err == nil && werr != nil {
		err = fmt.Errorf("writing the lines: %w", werr)
	}
	return ok, err
}

// readAnswers reads the answers of jobs lines, then the end of the answer.
func (c *streamConn) readAnswers(jobs int, base time.Time, sent []atomic.Int64, lat *shard, prog *progress) (int, error) {
	br := bufio.NewReaderSize(c.resp.Body, streamReadBuffer)
	unreported := 0
	defer func() { prog.add(unreported) }()
	for got := 0; got < jobs; got++ {
		b, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF && len(b) == 0 {
				return got, fmt.Errorf("the answer ended after %d answers of %d lines", got, jobs)
			}
			return got, fmt.Errorf("reading answer %d of %d: %w", got+1, jobs, err)
		}
		d := time.Since(base) - time.Duration(sent[got].Load())
		if err := checkAnswer(b); err != nil {
			return got, fmt.Errorf("after %d ok answers of %d lines: %w", got, jobs, err)
		}
		lat.add(d)
		if unreported++; unreported == progressEveryAnswers {
			prog.add(unreported)
			unreported = 0
		}
	}
	b, err := br.ReadSlice('\n')
	switch {
	case len(b) > 0:
		if aerr := checkAnswer(b); aerr != nil {
			return jobs, fmt.Errorf("after all %d answers: %w", jobs, aerr)
		}
		return jobs, fmt.Errorf("an answer more than the %d lines: %s", jobs, bytes.TrimSpace(b))
	case err != io.EOF:
		return jobs, fmt.Errorf("reading the end of the answer: %w", err)
	}
	return jobs, nil
}

// okAnswerPrefix starts every ok answer the server writes.
var okAnswerPrefix = []byte(`{"id":"`)

// checkAnswer returns nil if b is an ok answer (an id), else an error that
// says what it is.
func checkAnswer(b []byte) error {
	if bytes.HasPrefix(b, okAnswerPrefix) && !bytes.Contains(b, []byte(`"error"`)) {
		return nil // the shape the server writes; anything else is decoded
	}
	var a api.StreamAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("an answer that is not JSON (%v): %s", err, bytes.TrimSpace(b))
	}
	switch {
	case a.Error != nil && a.Error.Line > 0:
		return fmt.Errorf("line %d answered %s: %s", a.Error.Line, a.Error.Code, a.Error.Message)
	case a.Error != nil:
		return fmt.Errorf("the server ended the stream: %s: %s", a.Error.Code, a.Error.Message)
	case a.ID == "":
		return fmt.Errorf("an answer without an id or an error: %s", bytes.TrimSpace(b))
	}
	return nil
}
