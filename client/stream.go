package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// StreamIdle is how long the enqueue stream of a Client stays open without
// a call to Enqueue before it is closed.
const StreamIdle = 5 * time.Second

// WithoutStream makes Enqueue send one POST /v1/jobs per call instead of
// coalescing concurrent calls onto an enqueue stream.
func WithoutStream() Option { return func(c *Client) { c.noStream = true } }

// errSingle says that the server has no stream route: use POST /v1/jobs.
var errSingle = errors.New("client: the server has no enqueue stream")

// streamWaiter is one Enqueue call on a stream.
type streamWaiter struct {
	line    []byte
	written bool // the line was handed to the connection: the server may have it
	done    chan streamResult
}

type streamResult struct {
	res api.EnqueueResponse
	err error
	// when err is set: whether the line may have reached the server, and
	// whether the stream had opened (its answer had begun)
	written, opened bool
	idx             int // the server's index in Client.bases
}

// errStreamClosed ends the lines of a stream that ended cleanly (an idle
// end racing a new call) before they were sent: they go on a new stream.
var errStreamClosed = errors.New("client: the enqueue stream ended")

// streamOpenTimeout bounds the wait for the answer of a stream to begin
// (the server answers its headers at once).
const streamOpenTimeout = 15 * time.Second

// errStreamNoAnswer ends a stream whose answer did not begin in time.
var errStreamNoAnswer = errors.New("client: the enqueue stream got no answer from the server")

// errClientClosed is the error of the calls waiting on a stream that
// Client.Close ended.
var errClientClosed = errors.New("client: closed while the call waited")

// pipe is one open POST /v1/jobs/stream of a Client. Its goroutines (the
// writer and the reader) belong to the Client: Close stops and waits for
// them.
type pipe struct {
	c      *Client
	base   string
	idx    int // of base in c.bases
	ctx    context.Context
	cancel context.CancelCauseFunc
	pr     *io.PipeReader
	pw     *io.PipeWriter

	mu      sync.Mutex
	closed  bool            // accepts no more lines
	queue   []*streamWaiter // not yet written
	pending []*streamWaiter // written (or being written), not yet answered
	more    chan struct{}   // (1) queue grew
	opened  bool            // the answer began (a 200 came)

	wrote chan struct{} // closed when the writer returned
	done  chan struct{} // closed when both goroutines returned
}

