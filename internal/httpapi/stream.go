package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// POST /v1/jobs/stream: a pipelined enqueue. The body is JSON Lines, each
// line one enqueue object as the body of POST /v1/jobs; the answer (200,
// application/x-ndjson) is one api.StreamAnswer per non-blank line, in the
// order of the lines, each written once its job is durable. Both go on at
// once (full duplex): a producer sends lines without waiting for answers.
//
// Three goroutines serve a stream, all ended and waited for before the
// handler returns:
//
//   - the reader (read) decodes lines into items and hands them over in
//     runs, whenever it is about to block on the body, so that a line
//     never waits for the next one;
//   - the batcher (batch) makes the items queued so far ONE group, one
//     fsm.KindEnqueue command of at most MaxBatch jobs, and proposes it
//     in a goroutine of its own; at most streamGroups groups are in flight,
//     so the lines that arrive meanwhile make the next group, and the log's
//     group commit merges the groups in flight;
//   - the handler's goroutine (the writer) waits for the groups in their
//     order and writes their answers, then frees their place in the
//     MaxStreamInFlight bound that holds the reader back.
//
// A group the machine refuses as a whole (a line depends on an unknown job)
// is proposed again one job at a time, so that each line gets its own
// answer. A system failure of Propose (a full disk, a lost leader) is the
// answer of every line of its group and of every line read after it, and
// ends the stream with a last answer without a line number; so does the idle
// bound (StreamIdle without a line). When the body breaks (the client went
// away, a torn last line) nothing more is proposed or answered.

// streamGroups is the number of group commands of one stream in flight.
const streamGroups = 4

// streamLineMargin is what a line may hold beyond MaxPayload (the other
// fields and whitespace).
const streamLineMargin = 64 << 10

// streamBuffer is the size of the stream reader's buffer.
const streamBuffer = 64 << 10

// streamHandOff is the number of decoded lines after which the reader hands
// its items to the batcher even when more of the body is buffered.
const streamHandOff = 256

// errStreamIdle ends a stream that sent no line for StreamIdle.
var errStreamIdle = errors.New("stream idle")

// errStreamEnded ends the reading of a stream whose request's context
// ended (the server shuts down, or the client went away).
var errStreamEnded = errors.New("the request ended")

// streamItem is one non-blank line of a stream: its job, or why it was
// refused, and once proposed its result.
type streamItem struct {
	line int
	spec fsm.JobSpec
	err  *httpError
	res  fsm.EnqueueResult
}

// streamGroup is the items of one proposal. done is closed once every item
// has its result or error.
type streamGroup struct {
	items []streamItem
	done  chan struct{}
	fatal bool // a system failure: nothing after this group was proposed
}

// stream is the state of one POST /v1/jobs/stream.
type stream struct {
	a      *API
	rep    replica.Replica
	rc     *http.ResponseController
	ctx    context.Context // ends when the stream is given up
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	queue   [][]streamItem // read, not yet in a group: the reader's runs, in order
	eof     bool           // the reader is done: queue is all there is
	readErr error          // why the reader stopped: nil (EOF), errStreamIdle, a broken body
	fatal   *httpError     // a system failure: propose nothing more
	more    chan struct{}  // (1) the queue grew or eof was set

	stopped    atomic.Bool   // fatal is set: the reader stops
	unanswered atomic.Int64  // lines read and not yet answered
	room       chan struct{} // (1) the writer answered lines

	groups chan *streamGroup // batcher → writer, in line order
	slots  chan struct{}     // groups not yet done
	wg     sync.WaitGroup    // reader, batcher, proposals
}

