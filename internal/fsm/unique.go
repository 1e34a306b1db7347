package fsm

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"
)

// Unique keys with a window (unique_for).
//
// A job's unique key is held while the job is unfinished and, if it was
// enqueued with unique_for, for that long after it finished, whatever its
// final state: an enqueue of the key then answers a duplicate naming the
// finished job. Without unique_for the key is free again once the job
// finished, as before.
//
// m.unique maps a key to the job holding it. The entry of a finished job
// stays after its window ended (it is stale) until a job takes the key or
// the job is purged: every lookup checks the window against the machine's
// clock (uniqueHolder), so no command is needed at the end of a window.
// Restore and ApplyDelta rebuild the entries of holders from the jobs
// (holdsKey); stale entries are not rebuilt, which changes no answer.
//
// Purge removes a finished job after its retention even within its window.
// Its reservation then moves to m.reserved (key → id, final state, end of
// the window), a state section written whole into every snapshot and
// delta, so the key stays reserved until the window ends, and the
// duplicate answer still names the purged job. Purge also drops the
// reservations whose window has ended. The section is empty unless
// unique_for is longer than the retention of the state its jobs end in.

// MaxUniqueFor bounds unique_for.
const MaxUniqueFor = 365 * 24 * time.Hour

// Tags of the unique_for extensions (docs/wire-format.md).
const (
	specTagUniqueFor    = 1
	jobTagUniqueFor     = 1
	sectionTagReserved  = 2
	maxReservationsRead = MaxDecodeItems
)

// reservation is the unique key of a purged job, reserved until until.
type reservation struct {
	id    uint64
	state State // the final state the job ended in
	until int64
}

func init() {
	registerSpecField(specField{
		tag:    specTagUniqueFor,
		name:   "unique_for",
		set:    func(s *JobSpec) bool { return s.UniqueFor != 0 },
		encode: func(s *JobSpec, dst []byte) []byte { return binary.AppendVarint(dst, s.UniqueFor) },
		decode: func(s *JobSpec, b []byte) error {
			v, err := varintBody(b)
			if err == nil && v == 0 {
				err = fmt.Errorf("%w: unique_for 0 written", ErrCorrupt)
			}
			s.UniqueFor = v
			return err
		},
	})
	registerJobField(jobField{
		tag:  jobTagUniqueFor,
		name: "unique_for",
		encode: func(x *jobExt, dst []byte) []byte {
			if x.uniqueFor == 0 {
				return dst
			}
			return binary.AppendVarint(dst, x.uniqueFor)
		},
		decode: func(x *jobExt, b []byte) error {
			v, err := varintBody(b)
			if err == nil && (v <= 0 || v > int64(MaxUniqueFor) || x.uniqueKey == "") {
				err = fmt.Errorf("%w: unique_for %d of a job with unique key %q", ErrCorrupt, v, x.uniqueKey)
			}
			x.uniqueFor = v
			return err
		},
	})
	registerSection(section{
		tag:    sectionTagReserved,
		name:   "unique_reservations",
		encode: encodeReservations,
		decode: decodeReservations,
	})
}

// varintBody decodes a field body that is exactly one varint.
func varintBody(b []byte) (int64, error) {
	d := decoder{b: b}
	v := d.varint()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes in a varint field", ErrCorrupt, len(d.b))
	}
	return v, d.err
}

// validateUniqueFor is ValidateSpec's check of unique_for.
func validateUniqueFor(index int, s *JobSpec) error {
	switch {
	case s.UniqueFor < 0 || s.UniqueFor > int64(MaxUniqueFor):
		return &InvalidError{Index: index, Field: "unique_for", Msg: "must be between 0 and 8760h"}
	case s.UniqueFor > 0 && s.UniqueKey == "":
		return &InvalidError{Index: index, Field: "unique_for", Msg: "needs a unique_key"}
	}
	return nil
}

// windowOpen reports whether the key of a finished job with ext x is still
// reserved at now.
func windowOpen(x *jobExt, now int64) bool {
	return x.uniqueFor > 0 && x.finishedAt+x.uniqueFor > now
}

// holdsKey reports whether j holds its unique key at now: it has one and
// is unfinished, or finished within its unique_for window.
func holdsKey(j *job, now int64) bool {
	x := j.ext
	return x != nil && x.uniqueKey != "" && (!j.state.Final() || windowOpen(x, now))
}