// enqueueStream sends req on the Client's stream, opening one if needed.
// A failed line is sent again under the rules of call: an answer's error
// as POST /v1/jobs's, a line that may have reached the server only with a
// unique key (unknown_outcome otherwise), and a line that was not sent
// whenever the stream broke after it opened (a stream that did not open
// is a call that failed).
func (c *Client) enqueueStream(ctx context.Context, req api.EnqueueRequest) (api.EnqueueResponse, error) {
	line, err := json.Marshal(req)
	if err != nil {
		return api.EnqueueResponse{}, err
	}
	line = append(line, '\n')
	idempotent := req.UniqueKey != ""
	wait := retryFirst
	for attempt := 0; ; attempt++ {
		w := &streamWaiter{line: line, done: make(chan streamResult, 1)}
		p := c.openPipe()
		if p == nil {
			var out api.EnqueueResponse
			return out, c.call(ctx, "POST", "/v1/jobs", req, &out, idempotent)
		}
		if !p.submit(w) {
			continue // it closed meanwhile: a new one
		}
		var r streamResult
		select {
		case r = <-w.done:
		case <-ctx.Done():
			return api.EnqueueResponse{}, ctx.Err() // its answer, if any, is dropped
		}
		switch {
		case r.err == nil:
			return r.res, nil
		case errors.Is(r.err, errSingle):
			var out api.EnqueueResponse
			return out, c.call(ctx, "POST", "/v1/jobs", req, &out, idempotent)
		case errors.Is(r.err, errStreamClosed) && !r.written:
			attempt--
			continue
		}
		if attempt >= maxRetries || !c.sendAgain(r, idempotent) {
			return api.EnqueueResponse{}, r.err
		}
		var e *Error
		if !errors.As(r.err, &e) || e.Code != api.CodeInvalidArgument {
			// try the next node (once per broken stream, not per line)
			c.cur.CompareAndSwap(int32(r.idx), int32((r.idx+1)%len(c.bases)))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return api.EnqueueResponse{}, r.err
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// sendAgain says whether a line that failed with r may be sent again.
func (c *Client) sendAgain(r streamResult, idempotent bool) bool {
	switch {
	case errors.Is(r.err, errSingle), errors.Is(r.err, errStreamClosed) && !r.written:
		return true
	case !r.written && r.opened && !errors.Is(r.err, errClientClosed):
		return true // the stream broke under a line it never sent
	}
	return retryable(r.err, idempotent || !r.written, len(c.bases) > 1)
}

// openPipe returns the open stream, or opens one; nil once the Client
// fell back to single calls.
func (c *Client) openPipe() *pipe {
	c.sm.Lock()
	defer c.sm.Unlock()
	if c.streamOff.Load() {
		return nil
	}
	if c.pipe != nil && !c.pipe.isClosed() {
		return c.pipe
	}
	idx := int(uint32(c.cur.Load())) % len(c.bases)
	ctx, cancel := context.WithCancelCause(context.Background())
	pr, pw := io.Pipe()
	p := &pipe{c: c, base: c.bases[idx], idx: idx, ctx: ctx, cancel: cancel, pr: pr, pw: pw,
		more: make(chan struct{}, 1), wrote: make(chan struct{}), done: make(chan struct{})}
	c.pipe = p
	if c.pipes == nil {
		c.pipes = make(map[*pipe]struct{})
	}
	c.pipes[p] = struct{}{}
	go func() { defer close(p.wrote); p.write() }()
	go p.read()
	return p
}

// closeStream stops the Client's streams and waits for their goroutines.
func (c *Client) closeStream() {
	c.sm.Lock()
	ps := make([]*pipe, 0, len(c.pipes))
	for p := range c.pipes {
		ps = append(ps, p)
	}
	c.pipe = nil
	c.sm.Unlock()
	for _, p := range ps {
		p.cancel(errClientClosed)
		<-p.done
	}
}

func (p *pipe) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// submit queues w; false if the pipe is closed.
func (p *pipe) submit(w *streamWaiter) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.queue = append(p.queue, w)
	p.mu.Unlock()
	select {
	case p.more <- struct{}{}:
	default:
	}
	return true
}

// write is the writer goroutine: it writes the queued lines, and ends the
// body after StreamIdle without a line. A line counts as written from the
// moment it is handed over: part of a write may reach the server before
// the connection fails.
func (p *pipe) write() {
	bw := bufio.NewWriterSize(p.pw, 64<<10)
	idle := time.NewTimer(StreamIdle)
	defer idle.Stop()
	for {
		// Let the callers an answer burst woke submit their next lines
		// first: one write (and one syscall) then carries them all.
		runtime.Gosched()
		p.mu.Lock()
		batch := p.queue
		p.queue = nil
		for _, w := range batch {
			w.written = true
		}
		p.pending = append(p.pending, batch...)
		p.mu.Unlock()
		if len(batch) > 0 {
			for _, w := range batch {
				bw.Write(w.line)
			}
			if err := bw.Flush(); err != nil {
				p.pw.CloseWithError(err)
				return
			}
			idle.Reset(StreamIdle)
			continue
		}
		select {
		case <-p.more:
		case <-p.ctx.Done():
			p.pw.CloseWithError(p.ctx.Err())
			return
		case <-idle.C:
			p.mu.Lock()
			if len(p.queue) == 0 && len(p.pending) == 0 {
				p.closed = true
			}
			closed := p.closed
			p.mu.Unlock()
			if closed {
				p.pw.Close() // the end of the body: the server ends the answer
				return
			}
			idle.Reset(StreamIdle)
		}
	}
}

// read is the reader goroutine: it opens the request, matches answers to
// the pending lines in order, and fails what is left when the stream ends.
func (p *pipe) read() {
	defer func() {
		<-p.wrote
		p.c.sm.Lock()
		delete(p.c.pipes, p)
		if p.c.pipe == p {
			p.c.pipe = nil
		}
		p.c.sm.Unlock()
		close(p.done)
	}()
	defer p.pr.Close()
	err := p.serve()
	switch {
	case context.Cause(p.ctx) == errClientClosed:
		err = errClientClosed // Close: nothing is sent again
	case context.Cause(p.ctx) == errStreamNoAnswer:
		err = errStreamNoAnswer
	case err == nil:
		err = errStreamClosed
	}
	p.mu.Lock()
	p.closed = true
	waiters := append(p.pending, p.queue...)
	p.pending, p.queue = nil, nil
	opened := p.opened
	p.mu.Unlock()
	p.cancel(err) // stops the writer
	for _, w := range waiters {
		e := err
		var se *Error
		if w.written && err != errSingle && !errors.As(err, &se) {
			e = &Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnknownOutcome,
				Message: "the enqueue stream broke before this job was answered: it may or may not have been enqueued; retrying with the same unique_key is safe: " + err.Error()}
		}
		w.done <- streamResult{err: e, written: w.written, opened: opened, idx: p.idx}
	}
}

// serve runs the request until its answer ends; the error says why (nil:
// a clean end).
func (p *pipe) serve() error {
	req, err := http.NewRequestWithContext(p.ctx, "POST", p.base+"/v1/jobs/stream", p.pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", api.ContentTypeNDJSON)
	req.Header.Set("Accept", api.ContentTypeNDJSON)
	// The body goes only once the server starts reading it: a refusal
	// (401, or 404 from a server without the route) answers at once then;
	// otherwise the server would first read the rest of a body that does
	// not end while the calls on it wait for their answers.
	req.Header.Set("Expect", "100-continue")
	if p.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.c.token)
	}
	// A connection that breaks before the answer begins leaves Do waiting
	// for the body, which waits for more lines: bound that wait.
	t := time.AfterFunc(streamOpenTimeout, func() { p.cancel(errStreamNoAnswer) })
	resp, err := p.c.hc.Do(req)
	t.Stop()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		p.c.streamOff.Store(true) // an older server: single calls from now on
		return errSingle
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && (resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), api.ContentTypeNDJSON)):
		// a success that is not a stream: something that does not speak it
		p.c.streamOff.Store(true)
		return errSingle
	case resp.StatusCode != http.StatusOK:
		return decodeError(resp)
	}
	p.mu.Lock()
	p.opened = true
	p.mu.Unlock()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF && len(line) == 0 {
				return nil
			}
			return err
		}
		a, ok := parseOK(line)
		if !ok {
			if err := json.Unmarshal(line, &a); err != nil {
				return err
			}
		}
		if a.Error != nil && a.Error.Line == 0 {
			// The end of the stream (a failure, the idle bound): every line
			// the server read is answered, so the others never got in.
			p.mu.Lock()
			for _, w := range p.pending {
				w.written = false
			}
			p.mu.Unlock()
			return &Error{Status: http.StatusServiceUnavailable, Code: a.Error.Code, Message: a.Error.Message}
		}
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.mu.Unlock()
			return errors.New("client: an enqueue stream answered more lines than were sent")
		}
		w := p.pending[0]
		p.pending = p.pending[1:]
		p.mu.Unlock()
		if a.Error != nil {
			// the message as POST /v1/jobs gives it: without the line
			msg := strings.TrimPrefix(a.Error.Message, "line "+strconv.Itoa(a.Error.Line)+": ")
			w.done <- streamResult{err: &Error{Status: statusOf(a.Error.Code), Code: a.Error.Code, Message: msg}, written: true, opened: true, idx: p.idx}
			continue
		}
		w.done <- streamResult{res: api.EnqueueResponse{ID: a.ID, State: a.State, Duplicate: a.Duplicate}}
	}
}