func (a *API) enqueueStream(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	rc := http.NewResponseController(w)
	// HTTP/1.1 answers while the body is still being read only with full
	// duplex; HTTP/2 always does (ErrNotSupported there).
	rc.EnableFullDuplex()
	// The stream's own context ends when the stream is given up (the body
	// broke, a write failed). The request's context ending (the server
	// shuts down, the client went away) interrupts the reader: what was
	// read is still proposed, and answered if the client is still there.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	defer cancel(nil)
	stop := context.AfterFunc(r.Context(), func() { rc.SetReadDeadline(time.Now()) })
	defer stop()
	s := &stream{
		a: a, rep: rep, rc: rc, ctx: ctx, cancel: cancel,
		more:   make(chan struct{}, 1),
		room:   make(chan struct{}, 1),
		groups: make(chan *streamGroup, streamGroups),
		slots:  make(chan struct{}, streamGroups),
	}
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		// The 200 below would tell the client not to send the body: it is
		// waiting for this (a refusal before here answers at once).
		w.WriteHeader(http.StatusContinue)
	}
	w.Header().Set("Content-Type", api.ContentTypeNDJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc.Flush() // the client may wait for the headers before it sends
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.read(r.Context(), r.Body) }()
	go func() { defer s.wg.Done(); s.batch() }()
	s.write(w)
	// Stop a reader that is blocked on the body (the writer gave up, or
	// the stream failed), then wait for everything the stream started.
	cancel(nil)
	rc.SetReadDeadline(time.Now())
	s.wg.Wait()
	return nil
}

// read is the reader goroutine: it decodes lines until the body ends, the
// stream is given up or fails.
func (s *stream) read(reqCtx context.Context, body io.Reader) {
	var pending []streamItem
	handOff := func() {
		if len(pending) == 0 {
			return
		}
		// The run itself goes to the batcher, not a copy; the next one
		// gets an array of its own, of about the size of this one.
		s.mu.Lock()
		s.queue = append(s.queue, pending)
		s.mu.Unlock()
		pending = make([]streamItem, 0, min(streamHandOff, 2*len(pending)))
		signal(s.more)
	}
	var err error
	defer func() {
		handOff()
		s.mu.Lock()
		s.eof, s.readErr = true, err
		s.mu.Unlock()
		signal(s.more)
	}()
	src := &streamSource{ctx: reqCtx, r: body, rc: s.rc, idle: s.a.o.StreamIdle, before: handOff}
	br := bufio.NewReaderSize(src, streamBuffer)
	limit := int(s.a.o.MaxPayload) + streamLineMargin
	max := int64(s.a.o.MaxStreamInFlight)
	var scratch []byte
	var strs strCache // the lines' queue, type and durations, mostly alike
	for n := 1; ; n++ {
		for s.unanswered.Load() >= max {
			handOff()
			select {
			case <-s.room:
			case <-s.ctx.Done():
				return
			}
		}
		var line []byte
		var tooLong bool
		line, tooLong, err = readLine(br, limit, &scratch)
		if s.stopped.Load() {
			err = nil // the stream failed: what was read is answered
			return
		}
		if err != nil && err != io.EOF {
			// A torn line: never proposed.
			switch {
			case err == errStreamEnded:
				// the request's context ended: answer what was read
			case errors.Is(err, os.ErrDeadlineExceeded) && src.idleOver():
				err = errStreamIdle
			default:
				s.cancel(err) // the body broke: the client went away
			}
			return
		}
		if tooLong || len(bytes.TrimSpace(line)) > 0 {
			it := streamItem{line: n}
			if tooLong {
				it.err = tooLargef("line %d: longer than the limit of %d bytes (max_payload plus %d)", n, limit, streamLineMargin)
			} else {
				it.spec, it.err = s.a.streamLine(line, n, &strs)
			}
			s.unanswered.Add(1)
			pending = append(pending, it)
			if len(pending) >= streamHandOff {
				handOff()
			}
		}
		if err == io.EOF {
			err = nil
			return
		}
	}
}

// streamLine decodes line n of a stream into a job through the one builder.
// c is the reader's.
func (a *API) streamLine(line []byte, n int, c *strCache) (fsm.JobSpec, *httpError) {
	spec, err := a.decodeStreamLine(line, c)
	if err != nil {
		he := asHTTPError(err)
		he.msg = "line " + strconv.Itoa(n) + ": " + he.msg
		return fsm.JobSpec{}, he
	}
	return spec, nil
}

