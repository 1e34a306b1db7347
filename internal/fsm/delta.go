package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Delta body (version 1): the pages of jobs that changed since a Mark, plus
// what a restore needs to rebuild everything else from them:
//
//	header  : magic "BVRFSMD1" | u32 LE version | u32 LE flags (0)
//	meta    : uvarint length | now varint, nextID uvarint, nextLease uvarint,
//	          applied uvarint, jobs uvarint (in the whole state),
//	          parentApplied uvarint (applied of the state the delta follows),
//	          dirBase uvarint (page number of the first directory slot),
//	          dirLen uvarint (directory slots), pages uvarint (in the delta)
//	present : uvarint length | ceil(dirLen/8) bytes, bit i (LSB first) set
//	          when directory slot i holds a page
//	pages   : per page in page-number order: uvarint page number |
//	          uvarint (jobs << 1 | sparse) | if sparse: 512-byte slot map,
//	          bit s (LSB first) set when slot s holds a job |
//	          per job in id order: uvarint length | job record
//	trailer : magic "BVRFSMDE" | u64 LE jobs written | u32 LE CRC-32C of every
//	          byte before the trailer
//
// A whole page in the delta replaces the parent's page (jobs absent from it
// were purged); a sparse page holds the jobs changed since the parent, and
// its slot map says which of the parent's other jobs remain (the page is
// written sparse when fewer than a quarter of its jobs changed); a present
// slot whose page is not in the delta keeps the parent's page; a slot without the present bit, or outside
// [dirBase, dirBase+dirLen), holds no job. The indexes are rebuilt from the
// jobs, as by Restore. docs/wire-format-snapshot.md shows how deltas chain.
const (
	deltaMagic        = "BVRFSMD1"
	deltaTrailerMagic = "BVRFSMDE"
	deltaVersion      = 1
	// deltaVersionV2 adds, after meta, a record of state sections (see
	// extend.go), written whole: uvarint length | tagged field list. A
	// machine without section state writes version 1.
	deltaVersionV2 = 2
)

// Mark names a state a delta can later be taken against: the state of a
// Snapshot when it was captured, or of a Machine when Mark was called (just
// after a restore, say). The zero Mark names no state.
type Mark struct {
	gen     uint32
	applied uint64
	ok      bool
}

// Valid reports whether k names a state.
func (k Mark) Valid() bool { return k.ok }

// Mark names the state as captured, for WriteDeltaTo of a later snapshot.
func (s *Snapshot) Mark() Mark { return Mark{gen: s.gen, applied: s.applied, ok: true} }

// Mark names the machine's current state (typically just restored) for a
// later snapshot's WriteDeltaTo. Like Capture it starts a new copy-on-write
// generation, so that every page changed after it is told apart. Call it
// where Apply may be called.
func (m *Machine) Mark() Mark {
	k := Mark{gen: m.gen, applied: m.applied, ok: true}
	m.gen++
	return k
}

// DirtyPages is the number of pages of s changed since k (what
// WriteDeltaTo(w, k) writes), and the pages of s in all.
func (s *Snapshot) DirtyPages(k Mark) (dirty, pages int) {
	for _, p := range s.jobs.pages {
		if p == nil {
			continue
		}
		pages++
		if !k.ok || p.gen > k.gen {
			dirty++
		}
	}
	return dirty, pages
}

