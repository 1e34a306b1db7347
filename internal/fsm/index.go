package fsm

import "github.com/google/btree"

// Jobs by id live in pages of pageSize slots: ids are assigned in order, so a
// page directory is a dense, ordered index with O(1) lookups, 8 bytes a job,
// and cheap copy on write for snapshots (see Machine.capture).
const (
	pageBits = 12
	pageSize = 1 << pageBits
)

type page struct {
	gen   uint32
	live  int32
	slots [pageSize]*job
}

// pageTable maps job ids to jobs.
type pageTable struct {
	base  uint64  // page number of pages[0]
	pages []*page // nil entries are empty pages
	count int     // live jobs
}

func (t *pageTable) get(id uint64) *job {
	pn := id >> pageBits
	if pn < t.base || pn-t.base >= uint64(len(t.pages)) {
		return nil
	}
	p := t.pages[pn-t.base]
	if p == nil {
		return nil
	}
	return p.slots[id&(pageSize-1)]
}

// set stores j (or clears the slot when j is nil) at id, copying the page
// first if a snapshot may share it.
func (t *pageTable) set(id uint64, j *job, gen uint32) {
	pn := id >> pageBits
	if len(t.pages) == 0 {
		t.base = pn
	}
	if pn < t.base {
		// Only Restore inserts below the base, and it goes in id order, so
		// this does not happen; grow downwards anyway for safety.
		grow := int(t.base - pn)
		t.pages = append(make([]*page, grow, grow+len(t.pages)), t.pages...)
		t.base = pn
	}
	for pn-t.base >= uint64(len(t.pages)) {
		t.pages = append(t.pages, nil)
	}
	i := pn - t.base
	p := t.pages[i]
	if p == nil {
		if j == nil {
			return
		}
		p = &page{gen: gen}
		t.pages[i] = p
	} else if p.gen != gen {
		c := new(page)
		*c = *p
		c.gen = gen
		p = c
		t.pages[i] = p
	}
	slot := &p.slots[id&(pageSize-1)]
	switch {
	case *slot == nil && j != nil:
		p.live++
		t.count++
	case *slot != nil && j == nil:
		p.live--
		t.count--
	}
	*slot = j
	if p.live == 0 {
		t.pages[i] = nil
		t.trim()
	}
}

// trim drops empty pages from the front, so purged history costs nothing.
func (t *pageTable) trim() {
	n := 0
	for n < len(t.pages) && t.pages[n] == nil {
		n++
	}
	if n == 0 {
		return
	}
	if n == len(t.pages) {
		t.pages = t.pages[:0]
		t.base = 0
		return
	}
	t.pages = append(t.pages[:0], t.pages[n:]...)
	t.base += uint64(n)
}

// clone copies the directory; the pages themselves are shared until written.
func (t *pageTable) clone() pageTable {
	c := *t
	c.pages = append([]*page(nil), t.pages...)
	return c
}

// ascend calls fn for every job with id >= from in id order until fn returns
// false.
func (t *pageTable) ascend(from uint64, fn func(*job) bool) {
	start := from >> pageBits
	if start < t.base {
		start = t.base
		from = start << pageBits
	}
	for pi := start - t.base; pi < uint64(len(t.pages)); pi++ {
		p := t.pages[pi]
		if p == nil {
			continue
		}
		si := uint64(0)
		if pi+t.base == from>>pageBits {
			si = from & (pageSize - 1)
		}
		for ; si < pageSize; si++ {
			if j := p.slots[si]; j != nil {
				if !fn(j) {
					return
				}
			}
		}
	}
}

// Ordered indexes hold *job pointers but order them only by fields that do not
// change while the job is in the index (a job is removed before such a field
// changes), so an index may hold an older copy of a job: look the current one
// up by id.
const btreeDegree = 32

type jobTree = btree.BTreeG[*job]

// runnable order: priority desc, run_at asc, id asc.
func lessRunnable(a, b *job) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.runAt != b.runAt {
		return a.runAt < b.runAt
	}
	return a.id < b.id
}

// scheduled order: run_at asc, id asc.
func lessRunAt(a, b *job) bool {
	if a.runAt != b.runAt {
		return a.runAt < b.runAt
	}
	return a.id < b.id
}

// in-flight order: lease deadline asc, id asc.
func lessDeadline(a, b *job) bool {
	da, db := a.x().leaseDeadline, b.x().leaseDeadline
	if da != db {
		return da < db
	}
	return a.id < b.id
}

// finished order: finished_at asc, id asc.
func lessFinished(a, b *job) bool {
	fa, fb := a.x().finishedAt, b.x().finishedAt
	if fa != fb {
		return fa < fb
	}
	return a.id < b.id
}

// queue is one named queue and its counts.
type queue struct {
	name   string
	counts [numStates]int
	ctl    *queueCtl // settings and rate window (queuectl.go); nil: none
}