func (a *API) decodeStreamLine(line []byte, c *strCache) (fsm.JobSpec, error) {
	if off := invalidUTF8(line); off >= 0 {
		return fsm.JobSpec{}, invalidf("invalid UTF-8 at byte %d: JSON text must be UTF-8", off)
	}
	if req, ok := fastDecodeEnqueue(line, c); ok {
		return a.lineSpec(&req)
	}
	// A variable of its own: decodeStrict makes it escape, and the fast
	// path's would be allocated for every line otherwise.
	req := new(enqueueWire)
	if err := decodeStrict(line, req, ""); err != nil {
		return fsm.JobSpec{}, err
	}
	return a.lineSpec(req)
}

// lineSpec builds the job of a decoded line.
func (a *API) lineSpec(req *enqueueWire) (fsm.JobSpec, error) {
	if len(req.DependsOnIndex) > 0 {
		return fsm.JobSpec{}, invalidf("depends_on_index names jobs of the same batch and has no meaning on a stream: send the jobs as one batch (POST /v1/jobs/batch), or name existing jobs by id with depends_on")
	}
	return a.spec(req, a.clock(), "", 0)
}

// asHTTPError returns err as an *httpError (a copy), a 500 if it is none.
func asHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		c := *he
		return &c
	}
	return &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "internal error: " + err.Error(), err: err}
}

// readLine reads one line of br, without its newline. A line longer than
// limit is read to its end and dropped: tooLong is set and line is nil.
// err is io.EOF with the last line of a body that does not end with a
// newline (line holds it), and any other error with a torn line. line is
// valid until the next call.
func readLine(br *bufio.Reader, limit int, scratch *[]byte) (line []byte, tooLong bool, err error) {
	b, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		if len(b) > limit {
			return nil, true, err
		}
		return trimNewline(b), false, err
	}
	acc := append((*scratch)[:0], b...)
	for err == bufio.ErrBufferFull {
		b, err = br.ReadSlice('\n')
		if !tooLong {
			if len(acc)+len(b) > limit {
				tooLong, acc = true, acc[:0]
			} else {
				acc = append(acc, b...)
			}
		}
	}
	if cap(acc) <= 4*streamBuffer {
		*scratch = acc[:0] // keep a modest buffer for the next long line
	}
	if tooLong {
		return nil, true, err
	}
	return trimNewline(acc), false, err
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// streamSource is the body of a stream as the reader's bufio.Reader sees
// it: before each read of the body, which may block, it hands the decoded
// lines over (before) and sets the read deadline to the idle bound.
type streamSource struct {
	ctx      context.Context // the request's
	r        io.Reader
	rc       *http.ResponseController
	idle     time.Duration
	before   func()
	deadline time.Time
}

func (s *streamSource) Read(p []byte) (int, error) {
	s.before()
	s.deadline = time.Now().Add(s.idle)
	s.rc.SetReadDeadline(s.deadline) // ErrNotSupported by recorders: no deadline
	// After the deadline is set: the request's context ending later sets
	// the deadline to now, which interrupts the read.
	if s.ctx.Err() != nil {
		return 0, errStreamEnded
	}
	n, err := s.r.Read(p)
	if err != nil && s.ctx.Err() != nil && !errors.Is(err, io.EOF) && !s.idleOver() {
		err = errStreamEnded
	}
	return n, err
}

// idleOver reports whether the idle bound of the last read has passed.
func (s *streamSource) idleOver() bool { return !time.Now().Before(s.deadline) }

