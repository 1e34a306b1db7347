package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Snapshot body (version 1), the same bytes for our snapshot files and for
// raft's FSMSnapshot.Persist:
//
//	header  : magic "BVRFSM01" | u32 LE version | u32 LE flags (0)
//	meta    : uvarint length | now varint, nextID uvarint, nextLease uvarint,
//	          applied uvarint, jobs uvarint
//	jobs    : per job in id order: uvarint length | job record
//	trailer : magic "BVRFSMED" | u64 LE jobs | u32 LE CRC-32C of every byte
//	          before the trailer
//
// docs/wire-format.md lists the job record's fields.
const (
	snapMagic        = "BVRFSM01"
	snapTrailerMagic = "BVRFSMED"
	snapVersion      = 1
	// snapVersionV2 adds, after meta, a record of state sections (see
	// extend.go): uvarint length | tagged field list. A machine without
	// section state writes version 1, byte for byte as before.
	snapVersionV2 = 2
	maxRecordLen  = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a point-in-time capture of a Machine. Capturing is cheap; the
// encoding happens in WriteTo, which may run on another goroutine while the
// machine keeps applying commands.
type Snapshot struct {
	jobs      pageTable
	gen       uint32 // every page and job of jobs has a generation <= gen
	now       int64
	nextID    uint64
	nextLease uint64
	applied   uint64
	extras    []byte // encoded sections; empty: none
}

// Capture freezes the current state for a Snapshot. Call it where Apply may be
// called (under the owner's lock). After it returns, Apply copies a page or a
// job before changing one the snapshot holds.
func (m *Machine) Capture() *Snapshot {
	s := &Snapshot{
		jobs:      m.jobs.clone(),
		gen:       m.gen,
		now:       m.now,
		nextID:    m.nextID,
		nextLease: m.nextLease,
		applied:   m.applied,
		extras:    m.appendExtras(nil),
	}
	m.gen++
	return s
}

// Jobs is the number of jobs in the snapshot.
func (s *Snapshot) Jobs() int { return s.jobs.count }

// WriteTo streams the encoding to w. It is safe to call while the machine
// that made the snapshot applies commands.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	e := snapEncoder{w: w, crc: 0, buf: make([]byte, 0, 256<<10)}
	e.raw([]byte(snapMagic))
	if len(s.extras) > 0 {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, snapVersionV2)
	} else {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, snapVersion)
	}
	e.buf = binary.LittleEndian.AppendUint32(e.buf, 0)
	var meta []byte
	meta = binary.AppendVarint(meta, s.now)
	meta = binary.AppendUvarint(meta, s.nextID)
	meta = binary.AppendUvarint(meta, s.nextLease)
	meta = binary.AppendUvarint(meta, s.applied)
	meta = binary.AppendUvarint(meta, uint64(s.jobs.count))
	e.buf = binary.AppendUvarint(e.buf, uint64(len(meta)))
	e.buf = append(e.buf, meta...)
	if len(s.extras) > 0 {
		e.buf = binary.AppendUvarint(e.buf, uint64(len(s.extras)))
		e.buf = append(e.buf, s.extras...)
	}

	var rec []byte
	n := 0
	s.jobs.ascend(0, func(j *job) bool {
		rec = appendJob(rec[:0], j)
		e.buf = binary.AppendUvarint(e.buf, uint64(len(rec)))
		e.buf = append(e.buf, rec...)
		n++
		if len(e.buf) >= 192<<10 {
			e.flush()
		}
		return e.err == nil
	})
	if e.err == nil && n != s.jobs.count {
		e.err = fmt.Errorf("fsm: snapshot counted %d jobs but holds %d", s.jobs.count, n)
	}
	e.flush()
	if e.err != nil {
		return e.n, e.err
	}
	var tr [20]byte
	copy(tr[:], snapTrailerMagic)
	binary.LittleEndian.PutUint64(tr[8:], uint64(n))
	binary.LittleEndian.PutUint32(tr[16:], e.crc)
	k, err := w.Write(tr[:])
	e.n += int64(k)
	return e.n, err
}

type snapEncoder struct {
	w   io.Writer
	crc uint32
	buf []byte
	n   int64
	err error
}

func (e *snapEncoder) raw(b []byte) { e.buf = append(e.buf, b...) }

func (e *snapEncoder) flush() {
	if e.err != nil || len(e.buf) == 0 {
		return
	}
	e.crc = crc32.Update(e.crc, castagnoli, e.buf)
	k, err := e.w.Write(e.buf)
	e.n += int64(k)
	e.err = err
	e.buf = e.buf[:0]
}

const (
	jobHasExt = 1 << iota
	// jobHasFields: after the ext fields comes a tagged list of job fields
	// (extend.go) ended by tag 0. Set only with jobHasExt.
	jobHasFields
)