// WriteDeltaTo streams the delta from the state k names to s. k must name
// a state of the same machine at or before s (a Mark of an earlier Snapshot
// or an earlier Machine.Mark); restoring it with ApplyDelta onto that state
// gives exactly s. With a zero k every page is written (the delta then
// applies onto any state with the same applied count, but a full snapshot
// is what to write instead). Like WriteTo it is safe to call while the
// machine applies commands.
func (s *Snapshot) WriteDeltaTo(w io.Writer, k Mark) (int64, error) {
	t := &s.jobs
	dirty := func(p *page) bool { return p != nil && (!k.ok || p.gen > k.gen) }
	npages := 0
	present := make([]byte, (len(t.pages)+7)/8)
	for i, p := range t.pages {
		if p != nil {
			present[i/8] |= 1 << (i % 8)
		}
		if dirty(p) {
			npages++
		}
	}
	e := snapEncoder{w: w, buf: make([]byte, 0, 256<<10)}
	e.raw([]byte(deltaMagic))
	if len(s.extras) > 0 {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, deltaVersionV2)
	} else {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, deltaVersion)
	}
	e.buf = binary.LittleEndian.AppendUint32(e.buf, 0)
	var meta []byte
	meta = binary.AppendVarint(meta, s.now)
	meta = binary.AppendUvarint(meta, s.nextID)
	meta = binary.AppendUvarint(meta, s.nextLease)
	meta = binary.AppendUvarint(meta, s.applied)
	meta = binary.AppendUvarint(meta, uint64(t.count))
	meta = binary.AppendUvarint(meta, k.applied)
	meta = binary.AppendUvarint(meta, t.base)
	meta = binary.AppendUvarint(meta, uint64(len(t.pages)))
	meta = binary.AppendUvarint(meta, uint64(npages))
	e.buf = binary.AppendUvarint(e.buf, uint64(len(meta)))
	e.buf = append(e.buf, meta...)
	if len(s.extras) > 0 {
		e.buf = binary.AppendUvarint(e.buf, uint64(len(s.extras)))
		e.buf = append(e.buf, s.extras...)
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(len(present)))
	e.buf = append(e.buf, present...)

	var rec []byte
	n := 0
	for i, p := range t.pages {
		if !dirty(p) {
			continue
		}
		pn := t.base + uint64(i)
		// A page of which few jobs changed is written sparse: which slots
		// hold a job now, and the changed jobs only.
		changed := 0
		if k.ok {
			for _, j := range p.slots {
				if j != nil && j.gen > k.gen {
					changed++
				}
			}
		}
		sparse := k.ok && p.gen > k.gen && changed*sparseFactor < int(p.live)
		cnt := int(p.live)
		if sparse {
			cnt = changed
		}
		e.buf = binary.AppendUvarint(e.buf, pn)
		flag := uint64(0)
		if sparse {
			flag = 1
		}
		e.buf = binary.AppendUvarint(e.buf, uint64(cnt)<<1|flag)
		if sparse {
			var bm [pageSize / 8]byte
			for si, j := range p.slots {
				if j != nil {
					bm[si/8] |= 1 << (si % 8)
				}
			}
			e.buf = append(e.buf, bm[:]...)
		}
		wrote := 0
		for _, j := range p.slots {
			if j == nil || (sparse && j.gen <= k.gen) {
				continue
			}
			rec = appendJob(rec[:0], j)
			e.buf = binary.AppendUvarint(e.buf, uint64(len(rec)))
			e.buf = append(e.buf, rec...)
			wrote++
			if len(e.buf) >= 192<<10 {
				e.flush()
			}
		}
		if e.err == nil && wrote != cnt {
			e.err = fmt.Errorf("fsm: delta page %d counted %d jobs but holds %d", pn, cnt, wrote)
		}
		n += wrote
		if e.err != nil {
			break
		}
	}
	e.flush()
	if e.err != nil {
		return e.n, e.err
	}
	var tr [20]byte
	copy(tr[:], deltaTrailerMagic)
	binary.LittleEndian.PutUint64(tr[8:], uint64(n))
	binary.LittleEndian.PutUint32(tr[16:], e.crc)
	kn, err := w.Write(tr[:])
	e.n += int64(kn)
	return e.n, err
}

// sparseFactor: a dirty page is written sparse when fewer than 1 in
// sparseFactor of its jobs changed (the 512-byte slot map then costs less
// than the jobs it saves).
const sparseFactor = 4

// Delta is a decoded delta, checked but not yet applied. See ReadDelta.
type Delta struct {
	now                    int64
	nextID, nextLease      uint64
	applied, parentApplied uint64
	jobs                   uint64
	dirBase                uint64
	dirLen                 int
	present                []byte
	pages                  []deltaPage      // by page number
	written                int              // jobs in pages
	install                []func(*Machine) // the state sections, whole
}

// deltaPage is one page of a delta: whole (p), or sparse (live says which
// slots hold a job, p holds the changed ones; the others are the parent's).
type deltaPage struct {
	pn     uint64
	p      *page
	sparse bool
	live   *[pageSize / 8]byte
}

func (dp *deltaPage) liveAt(slot int) bool { return dp.live[slot/8]&(1<<(slot%8)) != 0 }