// batch is the batcher goroutine: it makes groups of the queued items, in
// order, and proposes them; it closes s.groups when the reader is done and
// every item is in a group, or when the stream is given up.
func (s *stream) batch() {
	defer close(s.groups)
	maxBatch := s.a.o.MaxBatch
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		var items []streamItem
		var fatal *httpError
		for {
			s.mu.Lock()
			runs := s.takeRuns(maxBatch)
			fatal = s.fatal
			eof := s.eof
			s.mu.Unlock()
			if len(runs) > 0 {
				items = joinRuns(runs)
				break
			}
			if eof {
				<-s.slots
				return
			}
			select {
			case <-s.more:
			case <-s.ctx.Done():
				<-s.slots
				return
			}
		}
		g := &streamGroup{items: items, done: make(chan struct{})}
		select {
		case s.groups <- g:
		case <-s.ctx.Done():
			<-s.slots
			return
		}
		if fatal != nil {
			// The stream failed: what was read after the failure is
			// answered with it, and not proposed.
			for i := range g.items {
				if g.items[i].err == nil {
					g.items[i].err = lineError(fatal, g.items[i].line)
				}
			}
			g.fatal = true
			close(g.done)
			<-s.slots
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.propose(g)
			close(g.done)
			<-s.slots
		}()
	}
}

// takeRuns takes the runs of the first (at most) max items of s.queue,
// splitting a run if need be. s.mu is held.
func (s *stream) takeRuns(max int) [][]streamItem {
	var runs [][]streamItem
	n := 0
	for len(s.queue) > 0 && n < max {
		run := s.queue[0]
		if k := max - n; len(run) > k {
			runs = append(runs, run[:k:k])
			s.queue[0] = run[k:]
			n += k
			break
		}
		runs = append(runs, run)
		s.queue[0] = nil
		s.queue = s.queue[1:]
		n += len(run)
	}
	if len(s.queue) == 0 {
		s.queue = nil // the reader appends to a new array
	}
	return runs
}

// joinRuns returns the items of runs as one slice: the run itself if
// there is one, else a copy.
func joinRuns(runs [][]streamItem) []streamItem {
	if len(runs) == 1 {
		return runs[0]
	}
	n := 0
	for _, r := range runs {
		n += len(r)
	}
	items := make([]streamItem, 0, n)
	for _, r := range runs {
		items = append(items, r...)
	}
	return items
}

// lineError is err as the answer of line n.
func lineError(err *httpError, n int) *httpError {
	c := *err
	c.msg = "line " + strconv.Itoa(n) + ": " + c.msg
	return &c
}

