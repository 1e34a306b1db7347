package fsm

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// The machine's state grows by three kinds of extension, each registered
// once (from an init function of the file that owns it) so that the
// encoders below stay the only place that knows how they are framed:
//
//   - a section: machine-level state beyond the jobs (queue settings,
//     schedules, ...), written whole into every snapshot and every delta;
//   - a job field: an optional per-job field kept in jobExt, written in the
//     job's snapshot record;
//   - a spec field: an optional JobSpec field, written in an Enqueue
//     command.
//
// Every one is framed as a tagged field list: per field uvarint tag (≥ 1,
// ascending) | uvarint length | bytes. A state, a job or a spec that uses no
// extension encodes byte for byte as before extensions existed (snapshot
// body version 1, delta version 1, command codec version 1), so the formats
// change only for a user of the new controls. A tag this build does not know
// is corruption (a newer build's state cannot be dropped silently).
// docs/wire-format.md and docs/wire-format-snapshot.md list the tags.

// section is machine-level state written into snapshots and deltas.
type section struct {
	tag  uint64
	name string
	// encode appends the encoding of m's state of this section to dst; it
	// returns dst unchanged when the state is empty (the section is then
	// left out of the snapshot).
	encode func(m *Machine, dst []byte) []byte
	// decode checks b (empty: the empty state) and returns what puts it in
	// place. install runs after the jobs are in place and may not fail.
	decode func(b []byte) (install func(m *Machine), err error)
}

// jobField is an optional per-job field kept in jobExt.
type jobField struct {
	tag  uint64
	name string
	// encode appends the field of x to dst, or returns dst unchanged when
	// the field is unset.
	encode func(x *jobExt, dst []byte) []byte
	// decode sets the field of x from b. b is not kept by the caller's
	// reader: copy what is kept (string(b) does).
	decode func(x *jobExt, b []byte) error
}

// specField is an optional JobSpec field carried by Enqueue commands.
type specField struct {
	tag  uint64
	name string
	// set reports whether s uses the field.
	set func(s *JobSpec) bool
	// encode appends the field of s to dst.
	encode func(s *JobSpec, dst []byte) []byte
	// decode sets the field of s from b (copy what is kept).
	decode func(s *JobSpec, b []byte) error
}

var (
	sections   []section
	jobFields  []jobField
	specFields []specField
)

func checkTag(kind string, tag uint64, name string, tags []uint64) {
	if tag == 0 {
		panic(fmt.Sprintf("fsm: %s %q: tag 0 is reserved", kind, name))
	}
	for _, t := range tags {
		if t == tag {
			panic(fmt.Sprintf("fsm: %s %q: tag %d registered twice", kind, name, tag))
		}
	}
}

func registerSection(s section) {
	var tags []uint64
	for _, x := range sections {
		tags = append(tags, x.tag)
	}
	checkTag("section", s.tag, s.name, tags)
	sections = append(sections, s)
	sort.Slice(sections, func(i, k int) bool { return sections[i].tag < sections[k].tag })
}

func registerJobField(f jobField) {
	var tags []uint64
	for _, x := range jobFields {
		tags = append(tags, x.tag)
	}
	checkTag("job field", f.tag, f.name, tags)
	jobFields = append(jobFields, f)
	sort.Slice(jobFields, func(i, k int) bool { return jobFields[i].tag < jobFields[k].tag })
}

func registerSpecField(f specField) {
	var tags []uint64
	for _, x := range specFields {
		tags = append(tags, x.tag)
	}
	checkTag("spec field", f.tag, f.name, tags)
	specFields = append(specFields, f)
	sort.Slice(specFields, func(i, k int) bool { return specFields[i].tag < specFields[k].tag })
}

// appendTagged appends one tagged field whose body encode appends; nothing
// when encode appends nothing. It reports whether it appended.
func appendTagged(dst []byte, tag uint64, encode func([]byte) []byte) ([]byte, bool) {
	start := len(dst)
	dst = encode(dst)
	n := len(dst) - start
	if n == 0 {
		return dst, false
	}
	var hb [2 * binary.MaxVarintLen64]byte
	h := binary.AppendUvarint(hb[:0], tag)
	h = binary.AppendUvarint(h, uint64(n))
	dst = append(dst, h...)
	copy(dst[start+len(h):], dst[start:start+n]) // memmove: the body moves right
	copy(dst[start:], h)
	return dst, true
}

