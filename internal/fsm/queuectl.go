package fsm

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Queue controls. A queue can be paused (leases skip it; enqueues, acks and
// heartbeats go on), limited to Concurrency jobs in flight at once (across
// every worker, in-process and remote), and to RateLimit leases per
// RatePeriod. Lease enforces them with the command's own time, so every
// replica hands out the same jobs, and Runnable answers as Lease would, so
// that waiters do not propose leases that get nothing.
//
// The rate limit counts leases in fixed windows: the first lease of a
// rate-limited queue opens a window of RatePeriod; at most RateLimit leases
// are handed out in it; the first lease after it ended opens the next one.
// (Two windows back to back can hand out up to 2 × RateLimit in less than a
// period, as with any fixed window; the average stays under the limit.)
// Changing the limit or the period closes the current window.
//
// A queue's settings and its window are machine-level state, written into
// every snapshot and delta as the "queues" section; a queue without
// settings has no entry, and a state without any writes no section.

// Limits of queue settings.
const (
	MaxConcurrency = 1_000_000
	MaxRateLimit   = 1_000_000_000
	MinRatePeriod  = time.Millisecond
	MaxRatePeriod  = 7 * 24 * time.Hour
)

// sectionTagQueues is the tag of the queue settings section.
const sectionTagQueues = 1

// QueueFields names fields of QueueSettings that a SetQueue sets.
type QueueFields uint8

// The fields of QueueSettings, for QueueChange.Set.
const (
	SetPaused      QueueFields = 1 << iota // Paused
	SetConcurrency                         // Concurrency
	SetRate                                // RateLimit and RatePeriod, together

	AllQueueFields = SetPaused | SetConcurrency | SetRate
)

// QueueSettings are the controls of one queue. The zero value is a running
// queue without limits.
type QueueSettings struct {
	Paused bool
	// Concurrency is the most jobs of the queue in flight at once (0: no
	// limit).
	Concurrency int
	// RateLimit is the most leases per RatePeriod (ns); 0: no limit, and
	// then RatePeriod is 0.
	RateLimit  int
	RatePeriod int64
}

// QueueChange is what a SetQueue command does: the fields Set names take
// the values of Settings; the others keep theirs. Fields not named must be
// zero in Settings.
type QueueChange struct {
	Queue    string
	Set      QueueFields
	Settings QueueSettings
}

// ValidateQueueChange checks a change as Apply will, so that proposers can
// answer a precise error first.
func ValidateQueueChange(c *QueueChange) error {
	bad := func(field, msg string) error { return &InvalidError{Field: field, Msg: msg} }
	s := &c.Settings
	switch {
	case !ValidQueueName(c.Queue):
		return bad("queue", "must match [a-zA-Z0-9_.-]{1,128}")
	case c.Set == 0 || c.Set&^AllQueueFields != 0:
		return bad("settings", "name at least one of paused, concurrency and rate")
	case c.Set&SetPaused == 0 && s.Paused,
		c.Set&SetConcurrency == 0 && s.Concurrency != 0,
		c.Set&SetRate == 0 && (s.RateLimit != 0 || s.RatePeriod != 0):
		return bad("settings", "a field that is not set must be zero")
	case s.Concurrency < 0 || s.Concurrency > MaxConcurrency:
		return bad("concurrency", "must be between 0 (no limit) and 1000000")
	case s.RateLimit < 0 || s.RateLimit > MaxRateLimit:
		return bad("rate.limit", "must be between 0 (no limit) and 1000000000")
	case s.RateLimit == 0 && s.RatePeriod != 0:
		return bad("rate.period", "must not be given without a rate limit")
	case s.RateLimit > 0 && (s.RatePeriod < int64(MinRatePeriod) || s.RatePeriod > int64(MaxRatePeriod)):
		return bad("rate.period", "must be between 1ms and 168h")
	}
	return nil
}

// queueCtl is a queue's settings and its rate window. It is replaced, never
// changed in place, except for the window a Lease advances.
type queueCtl struct {
	QueueSettings
	winStart int64 // start of the current rate window
	winUsed  int   // leases in it; 0: no window open
}

// admits reports whether q may hand out a job at now.
func (q *queue) admits(now int64) bool {
	c := q.ctl
	switch {
	case c == nil:
		return true
	case c.Paused:
		return false
	case c.Concurrency > 0 && q.counts[StateInFlight] >= c.Concurrency:
		return false
	}
	return !c.rateFull(now)
}

// rateFull reports whether the rate window open at now has no lease left.
func (c *queueCtl) rateFull(now int64) bool {
	return c.RateLimit > 0 && c.winUsed >= c.RateLimit && now < c.winStart+c.RatePeriod
}

// leased counts one lease at now in the rate window.
func (c *queueCtl) leased(now int64) {
	if c.RateLimit == 0 {
		return
	}
	if c.winUsed == 0 || now >= c.winStart+c.RatePeriod {
		c.winStart, c.winUsed = now, 0
	}
	c.winUsed++
}

func (m *Machine) setQueue(c *Command) Result {
	ch := c.Queue
	if ch == nil {
		return Result{Err: &InvalidError{Field: "queue", Msg: "no queue change"}}
	}
	if err := ValidateQueueChange(ch); err != nil {
		return Result{Err: err}
	}
	q := m.queueFor(ch.Queue)
	var cur queueCtl
	if q.ctl != nil {
		cur = *q.ctl
	}
	next := cur
	s := ch.Settings
	if ch.Set&SetPaused != 0 {
		next.Paused = s.Paused
	}
	if ch.Set&SetConcurrency != 0 {
		next.Concurrency = s.Concurrency
	}
	if ch.Set&SetRate != 0 {
		next.RateLimit, next.RatePeriod = s.RateLimit, s.RatePeriod
		if next.RateLimit != cur.RateLimit || next.RatePeriod != cur.RatePeriod {
			next.winStart, next.winUsed = 0, 0
		}
	}
	if next.QueueSettings == (QueueSettings{}) {
		q.ctl = nil
	} else {
		q.ctl = &next
	}
	info := q.info()
	return Result{Queue: &info}
}

// QueueInfo describes one queue: its jobs by state, its settings and its
// rate window.
type QueueInfo struct {
	QueueCounts
	Settings QueueSettings
	// RateUsed is the leases counted in the rate window that began at
	// RateStart (both 0 when none was opened since the limit was set). The
	// window is over once RateStart + Settings.RatePeriod has passed.
	RateUsed  int
	RateStart int64
}

// RateResetAt is when the current rate window ends (0: none is open).
func (i QueueInfo) RateResetAt() int64 {
	if i.RateUsed == 0 {
		return 0
	}
	return i.RateStart + i.Settings.RatePeriod
}

// Blocked says why a lease of the queue gets no job at now although jobs
// may be pending: "paused", "concurrency" (its limit of jobs in flight is
// reached) or "rate" (its rate window is used up); "" when nothing holds it
// back.
func (i QueueInfo) Blocked(now int64) string {
	s := &i.Settings
	switch {
	case s.Paused:
		return "paused"
	case s.Concurrency > 0 && i.ByState[StateInFlight] >= s.Concurrency:
		return "concurrency"
	case s.RateLimit > 0 && i.RateUsed >= s.RateLimit && now < i.RateStart+s.RatePeriod:
		return "rate"
	}
	return ""
}

func (q *queue) info() QueueInfo {
	i := QueueInfo{QueueCounts: QueueCounts{Queue: q.name, ByState: q.counts}}
	if c := q.ctl; c != nil {
		i.Settings, i.RateUsed, i.RateStart = c.QueueSettings, c.winUsed, c.winStart
	}
	return i
}

// QueueInfos describes every queue that holds jobs or has settings, sorted
// by name.
func (m *Machine) QueueInfos() []QueueInfo {
	var out []QueueInfo
	for _, q := range m.queueList {
		if q.ctl == nil && q.counts == ([numStates]int{}) {
			continue
		}
		out = append(out, q.info())
	}
	return out
}

// QueueInfo describes the queue named name (a queue nobody used yet has no
// jobs and no settings).
func (m *Machine) QueueInfo(name string) QueueInfo {
	if q := m.queues[name]; q != nil {
		return q.info()
	}
	return QueueInfo{QueueCounts: QueueCounts{Queue: name}}
}

// RateReopens is the earliest time at which a rate window of a queue of
// these queues and types (empty: all) ends while that queue has pending
// jobs that only its rate limit holds back: a Lease then gets jobs again.
// ok is false when no rate limit holds back anything. Waiters for runnable
// work (package leasing) sleep until then.
func (m *Machine) RateReopens(queues, types []string) (at int64, ok bool) {
	for _, cl := range m.classesFor(queues, types) {
		q, c := cl.q, cl.q.ctl
		if c == nil || c.RateLimit == 0 || c.winUsed < c.RateLimit || c.Paused || cl.runnable.Len() == 0 ||
			(c.Concurrency > 0 && q.counts[StateInFlight] >= c.Concurrency) {
			continue
		}
		if end := c.winStart + c.RatePeriod; !ok || end < at {
			at, ok = end, true
		}
	}
	return at, ok
}

// Command encoding of a SetQueue: string queue | u8 fields set | u8 flags
// (bit 0 paused) | varint concurrency | varint rate_limit | varint
// rate_period.
func appendQueueChange(dst []byte, ch *QueueChange) []byte {
	if ch == nil {
		ch = &QueueChange{}
	}
	s := &ch.Settings
	dst = appendString(dst, ch.Queue)
	var flags byte
	if s.Paused {
		flags |= 1
	}
	dst = append(dst, byte(ch.Set), flags)
	dst = binary.AppendVarint(dst, int64(s.Concurrency))
	dst = binary.AppendVarint(dst, int64(s.RateLimit))
	return binary.AppendVarint(dst, s.RatePeriod)
}

func (d *decoder) queueChange() *QueueChange {
	ch := &QueueChange{Queue: d.string()}
	set, flags := d.byte(), d.byte()
	if d.err == nil && (QueueFields(set)&^AllQueueFields != 0 || flags&^1 != 0) {
		d.err = fmt.Errorf("%w: unknown queue change fields %#x or flags %#x", ErrCorrupt, set, flags)
	}
	ch.Set = QueueFields(set)
	ch.Settings.Paused = flags&1 != 0
	ch.Settings.Concurrency = d.int()
	ch.Settings.RateLimit = d.int()
	ch.Settings.RatePeriod = d.varint()
	return ch
}

func init() {
	registerSection(section{
		tag:    sectionTagQueues,
		name:   "queues",
		encode: encodeQueues,
		decode: decodeQueues,
	})
}

// The section body: uvarint n | n × (string queue | u8 flags (bit 0
// paused) | uvarint concurrency | uvarint rate_limit | varint rate_period |
// varint window_start | uvarint window_used), in name order.
func encodeQueues(m *Machine, dst []byte) []byte {
	n := 0
	for _, q := range m.queueList {
		if q.ctl != nil {
			n++
		}
	}
	if n == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for _, q := range m.queueList {
		c := q.ctl
		if c == nil {
			continue
		}
		dst = appendString(dst, q.name)
		var flags byte
		if c.Paused {
			flags |= 1
		}
		dst = append(dst, flags)
		dst = binary.AppendUvarint(dst, uint64(c.Concurrency))
		dst = binary.AppendUvarint(dst, uint64(c.RateLimit))
		dst = binary.AppendVarint(dst, c.RatePeriod)
		dst = binary.AppendVarint(dst, c.winStart)
		dst = binary.AppendUvarint(dst, uint64(c.winUsed))
	}
	return dst
}

type queueEntry struct {
	name string
	ctl  queueCtl
}

func decodeQueues(b []byte) (func(*Machine), error) {
	var entries []queueEntry
	if len(b) > 0 {
		d := decoder{b: b}
		n := d.count()
		if d.err == nil && n == 0 {
			return nil, fmt.Errorf("%w: an empty queues section", ErrCorrupt)
		}
		for i := 0; i < n && d.err == nil; i++ {
			e := queueEntry{name: d.string()}
			flags := d.byte()
			conc, limit := d.uvarint(), d.uvarint()
			e.ctl.RatePeriod, e.ctl.winStart = d.varint(), d.varint()
			used := d.uvarint()
			if d.err != nil {
				break
			}
			if !ValidQueueName(e.name) || (i > 0 && e.name <= entries[i-1].name) {
				return nil, fmt.Errorf("%w: queue settings of %q: bad name or out of order", ErrCorrupt, e.name)
			}
			if flags&^1 != 0 || conc > MaxConcurrency || limit > MaxRateLimit || used > limit {
				return nil, fmt.Errorf("%w: queue settings of %q out of range", ErrCorrupt, e.name)
			}
			e.ctl.Paused, e.ctl.Concurrency, e.ctl.RateLimit, e.ctl.winUsed = flags&1 != 0, int(conc), int(limit), int(used)
			ch := QueueChange{Queue: e.name, Set: AllQueueFields, Settings: e.ctl.QueueSettings}
			if err := ValidateQueueChange(&ch); err != nil || e.ctl.QueueSettings == (QueueSettings{}) ||
				(used == 0 && e.ctl.winStart != 0) {
				return nil, fmt.Errorf("%w: queue settings of %q: %v", ErrCorrupt, e.name, err)
			}
			entries = append(entries, e)
		}
		if d.err == nil && len(d.b) != 0 {
			d.err = fmt.Errorf("%w: %d trailing bytes after the queue settings", ErrCorrupt, len(d.b))
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	return func(m *Machine) {
		for _, q := range m.queueList {
			q.ctl = nil
		}
		for i := range entries {
			c := entries[i].ctl
			m.queueFor(entries[i].name).ctl = &c
		}
	}, nil
}