// Applied is the applied count of the state the delta leads to.
func (d *Delta) Applied() uint64 { return d.applied }

// ParentApplied is the applied count of the state the delta follows.
func (d *Delta) ParentApplied() uint64 { return d.parentApplied }

// Pages is the number of pages the delta carries.
func (d *Delta) Pages() int { return len(d.pages) }

func (d *Delta) presentAt(i int) bool { return d.present[i/8]&(1<<(i%8)) != 0 }

// ReadDelta decodes a delta written by WriteDeltaTo and checks its
// encoding, its checksum and every job in it, without changing the
// machine's state (it may intern queue and type names the delta uses).
// Apply it with ApplyDelta. Errors about the bytes wrap ErrCorrupt.
func (m *Machine) ReadDelta(r io.Reader) (*Delta, error) {
	d, err := m.readDelta(r)
	if err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
		err = fmt.Errorf("%w: delta ends early: %v", ErrCorrupt, err)
	}
	return d, err
}

func (m *Machine) readDelta(r io.Reader) (*Delta, error) {
	rd := chunkReader{r: r, buf: make([]byte, 0, 256<<10)}
	head, err := rd.take(16)
	if err != nil {
		return nil, err
	}
	if string(head[:8]) != deltaMagic {
		return nil, fmt.Errorf("%w: not a state machine delta (magic %q)", ErrCorrupt, head[:8])
	}
	version := binary.LittleEndian.Uint32(head[8:])
	if version != deltaVersion && version != deltaVersionV2 {
		return nil, fmt.Errorf("%w: delta version %d, this build reads %d and %d", ErrCorrupt, version, deltaVersion, deltaVersionV2)
	}
	if f := binary.LittleEndian.Uint32(head[12:]); f != 0 {
		return nil, fmt.Errorf("%w: delta flags %#x", ErrCorrupt, f)
	}
	meta, err := rd.record()
	if err != nil {
		return nil, err
	}
	md := decoder{b: meta}
	d := &Delta{}
	d.now = md.varint()
	d.nextID = md.uvarint()
	d.nextLease = md.uvarint()
	d.applied = md.uvarint()
	d.jobs = md.uvarint()
	d.parentApplied = md.uvarint()
	d.dirBase = md.uvarint()
	dirLen := md.uvarint()
	npages := md.uvarint()
	switch {
	case md.err != nil:
		return nil, md.err
	case len(md.b) != 0:
		return nil, fmt.Errorf("%w: %d trailing bytes in delta meta", ErrCorrupt, len(md.b))
	case d.nextID == 0 || d.nextLease == 0:
		return nil, fmt.Errorf("%w: delta next id %d, next lease %d", ErrCorrupt, d.nextID, d.nextLease)
	case dirLen > (d.nextID>>pageBits)+1 || d.dirBase > d.nextID>>pageBits || d.dirBase+dirLen > (d.nextID>>pageBits)+1:
		return nil, fmt.Errorf("%w: delta directory [%d, +%d) beyond next id %d", ErrCorrupt, d.dirBase, dirLen, d.nextID)
	case npages > dirLen || d.jobs > dirLen*pageSize:
		return nil, fmt.Errorf("%w: delta of %d pages, %d jobs for %d directory slots", ErrCorrupt, npages, d.jobs, dirLen)
	case d.applied < d.parentApplied:
		return nil, fmt.Errorf("%w: delta applied %d before its parent's %d", ErrCorrupt, d.applied, d.parentApplied)
	}
	d.dirLen = int(dirLen)
	var extras []byte
	if version == deltaVersionV2 {
		if extras, err = rd.record(); err != nil {
			return nil, err
		}
		extras = append([]byte(nil), extras...) // rd reuses its buffer
		if len(extras) == 0 {
			return nil, fmt.Errorf("%w: version %d delta without state sections", ErrCorrupt, version)
		}
	}
	if d.install, err = decodeExtras(extras); err != nil {
		return nil, err
	}
	present, err := rd.record()
	if err != nil {
		return nil, err
	}
	if len(present) != (d.dirLen+7)/8 {
		return nil, fmt.Errorf("%w: delta presence map of %d bytes for %d slots", ErrCorrupt, len(present), d.dirLen)
	}
	if d.dirLen%8 != 0 && present[len(present)-1]>>(d.dirLen%8) != 0 {
		return nil, fmt.Errorf("%w: delta presence map marks slots beyond the directory", ErrCorrupt)
	}
	d.present = append([]byte(nil), present...)
	d.pages = make([]deltaPage, 0, npages)
	jd := newJobDecoder(m, nil)
	havePN := false
	var lastPN uint64
	for i := uint64(0); i < npages; i++ {
		pn, err := rd.uvarint()
		if err != nil {
			return nil, err
		}
		word, err := rd.uvarint()
		if err != nil {
			return nil, err
		}
		sparse, cnt := word&1 == 1, word>>1
		switch {
		case pn < d.dirBase || pn-d.dirBase >= dirLen || !d.presentAt(int(pn-d.dirBase)):
			return nil, fmt.Errorf("%w: delta page %d is not a present slot of the directory", ErrCorrupt, pn)
		case havePN && pn <= lastPN:
			return nil, fmt.Errorf("%w: delta page %d out of order", ErrCorrupt, pn)
		case (cnt == 0 && !sparse) || cnt > pageSize:
			return nil, fmt.Errorf("%w: delta page %d holds %d jobs", ErrCorrupt, pn, cnt)
		}
		havePN, lastPN = true, pn
		dp := deltaPage{pn: pn, p: &page{gen: m.gen}, sparse: sparse}
		if sparse {
			bm, err := rd.take(pageSize / 8)
			if err != nil {
				return nil, err
			}
			dp.live = new([pageSize / 8]byte)
			copy(dp.live[:], bm)
			if *dp.live == ([pageSize / 8]byte{}) {
				return nil, fmt.Errorf("%w: sparse delta page %d holds no job", ErrCorrupt, pn)
			}
		}
		p := dp.p
		var lastID uint64
		for k := uint64(0); k < cnt; k++ {
			rec, err := rd.record()
			if err != nil {
				return nil, fmt.Errorf("delta page %d, job %d of %d: %w", pn, k+1, cnt, err)
			}
			j, err := jd.decodeJob(rec)
			if err != nil {
				return nil, fmt.Errorf("delta page %d, job %d of %d: %w", pn, k+1, cnt, err)
			}
			if j.id>>pageBits != pn || (k > 0 && j.id <= lastID) || j.id >= d.nextID {
				return nil, fmt.Errorf("%w: job id %d out of order, outside page %d or beyond next id %d", ErrCorrupt, j.id, pn, d.nextID)
			}
			if int(j.attempt) > int(j.maxAttempts)+1 {
				// the machine never makes one; Restore is more lenient only
				// to keep reading what it always read
				return nil, fmt.Errorf("%w: job %d: attempt %d beyond max attempts %d", ErrCorrupt, j.id, j.attempt, j.maxAttempts)
			}
			if sparse && !dp.liveAt(int(j.id&(pageSize-1))) {
				return nil, fmt.Errorf("%w: sparse delta page %d: job %d in a slot marked empty", ErrCorrupt, pn, j.id)
			}
			lastID = j.id
			p.slots[j.id&(pageSize-1)] = j
			p.live++
		}
		d.written += int(cnt)
		d.pages = append(d.pages, dp)
	}
	crc := rd.sum()
	tr, err := rd.take(20)
	if err != nil {
		return nil, err
	}
	if string(tr[:8]) != deltaTrailerMagic {
		return nil, fmt.Errorf("%w: delta trailer missing", ErrCorrupt)
	}
	if n := binary.LittleEndian.Uint64(tr[8:]); n != uint64(d.written) {
		return nil, fmt.Errorf("%w: delta trailer counts %d jobs, body %d", ErrCorrupt, n, d.written)
	}
	if want := binary.LittleEndian.Uint32(tr[16:]); want != crc {
		return nil, fmt.Errorf("%w: delta checksum %08x, computed %08x", ErrCorrupt, want, crc)
	}
	if _, err := rd.take(1); err == nil {
		return nil, fmt.Errorf("%w: bytes after the delta trailer", ErrCorrupt)
	}
	return d, nil
}