// propose proposes the jobs of g as one command; if the machine refuses
// it, one job at a time.
func (s *stream) propose(g *streamGroup) {
	idx := make([]int, 0, len(g.items))
	for i := range g.items {
		if g.items[i].err == nil {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	if err := s.a.checkDepth(s.rep, len(idx)); err != nil {
		he := asHTTPError(err)
		for _, i := range idx {
			g.items[i].err = lineError(he, g.items[i].line)
		}
		return
	}
	specs := make([]fsm.JobSpec, len(idx))
	for k, i := range idx {
		specs[k] = g.items[i].spec
	}
	res, err := s.a.propose(s.ctx, s.rep, &fsm.Command{Kind: fsm.KindEnqueue, Now: s.a.clock().UnixNano(), Jobs: specs})
	if err != nil {
		s.fail(g, idx, err)
		return
	}
	if res.Err == nil {
		for k, i := range idx {
			g.items[i].res = res.Enqueued[k]
		}
		return
	}
	if len(idx) == 1 {
		g.items[idx[0]].err = lineError(rejection(res.Err, "", 0, 0, nil), g.items[idx[0]].line)
		return
	}
	// All or none: find which lines the machine refuses, one by one.
	for k, i := range idx {
		res, err := s.a.propose(s.ctx, s.rep, &fsm.Command{Kind: fsm.KindEnqueue, Now: s.a.clock().UnixNano(), Jobs: specs[k : k+1]})
		if err != nil {
			s.fail(g, idx[k:], err)
			return
		}
		if res.Err != nil {
			g.items[i].err = lineError(rejection(res.Err, "", 0, 0, nil), g.items[i].line)
			continue
		}
		g.items[i].res = res.Enqueued[0]
	}
}

// fail records a system failure of Propose: the items idx of g get it as
// their answer, nothing more is proposed and the reader is stopped.
func (s *stream) fail(g *streamGroup, idx []int, err error) {
	he := asHTTPError(err)
	for _, i := range idx {
		g.items[i].err = lineError(he, g.items[i].line)
	}
	g.fatal = true
	s.mu.Lock()
	if s.fatal == nil {
		s.fatal = he
	}
	s.mu.Unlock()
	s.stopped.Store(true)
	s.rc.SetReadDeadline(time.Now()) // interrupt a reader blocked on the body
}

// write is the writer: it answers the groups in order until the batcher
// closes s.groups, then ends the stream with its last answer if it failed
// or was idle. It gives up (cancels the stream) when a write fails.
func (s *stream) write(w http.ResponseWriter) {
	var buf []byte
	var fatal *httpError
	for g := range s.groups {
		select {
		case <-g.done:
		case <-s.ctx.Done():
			return
		}
		buf = buf[:0]
		for i := range g.items {
			buf = appendAnswer(buf, &g.items[i])
		}
		if g.fatal && fatal == nil {
			s.mu.Lock()
			fatal = s.fatal
			s.mu.Unlock()
		}
		if !s.send(w, buf, len(s.groups) == 0) {
			return
		}
		s.unanswered.Add(-int64(len(g.items)))
		signal(s.room)
	}
	if s.ctx.Err() != nil {
		return // the body broke: no last answer
	}
	s.mu.Lock()
	readErr := s.readErr
	if fatal == nil {
		fatal = s.fatal
	}
	s.mu.Unlock()
	var last *httpError
	switch {
	case fatal != nil:
		c := *fatal
		c.msg = "the stream ends: no line after the last answer was written: " + fatal.msg
		last = &c
	case readErr == errStreamIdle:
		last = &httpError{code: codeRequestTimeout,
			msg: "no line arrived for " + s.a.o.StreamIdle.String() + ": the stream ends; every line sent was answered"}
	case readErr == errStreamEnded:
		last = &httpError{code: api.CodeUnavailable,
			msg: "the stream ends (the server is shutting down): no line after the last answer was read or written"}
	default:
		return
	}
	s.send(w, appendError(nil, last, 0), true)
}

// send writes b (and flushes if flush), within StreamIdle.
func (s *stream) send(w http.ResponseWriter, b []byte, flush bool) bool {
	s.rc.SetWriteDeadline(time.Now().Add(s.a.o.StreamIdle))
	if _, err := w.Write(b); err != nil {
		s.cancel(err)
		return false
	}
	if flush {
		if err := s.rc.Flush(); err != nil {
			s.cancel(err)
			return false
		}
	}
	return true
}

// appendAnswer appends the answer line of it to b.
func appendAnswer(b []byte, it *streamItem) []byte {
	if it.err != nil {
		return appendError(b, it.err, it.line)
	}
	b = append(b, `{"id":"`...)
	b = strconv.AppendUint(b, it.res.ID, 10)
	b = append(b, `","state":"`...)
	b = append(b, it.res.State.String()...)
	if it.res.Duplicate {
		b = append(b, `","duplicate":true}`...)
	} else {
		b = append(b, `","duplicate":false}`...)
	}
	return append(b, '\n')
}

// appendError appends the error answer of line n (0: the end of the stream).
func appendError(b []byte, he *httpError, n int) []byte {
	enc, err := json.Marshal(api.StreamAnswer{Error: &api.StreamError{ErrorBody: api.ErrorBody{Code: he.code, Message: clip(he.msg)}, Line: n}})
	if err != nil {
		enc = []byte(`{"error":{"code":"internal","message":"encode answer"}}`) // not reached: our own types encode
	}
	b = append(b, enc...)
	return append(b, '\n')
}

// signal wakes the receiver of ch (capacity 1) without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
