package fsm

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Command encoding (the payload of a WAL record or a raft log entry):
//
//	u8 codec version (1) | u8 kind | varint now | kind-specific fields
//
// Integers are varints (zig-zag for signed values), strings are a uvarint
// length and the bytes. docs/wire-format.md has the field lists.
//
// Version 2 differs only in Enqueue: each job spec ends with a tagged list
// of extension fields (see extend.go) closed by tag 0. Commands are written
// as version 1 unless a job spec uses an extension field.
const (
	codecVersion   = 1
	codecVersionV2 = 2
)

// MaxDecodeItems bounds the counts a decoder believes (jobs in an Enqueue,
// acks, queues), so hostile input cannot make it allocate without limit.
const MaxDecodeItems = 1 << 20

// AppendCommand appends the encoding of c to dst.
func AppendCommand(dst []byte, c *Command) []byte {
	v2 := c.Kind == KindEnqueue && specsUseFields(c.Jobs)
	if c.Kind == KindEnqueue {
		dst = slices.Grow(dst, enqueueSizeHint(c.Jobs))
	}
	if v2 {
		dst = append(dst, codecVersionV2, byte(c.Kind))
	} else {
		dst = append(dst, codecVersion, byte(c.Kind))
	}
	dst = binary.AppendVarint(dst, c.Now)
	switch c.Kind {
	case KindEnqueue:
		dst = binary.AppendUvarint(dst, uint64(len(c.Jobs)))
		for i := range c.Jobs {
			s := &c.Jobs[i]
			dst = appendString(dst, s.Queue)
			dst = appendString(dst, s.Type)
			dst = appendString(dst, s.Payload)
			dst = binary.AppendVarint(dst, int64(s.Priority))
			dst = binary.AppendVarint(dst, s.RunAt)
			dst = binary.AppendVarint(dst, int64(s.MaxAttempts))
			dst = binary.AppendVarint(dst, s.Timeout)
			dst = appendString(dst, s.UniqueKey)
			if v2 {
				dst = appendSpecFields(dst, s)
			}
		}
	case KindLease:
		dst = binary.AppendUvarint(dst, uint64(len(c.Queues)))
		for _, q := range c.Queues {
			dst = appendString(dst, q)
		}
		dst = binary.AppendUvarint(dst, uint64(len(c.Types)))
		for _, t := range c.Types {
			dst = appendString(dst, t)
		}
		dst = binary.AppendVarint(dst, int64(c.Max))
		dst = appendString(dst, c.Worker)
		dst = binary.AppendVarint(dst, c.LeaseFor)
		dst = appendAcks(dst, c.Acks)
	case KindAck:
		dst = appendAcks(dst, c.Acks)
	case KindHeartbeat:
		dst = binary.AppendUvarint(dst, c.ID)
		dst = binary.AppendUvarint(dst, c.LeaseID)
		dst = binary.AppendVarint(dst, c.LeaseFor)
	case KindCancel, KindRetry:
		dst = binary.AppendUvarint(dst, c.ID)
	case KindTick:
		dst = binary.AppendVarint(dst, int64(c.Max))
	case KindPurge:
		dst = binary.AppendVarint(dst, int64(c.Max))
		dst = binary.AppendVarint(dst, c.Retention.Completed)
		dst = binary.AppendVarint(dst, c.Retention.Failed)
		dst = binary.AppendVarint(dst, c.Retention.Canceled)
	case KindRecover:
	case KindPeriodicPut, KindPeriodicDelete, KindPeriodicFire:
		dst = appendPeriodic(dst, c)
	case KindSetQueue:
		dst = appendQueueChange(dst, c.Queue)
	}
	return dst
}

// specOverhead is what enqueueSizeHint counts for a job spec beyond its
// strings: their four lengths and the four integers, of one to ten bytes
// each; most are one or two bytes, a timeout in ns five or six.
const specOverhead = 32

// enqueueSizeHint is about the size of the encoding of an Enqueue of
// specs, so that AppendCommand grows its buffer once for a batch rather
// than doubling it a dozen times, copying it each time. Extension fields
// are not counted: append grows for them if it must.
func enqueueSizeHint(specs []JobSpec) int {
	n := 2 + 2*binary.MaxVarintLen64 // version, kind, now, count
	for i := range specs {
		s := &specs[i]
		n += len(s.Queue) + len(s.Type) + len(s.Payload) + len(s.UniqueKey) + specOverhead
	}
	return n
}

// DecodeCommand decodes one command. The whole of b must be consumed. Errors
// wrap ErrCorrupt.
func DecodeCommand(b []byte) (Command, error) {
	return decodeCommand(b, nil)
}

// DecodeCommandReusing is DecodeCommand, taking the job specs of an
// Enqueue from the array of jobs when it has room for them, so that a replay
// of many commands allocates little. The command may then share that array:
// decode into it again only once the command is applied.
func DecodeCommandReusing(b []byte, jobs []JobSpec) (Command, error) {
	return decodeCommand(b, jobs)
}

