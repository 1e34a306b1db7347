package fsm

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
)

// Restoring a snapshot's jobs. The records are framed (and checksummed) in
// stream order by one goroutine, decoded in batches by up to GOMAXPROCS
// goroutines, and installed (page table, indexes, unique keys) by the
// caller's goroutine in record order. Decoding a record depends on nothing
// but its bytes and the machine's class table (interned under a lock, and
// kept sorted whatever the order of interning), so the machine is the same,
// job for job, as if one goroutine had done everything; every error is the
// one the sequential restore reports, for the first record that fails.

const (
	// restoreBatchJobs and restoreBatchBytes bound a batch of records
	// handed to one decoding goroutine.
	restoreBatchJobs  = pageSize
	restoreBatchBytes = 256 << 10
	// restoreParallelMin: snapshots with fewer jobs are decoded by the
	// restoring goroutine alone.
	restoreParallelMin = 4 * restoreBatchJobs
	// jobSlabJobs and payloadSlabBytes: decoded jobs and their payloads are
	// carved from slabs of this size, to spend one allocation on many jobs.
	// A slab lives as long as any job (or older copy of a job) in it, so
	// slabs are small: a long-lived job keeps at most a few KiB with it.
	jobSlabJobs      = 64
	payloadSlabBytes = 8 << 10
	// payloads larger than this get an allocation of their own
	payloadSlabMax = payloadSlabBytes / 8
)

// stringSlab hands out strings that share an allocation. Bytes written to
// a strings.Builder never change, so a string taken from it stays valid
// while the builder grows.
type stringSlab struct{ b strings.Builder }

// string returns b as a string from the slab, starting a new slab of up to
// want bytes (the most the caller may still ask for, say) if this one is
// full. Large strings get an allocation of their own.
func (s *stringSlab) string(b []byte, want int) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > payloadSlabMax {
		return string(b)
	}
	if s.b.Cap()-s.b.Len() < len(b) {
		s.b = strings.Builder{}
		s.b.Grow(max(len(b), min(want, payloadSlabBytes)))
	}
	off := s.b.Len()
	s.b.Write(b)
	return s.b.String()[off:]
}

// restoreWorkers is the number of goroutines decoding a snapshot of count
// jobs.
func restoreWorkers(count uint64) int {
	if count < restoreParallelMin {
		return 1
	}
	return min(runtime.GOMAXPROCS(0), 8)
}

// jobDecoder decodes job records for one goroutine: its class cache and its
// slabs are its own.
type jobDecoder struct {
	m    *Machine
	mu   *sync.Mutex // nil: the only decoder; else held to intern classes
	gen  uint32
	last *class // class of the previous job (a cache)
	jobs []job  // the job slab: the next jobs are taken from it
	pb   stringSlab
}

func newJobDecoder(m *Machine, mu *sync.Mutex) *jobDecoder {
	return &jobDecoder{m: m, mu: mu, gen: m.gen, last: m.lastClass}
}

func (jd *jobDecoder) newJob() *job {
	if len(jd.jobs) == 0 {
		jd.jobs = make([]job, jobSlabJobs)
	}
	j := &jd.jobs[0]
	jd.jobs = jd.jobs[1:]
	return j
}

// payload returns b as a string from jd's payload slab.
func (jd *jobDecoder) payload(b []byte) string { return jd.pb.string(b, payloadSlabBytes) }

func (jd *jobDecoder) classFor(queueName, typ string) *class {
	if jd.mu != nil {
		jd.mu.Lock()
		defer jd.mu.Unlock()
	}
	return jd.m.classFor(queueName, typ)
}

// installJob is the restore's work for each decoded job, in id order: the
// check of the order, the page table, the counts, the ordered indexes
// unless trees is false (the caller adds j to them with indexTrees, in the
// same order), and the unique keys.
func (m *Machine) installJob(j *job, lastID *uint64, trees bool) error {
	if j.id <= *lastID || j.id >= m.nextID {
		return fmt.Errorf("%w: job id %d out of order or beyond next id %d", ErrCorrupt, j.id, m.nextID)
	}
	*lastID = j.id
	m.jobs.set(j.id, j, m.gen)
	if trees {
		m.index(j)
	} else {
		m.counts[j.state]++
		j.cls.q.counts[j.state]++
	}
	if holdsKey(j, m.now) {
		m.unique[j.ext.uniqueKey] = j.id
	}
	return nil
}