// ErrDeltaMismatch is returned by ApplyDelta for a delta that does not
// follow the machine's state (it wraps ErrCorrupt: the chain on disk does
// not hold together).
var ErrDeltaMismatch = fmt.Errorf("%w: delta does not follow this state", ErrCorrupt)

// ApplyDelta moves the machine from the state the delta follows to the
// state it leads to, rebuilding the indexes of the pages it replaces. It
// checks first that the delta fits the machine (its parent's applied
// count, the pages it keeps, its job count) and changes nothing when it
// does not (the error wraps ErrDeltaMismatch and ErrCorrupt). Call it where
// Apply may be called.
func (m *Machine) ApplyDelta(d *Delta) error {
	t := &m.jobs
	old := func(pn uint64) *page {
		if pn < t.base || pn-t.base >= uint64(len(t.pages)) {
			return nil
		}
		return t.pages[pn-t.base]
	}
	if d.parentApplied != m.applied {
		return fmt.Errorf("%w: it follows %d applied commands, the state has %d", ErrDeltaMismatch, d.parentApplied, m.applied)
	}
	if d.nextID < m.nextID || d.nextLease < m.nextLease {
		return fmt.Errorf("%w: next id or lease goes backwards", ErrDeltaMismatch)
	}
	pages := make([]*page, d.dirLen)
	replaced := make([]bool, d.dirLen)
	var gone []*job // old jobs that leave: removed or replaced
	var added []*job
	for _, dp := range d.pages {
		i := dp.pn - d.dirBase
		replaced[i] = true
		if !dp.sparse {
			pages[i] = dp.p
			continue
		}
		op := old(dp.pn)
		if op == nil {
			return fmt.Errorf("%w: sparse page %d is not in the state", ErrDeltaMismatch, dp.pn)
		}
		np := &page{gen: m.gen}
		for si := range pageSize {
			oj, nj := op.slots[si], dp.p.slots[si]
			switch {
			case !dp.liveAt(si):
				// empty now
			case nj != nil:
				np.slots[si] = nj
			case oj != nil:
				np.slots[si] = oj
			default:
				return fmt.Errorf("%w: sparse page %d: slot %d holds a job in the delta and none in the state", ErrDeltaMismatch, dp.pn, si)
			}
			if np.slots[si] != nil {
				np.live++
			}
		}
		pages[i] = np
	}
	count := 0
	for i := range pages {
		if !d.presentAt(i) {
			continue
		}
		if !replaced[i] {
			p := old(d.dirBase + uint64(i))
			if p == nil {
				return fmt.Errorf("%w: page %d is neither in the delta nor in the state", ErrDeltaMismatch, d.dirBase+uint64(i))
			}
			pages[i] = p
		}
		count += int(pages[i].live)
	}
	if uint64(count) != d.jobs {
		return fmt.Errorf("%w: the state would hold %d jobs, the delta says %d", ErrDeltaMismatch, count, d.jobs)
	}
	// From here on nothing fails. Take out every old job that is not kept
	// as it is: it leaves the indexes and frees its unique key before the
	// new ones come in (a key may move from one job to another).
	kept := func(pn uint64) bool {
		if pn < d.dirBase || pn-d.dirBase >= uint64(d.dirLen) {
			return false
		}
		i := pn - d.dirBase
		return d.presentAt(int(i)) && !replaced[i]
	}
	for i, p := range t.pages {
		pn := t.base + uint64(i)
		if p == nil || kept(pn) {
			continue
		}
		np := (*page)(nil)
		if pn >= d.dirBase && pn-d.dirBase < uint64(d.dirLen) {
			np = pages[pn-d.dirBase]
		}
		for si, j := range p.slots {
			if j != nil && (np == nil || np.slots[si] != j) {
				gone = append(gone, j)
			}
		}
	}
	for _, dp := range d.pages {
		np := pages[dp.pn-d.dirBase]
		for si, j := range dp.p.slots {
			if j != nil && np.slots[si] == j {
				added = append(added, j)
			}
		}
	}
	for _, j := range gone {
		m.unindex(j)
		m.releaseUnique(j)
	}
	for _, j := range added {
		m.index(j)
		if holdsKey(j, d.now) {
			m.unique[j.ext.uniqueKey] = j.id
		}
	}
	*t = pageTable{base: d.dirBase, pages: pages, count: count}
	t.trim()
	m.now, m.nextID, m.nextLease, m.applied = d.now, d.nextID, d.nextLease, d.applied
	for _, f := range d.install {
		f(m)
	}
	return nil
}