// uniqueHolder returns the job that holds key now, and its state: a live
// job, or a purged one whose reservation has not ended.
func (m *Machine) uniqueHolder(key string) (id uint64, st State, ok bool) {
	if id, ok := m.unique[key]; ok {
		if j := m.jobs.get(id); j != nil && holdsKey(j, m.now) {
			return id, j.state, true
		}
	}
	if r, ok := m.reserved[key]; ok && r.until > m.now {
		return r.id, r.state, true
	}
	return 0, 0, false
}

// takeKey makes job id the holder of key (which nobody else holds now).
func (m *Machine) takeKey(key string, id uint64) {
	m.unique[key] = id
	if _, ok := m.reserved[key]; ok {
		delete(m.reserved, key) // its window ended: uniqueHolder said so
	}
}

// keyFinished is called when j reached a final state: its key is free,
// unless a unique_for window keeps it.
func (m *Machine) keyFinished(j *job) {
	if j.ext != nil && j.ext.uniqueFor > 0 {
		return
	}
	m.releaseUnique(j)
}

// keyPurged is called when Purge removes j: a key it still reserves moves
// to m.reserved.
func (m *Machine) keyPurged(j *job) {
	x := j.ext
	if x == nil || x.uniqueKey == "" {
		return
	}
	if id, ok := m.unique[x.uniqueKey]; !ok || id != j.id {
		return
	}
	delete(m.unique, x.uniqueKey)
	if windowOpen(x, m.now) {
		m.reserved[x.uniqueKey] = reservation{id: j.id, state: j.state, until: x.finishedAt + x.uniqueFor}
	}
}

// dropExpiredReservations forgets the reservations whose window ended.
func (m *Machine) dropExpiredReservations() {
	for k, r := range m.reserved {
		if r.until <= m.now {
			delete(m.reserved, k) // the outcome does not depend on the order
		}
	}
}

// Reservations is the number of unique keys kept reserved for purged jobs
// (whose unique_for window outlasts their retention).
func (m *Machine) Reservations() int { return len(m.reserved) }

// NextReservationEnd is the earliest end of a window among the
// reservations of purged jobs: a Purge after it drops that reservation.
func (m *Machine) NextReservationEnd() (at int64, ok bool) {
	for _, r := range m.reserved {
		if !ok || r.until < at {
			at, ok = r.until, true
		}
	}
	return at, ok
}

// The section body: uvarint n | n × (string key | uvarint id | u8 state |
// varint until), in key order.
func encodeReservations(m *Machine, dst []byte) []byte {
	if len(m.reserved) == 0 {
		return dst
	}
	keys := make([]string, 0, len(m.reserved))
	for k := range m.reserved {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		r := m.reserved[k]
		dst = appendString(dst, k)
		dst = binary.AppendUvarint(dst, r.id)
		dst = append(dst, byte(r.state))
		dst = binary.AppendVarint(dst, r.until)
	}
	return dst
}

func decodeReservations(b []byte) (func(*Machine), error) {
	res := make(map[string]reservation)
	if len(b) > 0 {
		d := decoder{b: b}
		n := d.uvarint()
		if d.err == nil && (n == 0 || n > maxReservationsRead || n > uint64(len(d.b))) {
			return nil, fmt.Errorf("%w: %d reservations", ErrCorrupt, n)
		}
		last := ""
		for i := uint64(0); i < n && d.err == nil; i++ {
			k := d.string()
			r := reservation{id: d.uvarint(), state: State(d.byte()), until: d.varint()}
			if d.err != nil {
				break
			}
			switch {
			case k == "" || len(k) > MaxUniqueKeyLen || (i > 0 && k <= last):
				return nil, fmt.Errorf("%w: reservation key %q empty, too long or out of order", ErrCorrupt, k)
			case r.id == 0 || !r.state.Final():
				return nil, fmt.Errorf("%w: reservation of key %q: job %d in state %d", ErrCorrupt, k, r.id, r.state)
			}
			last = k
			res[k] = r
		}
		if d.err == nil && len(d.b) != 0 {
			d.err = fmt.Errorf("%w: %d trailing bytes after the reservations", ErrCorrupt, len(d.b))
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	return func(m *Machine) { m.reserved = res }, nil
}