// appendExtras appends m's sections as a tagged field list (nothing when
// every section is empty).
func (m *Machine) appendExtras(dst []byte) []byte {
	for i := range sections {
		s := &sections[i]
		dst, _ = appendTagged(dst, s.tag, func(b []byte) []byte { return s.encode(m, b) })
	}
	return dst
}

// decodeExtras checks a section list and returns the installers of every
// registered section (those absent from b install their empty state).
func decodeExtras(b []byte) ([]func(*Machine), error) {
	d := decoder{b: b}
	got := make(map[uint64][]byte)
	var last uint64
	for len(d.b) > 0 && d.err == nil {
		tag := d.uvarint()
		body := d.bytes()
		if d.err != nil {
			break
		}
		if tag <= last {
			return nil, fmt.Errorf("%w: state section %d out of order", ErrCorrupt, tag)
		}
		last = tag
		got[tag] = body
	}
	if d.err != nil {
		return nil, fmt.Errorf("state sections: %w", d.err)
	}
	out := make([]func(*Machine), 0, len(sections))
	for i := range sections {
		s := &sections[i]
		body := got[s.tag]
		delete(got, s.tag)
		install, err := s.decode(body)
		if err != nil {
			return nil, fmt.Errorf("state section %s: %w", s.name, err)
		}
		out = append(out, install)
	}
	for tag := range got {
		return nil, fmt.Errorf("%w: state section %d unknown to this build", ErrCorrupt, tag)
	}
	return out, nil
}

// appendJobFields appends x's job fields as a tagged list ended by tag 0,
// and reports whether there was any (nothing is appended when not).
func appendJobFields(dst []byte, x *jobExt) ([]byte, bool) {
	any := false
	for i := range jobFields {
		f := &jobFields[i]
		var ok bool
		dst, ok = appendTagged(dst, f.tag, func(b []byte) []byte { return f.encode(x, b) })
		any = any || ok
	}
	if any {
		dst = append(dst, 0)
	}
	return dst, any
}

// decodeJobFields reads a tagged list ended by tag 0 into x.
func (d *decoder) jobFields(x *jobExt) {
	var last uint64
	for d.err == nil {
		tag := d.uvarint()
		if tag == 0 || d.err != nil {
			return
		}
		body := d.bytes()
		if d.err != nil {
			return
		}
		if tag <= last {
			d.err = fmt.Errorf("%w: job field %d out of order", ErrCorrupt, tag)
			return
		}
		last = tag
		f := findJobField(tag)
		if f == nil {
			d.err = fmt.Errorf("%w: job field %d unknown to this build", ErrCorrupt, tag)
			return
		}
		if err := f.decode(x, body); err != nil {
			d.err = fmt.Errorf("job field %s: %w", f.name, err)
			return
		}
	}
}

func findJobField(tag uint64) *jobField {
	for i := range jobFields {
		if jobFields[i].tag == tag {
			return &jobFields[i]
		}
	}
	return nil
}

// specsUseFields reports whether any spec sets an extension field (the
// Enqueue is then encoded with codec version 2).
func specsUseFields(specs []JobSpec) bool {
	for i := range specs {
		for k := range specFields {
			if specFields[k].set(&specs[i]) {
				return true
			}
		}
	}
	return false
}

// appendSpecFields appends s's fields as a tagged list ended by tag 0.
func appendSpecFields(dst []byte, s *JobSpec) []byte {
	for i := range specFields {
		f := &specFields[i]
		if !f.set(s) {
			continue
		}
		dst, _ = appendTagged(dst, f.tag, func(b []byte) []byte { return f.encode(s, b) })
	}
	return append(dst, 0)
}

// specFields reads a tagged list ended by tag 0 into s.
func (d *decoder) specFields(s *JobSpec) {
	var last uint64
	for d.err == nil {
		tag := d.uvarint()
		if tag == 0 || d.err != nil {
			return
		}
		body := d.bytes()
		if d.err != nil {
			return
		}
		if tag <= last {
			d.err = fmt.Errorf("%w: job spec field %d out of order", ErrCorrupt, tag)
			return
		}
		last = tag
		var f *specField
		for i := range specFields {
			if specFields[i].tag == tag {
				f = &specFields[i]
			}
		}
		if f == nil {
			d.err = fmt.Errorf("%w: job spec field %d unknown to this build", ErrCorrupt, tag)
			return
		}
		if err := f.decode(s, body); err != nil {
			d.err = fmt.Errorf("job spec field %s: %w", f.name, err)
			return
		}
	}
}