// decodeCommand is DecodeCommand, taking the job specs from the array of
// jobs if it has room for them.
func decodeCommand(b []byte, jobs []JobSpec) (Command, error) {
	d := decoder{b: b}
	var c Command
	v := d.byte()
	if v != codecVersion && v != codecVersionV2 && d.err == nil {
		return c, fmt.Errorf("%w: command codec version %d, this build reads %d and %d", ErrCorrupt, v, codecVersion, codecVersionV2)
	}
	c.Kind = Kind(d.byte())
	if v == codecVersionV2 && c.Kind != KindEnqueue && d.err == nil {
		return c, fmt.Errorf("%w: %s command in codec version %d", ErrCorrupt, c.Kind, v)
	}
	c.Now = d.varint()
	switch c.Kind {
	case KindEnqueue:
		n := d.count()
		switch {
		case n > 0 && n <= cap(jobs):
			c.Jobs = jobs[:n]
			clear(c.Jobs)
		case n > 0:
			c.Jobs = make([]JobSpec, n)
		}
		var lastQueue, lastType string
		var payloads stringSlab // one allocation for many payloads
		for i := 0; i < n && d.err == nil; i++ {
			s := &c.Jobs[i]
			// the jobs of a batch mostly share queue and type: reuse the
			// previous string instead of allocating one per job
			s.Queue = d.sameString(lastQueue)
			s.Type = d.sameString(lastType)
			lastQueue, lastType = s.Queue, s.Type
			p := d.bytes()
			s.Payload = payloads.string(p, len(p)+len(d.b)) // no more than the rest of the command
			s.Priority = d.int32()
			s.RunAt = d.varint()
			s.MaxAttempts = d.int()
			s.Timeout = d.varint()
			s.UniqueKey = d.string()
			if v == codecVersionV2 {
				d.specFields(s)
			}
		}
	case KindLease:
		n := d.count()
		if n > 0 {
			c.Queues = make([]string, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			c.Queues[i] = d.string()
		}
		n = d.count()
		if n > 0 {
			c.Types = make([]string, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			c.Types[i] = d.string()
		}
		c.Max = d.int()
		c.Worker = d.string()
		c.LeaseFor = d.varint()
		c.Acks = d.acks()
	case KindAck:
		c.Acks = d.acks()
	case KindHeartbeat:
		c.ID = d.uvarint()
		c.LeaseID = d.uvarint()
		c.LeaseFor = d.varint()
	case KindCancel, KindRetry:
		c.ID = d.uvarint()
	case KindTick:
		c.Max = d.int()
	case KindPurge:
		c.Max = d.int()
		c.Retention.Completed = d.varint()
		c.Retention.Failed = d.varint()
		c.Retention.Canceled = d.varint()
	case KindRecover:
	case KindPeriodicPut, KindPeriodicDelete, KindPeriodicFire:
		c.Periodic = d.periodic(c.Kind)
	case KindSetQueue:
		c.Queue = d.queueChange()
	default:
		if d.err == nil {
			return c, fmt.Errorf("%w: unknown command kind %d", ErrCorrupt, c.Kind)
		}
	}
	if d.err != nil {
		return Command{}, d.err
	}
	if len(d.b) != 0 {
		return Command{}, fmt.Errorf("%w: %d trailing bytes after %s command", ErrCorrupt, len(d.b), c.Kind)
	}
	return c, nil
}

func appendAcks(dst []byte, acks []Ack) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(acks)))
	for i := range acks {
		a := &acks[i]
		dst = binary.AppendUvarint(dst, a.ID)
		dst = binary.AppendUvarint(dst, a.LeaseID)
		var flags byte
		if a.Fail {
			flags |= 1
		}
		if a.Final {
			flags |= 2
		}
		dst = append(dst, flags)
		if a.Fail {
			dst = appendString(dst, a.Error)
			dst = binary.AppendVarint(dst, a.RetryAt)
		} else {
			dst = appendString(dst, a.Result)
		}
	}
	return dst
}

func (d *decoder) acks() []Ack {
	n := d.count()
	if n == 0 {
		return nil
	}
	acks := make([]Ack, n)
	for i := 0; i < n && d.err == nil; i++ {
		a := &acks[i]
		a.ID = d.uvarint()
		a.LeaseID = d.uvarint()
		flags := d.byte()
		a.Fail, a.Final = flags&1 != 0, flags&2 != 0
		if flags&^3 != 0 && d.err == nil {
			d.err = fmt.Errorf("%w: unknown ack flags %#x", ErrCorrupt, flags)
		}
		if a.Fail {
			a.Error = d.string()
			a.RetryAt = d.varint()
		} else {
			a.Result = d.string()
		}
	}
	return acks
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads the primitives above from b, remembering the first error;
// after an error every read returns a zero value.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("int32")
		return 0
	}
	return int32(v)
}

func (d *decoder) int() int {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("int")
		return 0
	}
	return int(v)
}

func (d *decoder) count() int {
	v := d.uvarint()
	if v > MaxDecodeItems || v > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return int(v)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// sameString is string, returning prev itself when the bytes equal it.
func (d *decoder) sameString(prev string) string {
	b := d.bytes()
	if string(b) == prev {
		return prev
	}
	return string(b)
}