// restoreJobs reads the count job records that follow in rd and installs
// them, decoding them on workers goroutines (1: on this one alone) in
// batches of at most batchJobs records. rd is at the trailer afterwards.
func (m *Machine) restoreJobs(rd *chunkReader, count uint64, workers, batchJobs int) error {
	var lastID uint64
	if workers <= 1 {
		jd := newJobDecoder(m, nil)
		for i := uint64(0); i < count; i++ {
			rec, err := rd.record()
			if err != nil {
				return fmt.Errorf("job %d of %d: %w", i+1, count, err)
			}
			j, err := jd.decodeJob(rec)
			if err != nil {
				return fmt.Errorf("job %d of %d: %w", i+1, count, err)
			}
			if err := m.installJob(j, &lastID, true); err != nil {
				return err
			}
			m.lastClass = j.cls
		}
		return nil
	}

	p := newRestorePipe(m, rd, count, workers, batchJobs)
	defer p.stop()
	// The ordered indexes are filled on a goroutine of their own, batch
	// after batch in record order: the order of their inserts, and so the
	// trees, are those of a sequential restore.
	trees := make(chan *restoreBatch, 2)
	treesDone := make(chan struct{})
	go func() {
		defer close(treesDone)
		for b := range trees {
			for k, j := range b.jobs {
				m.indexTrees(j)
				b.jobs[k] = nil // the batch is reused
			}
			p.recycle(b)
		}
	}()
	defer func() {
		close(trees)
		<-treesDone
	}()
	i := uint64(0)
	for b := range p.ordered {
		<-b.done
		for k, j := range b.jobs {
			if err := m.installJob(j, &lastID, false); err != nil {
				b.jobs = b.jobs[:k] // those installed
				trees <- b
				return err
			}
			m.lastClass = j.cls
		}
		i += uint64(len(b.jobs))
		derr, ferr := b.derr, b.ferr
		trees <- b // the batch is the indexer's now
		switch {
		case derr != nil: // comes before ferr's record
			return fmt.Errorf("job %d of %d: %w", i+1, count, derr)
		case ferr != nil:
			return fmt.Errorf("job %d of %d: %w", i+1, count, ferr)
		}
	}
	// the reader has stopped: it closed ordered after its last batch
	if i != count {
		return fmt.Errorf("fsm: restore decoded %d of %d jobs", i, count) // not reached
	}
	return nil
}

// restoreBatch is a run of consecutive job records.
type restoreBatch struct {
	buf  []byte // the records, back to back
	ends []int  // where each record ends in buf
	ferr error  // framing error of the record after the last in buf
	jobs []*job // decoded: one per record, up to the first that fails
	derr error  // the decoding error of record len(jobs), if any
	done chan struct{}
}

// restorePipe runs the reading goroutine and the decoding goroutines of a
// parallel restore. Its owner (restoreJobs) ranges over ordered, and calls
// stop before returning, which ends and waits for every goroutine.
type restorePipe struct {
	ordered chan *restoreBatch // every batch, in stream order; closed by the reader
	work    chan *restoreBatch // batches to decode; closed by the reader
	free    chan *restoreBatch // installed batches, for reuse
	quit    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex // held to intern classes
}

func newRestorePipe(m *Machine, rd *chunkReader, count uint64, workers, batchJobs int) *restorePipe {
	p := &restorePipe{
		ordered: make(chan *restoreBatch, 2*workers),
		work:    make(chan *restoreBatch, 2*workers),
		free:    make(chan *restoreBatch, 2*workers+2),
		quit:    make(chan struct{}),
	}
	p.wg.Add(1 + workers)
	go p.read(rd, count, batchJobs)
	for range workers {
		go p.decode(newJobDecoder(m, &p.mu))
	}
	return p
}

// stop ends the goroutines (the reader at its next batch) and waits for
// them. rd is the caller's again afterwards.
func (p *restorePipe) stop() {
	close(p.quit)
	p.wg.Wait()
}

func (p *restorePipe) recycle(b *restoreBatch) {
	select {
	case p.free <- b:
	default:
	}
}

// read frames the records into batches and hands each to a decoder and to
// the installer, until count records are read, a record cannot be framed,
// or quit.
func (p *restorePipe) read(rd *chunkReader, count uint64, batchJobs int) {
	defer p.wg.Done()
	defer close(p.work)
	defer close(p.ordered)
	for i := uint64(0); i < count; {
		select {
		case <-p.quit:
			return
		default:
		}
		var b *restoreBatch
		select {
		case b = <-p.free:
			*b = restoreBatch{buf: b.buf[:0], ends: b.ends[:0], jobs: b.jobs[:0]}
		default:
			// room for restoreBatchBytes and a record or two more: the
			// batch does not grow
			b = &restoreBatch{buf: make([]byte, 0, restoreBatchBytes+restoreBatchBytes/4), ends: make([]int, 0, batchJobs)}
		}
		b.done = make(chan struct{})
		for len(b.ends) < batchJobs && len(b.buf) < restoreBatchBytes && i < count {
			rec, err := rd.record()
			if err != nil {
				b.ferr = err
				break
			}
			b.buf = append(b.buf, rec...)
			b.ends = append(b.ends, len(b.buf))
			i++
		}
		select {
		case p.ordered <- b:
		case <-p.quit:
			return
		}
		select {
		case p.work <- b:
		case <-p.quit:
			// the installer gave up: it waits for no batch any more
			return
		}
		if b.ferr != nil {
			return
		}
	}
}

// decode decodes the batches it is handed until work is closed.
func (p *restorePipe) decode(jd *jobDecoder) {
	defer p.wg.Done()
	for b := range p.work {
		start := 0
		for _, end := range b.ends {
			j, err := jd.decodeJob(b.buf[start:end])
			if err != nil {
				b.derr = err
				break
			}
			b.jobs = append(b.jobs, j)
			start = end
		}
		close(b.done)
	}
}