func appendJob(dst []byte, j *job) []byte {
	dst = binary.AppendUvarint(dst, j.id)
	dst = appendString(dst, j.cls.q.name)
	dst = appendString(dst, j.cls.typ)
	dst = appendString(dst, j.payload)
	dst = binary.AppendVarint(dst, int64(j.priority))
	dst = append(dst, byte(j.state))
	dst = binary.AppendUvarint(dst, uint64(j.attempt))
	dst = binary.AppendUvarint(dst, uint64(j.maxAttempts))
	dst = binary.AppendUvarint(dst, uint64(j.timeoutMs))
	dst = binary.AppendVarint(dst, j.runAt)
	dst = binary.AppendVarint(dst, j.createdAt)
	if j.ext == nil {
		return append(dst, 0)
	}
	x := j.ext
	flagAt := len(dst)
	dst = append(dst, jobHasExt)
	dst = appendString(dst, x.uniqueKey)
	dst = binary.AppendUvarint(dst, x.leaseID)
	dst = binary.AppendVarint(dst, x.leaseDeadline)
	dst = appendString(dst, x.worker)
	dst = binary.AppendVarint(dst, x.startedAt)
	dst = binary.AppendVarint(dst, x.finishedAt)
	dst = appendString(dst, x.lastError)
	dst = appendString(dst, x.result)
	if len(jobFields) > 0 {
		var any bool
		if dst, any = appendJobFields(dst, x); any {
			dst[flagAt] |= jobHasFields
		}
	}
	return dst
}

// Restore replaces the machine's state with the snapshot read from r. On error
// the machine is left empty-or-partial and must be restored again (from an
// older snapshot, say) or discarded; errors about the bytes wrap ErrCorrupt.
func (m *Machine) Restore(r io.Reader) error {
	return m.restoreWith(r, 0, restoreBatchJobs)
}

// restoreWith is Restore with workers goroutines decoding the jobs (0: as
// many as restoreWorkers says) in batches of batchJobs.
func (m *Machine) restoreWith(r io.Reader, workers, batchJobs int) error {
	m.reset()
	err := m.restore(r, workers, batchJobs)
	if err != nil {
		m.reset()
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: snapshot ends early: %v", ErrCorrupt, err)
		}
	}
	return err
}

func (m *Machine) restore(r io.Reader, workers, batchJobs int) error {
	rd := chunkReader{r: r, buf: make([]byte, 0, 1<<20)}
	head, err := rd.take(16)
	if err != nil {
		return err
	}
	if string(head[:8]) != snapMagic {
		return fmt.Errorf("%w: not a state machine snapshot (magic %q)", ErrCorrupt, head[:8])
	}
	version := binary.LittleEndian.Uint32(head[8:])
	if version != snapVersion && version != snapVersionV2 {
		return fmt.Errorf("%w: snapshot version %d, this build reads %d and %d", ErrCorrupt, version, snapVersion, snapVersionV2)
	}
	meta, err := rd.record()
	if err != nil {
		return err
	}
	d := decoder{b: meta}
	m.now = d.varint()
	m.nextID = d.uvarint()
	m.nextLease = d.uvarint()
	m.applied = d.uvarint()
	count := d.uvarint()
	if d.err != nil {
		return d.err
	}
	var extras []byte
	if version == snapVersionV2 {
		if extras, err = rd.record(); err != nil {
			return err
		}
		extras = append([]byte(nil), extras...) // rd reuses its buffer
		if len(extras) == 0 {
			return fmt.Errorf("%w: version %d snapshot without state sections", ErrCorrupt, version)
		}
	}
	install, err := decodeExtras(extras)
	if err != nil {
		return err
	}
	if workers == 0 {
		workers = restoreWorkers(count)
	}
	if err := m.restoreJobs(&rd, count, workers, batchJobs); err != nil {
		return err
	}
	crc := rd.sum()
	tr, err := rd.take(20)
	if err != nil {
		return err
	}
	if string(tr[:8]) != snapTrailerMagic {
		return fmt.Errorf("%w: snapshot trailer missing", ErrCorrupt)
	}
	if n := binary.LittleEndian.Uint64(tr[8:]); n != count {
		return fmt.Errorf("%w: trailer counts %d jobs, body %d", ErrCorrupt, n, count)
	}
	if want := binary.LittleEndian.Uint32(tr[16:]); want != crc {
		return fmt.Errorf("%w: snapshot checksum %08x, computed %08x", ErrCorrupt, want, crc)
	}
	if _, err := rd.take(1); err == nil {
		return fmt.Errorf("%w: bytes after the snapshot trailer", ErrCorrupt)
	}
	for _, f := range install {
		f(m)
	}
	return nil
}