// statusOf is the status POST /v1/jobs answers with code.
func statusOf(code string) int {
	switch code {
	case api.CodeInvalidArgument:
		return http.StatusBadRequest
	case api.CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case api.CodeQueueFull:
		return http.StatusTooManyRequests
	case api.CodeInsufficientStorage:
		return http.StatusInsufficientStorage
	case api.CodeUnauthorized:
		return http.StatusUnauthorized
	case api.CodeNotFound:
		return http.StatusNotFound
	case api.CodeConflict:
		return http.StatusConflict
	case api.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusServiceUnavailable
}

// parseOK parses the answer of an enqueued line as the server writes it,
// {"id":"12","state":"pending","duplicate":false}, without encoding/json;
// anything else is not ok (the caller decodes it with encoding/json).
func parseOK(line []byte) (api.StreamAnswer, bool) {
	var a api.StreamAnswer
	b, ok := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !ok {
		return a, false
	}
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 {
		return a, false
	}
	id := b[:n]
	if b, ok = bytes.CutPrefix(b[n:], []byte(`","state":"`)); !ok {
		return a, false
	}
	n = 0
	for n < len(b) && b[n] >= 'a' && b[n] <= 'z' {
		n++
	}
	if n == 0 {
		return a, false
	}
	state := b[:n]
	switch rest := string(bytes.TrimRight(b[n:], "\r\n")); rest {
	case `","duplicate":false}`:
	case `","duplicate":true}`:
		a.Duplicate = true
	default:
		return a, false
	}
	a.ID, a.State = string(id), string(state)
	return a, true
}

// eachWindow bounds the lines EnqueueEach has sent ahead of their answers.
const eachWindow = 4096

// EnqueueEach sends reqs in their order on the enqueue stream, without
// waiting for each answer before sending the next job, and calls fn with
// each job's answer, in the order of reqs (the server writes the lines
// that arrive together as one write, and a few writes at once: ids follow
// the order of reqs within a write, not always across writes): the index, and the answer or
// the error Enqueue would have given. Every job is its own durable write;
// a job refused does not stop the others. A job whose line failed in a way
// Enqueue retries is sent again on its own, after the jobs sent meanwhile.
// Without a stream (WithoutStream, an older server) it calls Enqueue for
// each job in turn.
func (c *Client) EnqueueEach(ctx context.Context, reqs []api.EnqueueRequest, fn func(i int, res api.EnqueueResponse, err error)) {
	waiters := make([]*streamWaiter, 0, min(len(reqs), eachWindow))
	first := 0 // index in reqs of waiters[0]
	settle := func() {
		w := waiters[0]
		waiters = waiters[1:]
		i := first
		first++
		if w == nil { // not sent on the stream
			res, err := c.Enqueue(ctx, reqs[i])
			fn(i, res, err)
			return
		}
		var r streamResult
		select {
		case r = <-w.done:
		case <-ctx.Done():
			fn(i, api.EnqueueResponse{}, ctx.Err())
			return
		}
		if r.err == nil {
			fn(i, r.res, nil)
			return
		}
		if !c.sendAgain(r, reqs[i].UniqueKey != "") {
			fn(i, api.EnqueueResponse{}, r.err)
			return
		}
		res, err := c.Enqueue(ctx, reqs[i]) // with Enqueue's own retries
		fn(i, res, err)
	}
	for i := range reqs {
		if len(waiters) == eachWindow {
			settle()
		}
		waiters = append(waiters, c.send(ctx, &reqs[i]))
	}
	for len(waiters) > 0 {
		settle()
	}
}

// send hands req to the Client's stream without waiting for its answer;
// nil when it was not sent there (no stream, or it could not be encoded):
// the caller then calls Enqueue.
func (c *Client) send(ctx context.Context, req *api.EnqueueRequest) *streamWaiter {
	if c.noStream || c.hc.Timeout != 0 || ctx.Err() != nil {
		return nil
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil
	}
	w := &streamWaiter{line: append(line, '\n'), done: make(chan streamResult, 1)}
	for range maxRetries {
		p := c.openPipe()
		if p == nil {
			return nil
		}
		if p.submit(w) {
			return w
		}
	}
	return nil
}