// decodeJob decodes one job record, taking the job and its payload from
// jd's slabs.
func (jd *jobDecoder) decodeJob(rec []byte) (*job, error) {
	d := decoder{b: rec}
	j := jd.newJob()
	j.gen = jd.gen
	j.id = d.uvarint()
	qn := d.bytes()
	tn := d.bytes()
	if d.err == nil {
		// consecutive jobs mostly share a class: skip the map lookup (and
		// the key strings it would allocate) when this one does too
		if c := jd.last; c != nil && string(qn) == c.q.name && string(tn) == c.typ {
			j.cls = c
		} else {
			if !ValidQueueName(string(qn)) || !ValidTypeName(string(tn)) {
				return nil, fmt.Errorf("%w: job %d: bad queue or type name", ErrCorrupt, j.id)
			}
			j.cls = jd.classFor(string(qn), string(tn))
			jd.last = j.cls
		}
	}
	j.payload = jd.payload(d.bytes())
	j.priority = d.int32()
	j.state = State(d.byte())
	attempt := d.uvarint()
	maxAttempts := d.uvarint()
	timeout := d.uvarint()
	j.runAt = d.varint()
	j.createdAt = d.varint()
	flags := d.byte()
	if flags&jobHasExt != 0 {
		x := &jobExt{}
		x.uniqueKey = d.string()
		x.leaseID = d.uvarint()
		x.leaseDeadline = d.varint()
		x.worker = d.string()
		x.startedAt = d.varint()
		x.finishedAt = d.varint()
		x.lastError = d.string()
		x.result = d.string()
		if flags&jobHasFields != 0 {
			d.jobFields(x)
		}
		j.ext = x
	}
	switch {
	case d.err != nil:
		return nil, d.err
	case len(d.b) != 0:
		return nil, fmt.Errorf("%w: job %d: %d trailing bytes", ErrCorrupt, j.id, len(d.b))
	case j.state < StatePending || j.state >= State(numStates):
		return nil, fmt.Errorf("%w: job %d: bad state %d", ErrCorrupt, j.id, j.state)
	case attempt > MaxAttemptsLimit || maxAttempts == 0 || maxAttempts > MaxAttemptsLimit || timeout == 0 || timeout > uint64(MaxTimeout.Milliseconds()):
		return nil, fmt.Errorf("%w: job %d: attempts or timeout out of range", ErrCorrupt, j.id)
	case flags&^(jobHasExt|jobHasFields) != 0 || flags == jobHasFields:
		return nil, fmt.Errorf("%w: job %d: unknown flags %#x", ErrCorrupt, j.id, flags)
	case j.state == StateInFlight && (j.ext == nil || j.ext.leaseID == 0):
		return nil, fmt.Errorf("%w: job %d: in flight without a lease", ErrCorrupt, j.id)
	}
	if err := checkDeps(j); err != nil {
		return nil, err
	}
	j.attempt, j.maxAttempts, j.timeoutMs = uint16(attempt), uint16(maxAttempts), uint32(timeout)
	return j, nil
}

// chunkReader hands out byte ranges of a stream from a large buffer, and
// checksums everything it hands out.
type chunkReader struct {
	r    io.Reader
	buf  []byte // unread bytes are buf[off:]
	off  int
	crc  uint32
	done int // bytes of buf[:done] already checksummed
	eof  bool
}

// take returns the next n bytes; they stay valid until the next call.
func (c *chunkReader) take(n int) ([]byte, error) {
	if len(c.buf)-c.off < n {
		if err := c.fill(n); err != nil {
			return nil, err
		}
	}
	b := c.buf[c.off : c.off+n]
	c.off += n
	return b, nil
}

func (c *chunkReader) fill(n int) error {
	c.crc = crc32.Update(c.crc, castagnoli, c.buf[c.done:c.off])
	c.buf = c.buf[:copy(c.buf[:cap(c.buf)], c.buf[c.off:])]
	c.off, c.done = 0, 0
	for len(c.buf) < n {
		if c.eof {
			return io.ErrUnexpectedEOF
		}
		if len(c.buf) == cap(c.buf) {
			// grow step by step, so a corrupt length cannot make us
			// allocate far more than the stream holds
			nb := make([]byte, len(c.buf), min(n, 2*cap(c.buf)))
			copy(nb, c.buf)
			c.buf = nb
		}
		k, err := c.r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+k]
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// record reads a uvarint length and that many bytes.
func (c *chunkReader) record() ([]byte, error) {
	var n uint64
	for shift := uint(0); ; shift += 7 {
		b, err := c.take(1)
		if err != nil {
			return nil, err
		}
		if shift >= 63 {
			return nil, fmt.Errorf("%w: record length overflows", ErrCorrupt)
		}
		n |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			break
		}
	}
	if n > maxRecordLen {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrCorrupt, n)
	}
	return c.take(int(n))
}

// uvarint reads one uvarint.
func (c *chunkReader) uvarint() (uint64, error) {
	var n uint64
	for shift := uint(0); ; shift += 7 {
		b, err := c.take(1)
		if err != nil {
			return 0, err
		}
		if shift >= 63 && b[0] > 1 {
			return 0, fmt.Errorf("%w: uvarint overflows", ErrCorrupt)
		}
		n |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			return n, nil
		}
	}
}

// sum is the checksum of everything handed out so far.
func (c *chunkReader) sum() uint32 {
	c.crc = crc32.Update(c.crc, castagnoli, c.buf[c.done:c.off])
	c.done = c.off
	return c.crc
}

// Digest is a hash of the machine's whole state (its snapshot encoding). Two
// machines with equal digests hold equal jobs, clocks and counters.
func (m *Machine) Digest() [32]byte {
	h := sha256.New()
	if _, err := m.Capture().WriteTo(h); err != nil {
		panic(err) // sha256 writes do not fail
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
