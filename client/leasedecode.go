package client

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/beaver-raft/beaver-raft/api"
)

// decodeLease decodes the answer of a lease: by hand when it has exactly
// the shape a Beaver-Raft server writes (fields in order, strings of valid
// UTF-8 without escapes, integers, RFC 3339 times), else, and whenever the
// hand-written path meets anything else, with encoding/json, which then
// gives its own result or error. A lease of 100 jobs spent most of a remote
// worker's CPU in encoding/json's reflection; TestDecodeLeaseMatchesJSON and
// FuzzDecodeLease hold the two equal.
func decodeLease(b []byte, out *api.LeaseResponse) error { return decodeAnswer(b, out) }

// leaseDecoder reads b from i; every method returns false at the first
// byte it does not expect.
type leaseDecoder struct {
	b []byte
	i int
}

func (d *leaseDecoder) leaseResponse(out *api.LeaseResponse) bool {
	if !d.lit(`{"jobs":[`) {
		return false
	}
	jobs := make([]api.Job, 0, bytes.Count(d.b, []byte(`{"id":`)))
	if !d.lit("]") {
		var prev api.Job // the job before: strings they share are not copied again
		for {
			jobs = append(jobs, api.Job{})
			if !d.job(&jobs[len(jobs)-1], &prev) {
				return false
			}
			prev = jobs[len(jobs)-1]
			if d.lit("]") {
				break
			}
			if !d.lit(",") {
				return false
			}
		}
	}
	if !d.lit("}") || !d.end() {
		return false
	}
	out.Jobs = jobs
	return true
}

// end: only white space is left. (json.Decoder reads one value and leaves
// what follows; here nothing else may follow.)
func (d *leaseDecoder) end() bool {
	for ; d.i < len(d.b); d.i++ {
		if !isSpace(d.b[d.i]) {
			return false
		}
	}
	return true
}

func (d *leaseDecoder) job(j, prev *api.Job) bool {
	ok := d.lit(`{"id":`) && d.str(&j.ID, "") &&
		d.lit(`,"queue":`) && d.str(&j.Queue, prev.Queue) &&
		d.lit(`,"type":`) && d.str(&j.Type, prev.Type) &&
		d.lit(`,"payload":`) && d.raw(&j.Payload) &&
		d.lit(`,"priority":`) && d.int32(&j.Priority) &&
		d.lit(`,"state":`) && d.str(&j.State, prev.State) &&
		d.lit(`,"attempt":`) && d.int(&j.Attempt) &&
		d.lit(`,"max_attempts":`) && d.int(&j.MaxAttempts) &&
		d.lit(`,"timeout":`) && d.str(&j.Timeout, prev.Timeout)
	if !ok {
		return false
	}
	// the optional fields, each at most once, in the order of api.Job
	ok = d.opt(`,"unique_key":`, func() bool { return d.str(&j.UniqueKey, "") }) &&
		d.opt(`,"unique_for":`, func() bool { return d.str(&j.UniqueFor, prev.UniqueFor) }) &&
		d.opt(`,"run_at":`, func() bool { return d.time(&j.RunAt) }) &&
		d.opt(`,"created_at":`, func() bool { return d.time(&j.CreatedAt) }) &&
		d.opt(`,"started_at":`, func() bool { return d.time(&j.StartedAt) }) &&
		d.opt(`,"finished_at":`, func() bool { return d.time(&j.FinishedAt) }) &&
		d.opt(`,"last_error":`, func() bool { return d.str(&j.LastError, prev.LastError) }) &&
		d.opt(`,"result":`, func() bool { return d.raw(&j.Result) }) &&
		d.opt(`,"lease_id":`, func() bool { return d.str(&j.LeaseID, "") }) &&
		d.opt(`,"lease_deadline":`, func() bool { return d.time(&j.LeaseDeadline) }) &&
		d.opt(`,"worker":`, func() bool { return d.str(&j.Worker, prev.Worker) })
	return ok && d.lit("}")
}

// lit reads s.
func (d *leaseDecoder) lit(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

// opt reads key and its value with val, if key is next.
func (d *leaseDecoder) opt(key string, val func() bool) bool {
	if !d.lit(key) {
		return true
	}
	return val()
}

// str reads a string without escapes or control characters, of valid
// UTF-8, which JSON decodes to itself.
// The string is same when it has the same bytes.
func (d *leaseDecoder) str(out *string, same string) bool {
	s, ok := d.plain()
	switch {
	case !ok:
	case same != "" && string(s) == same:
		*out = same
	default:
		*out = string(s)
	}
	return ok
}

func (d *leaseDecoder) plain() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	ascii := true
	for k := d.i + 1; k < len(d.b); k++ {
		switch c := d.b[k]; {
		case c == '"':
			s := d.b[d.i+1 : k]
			// encoding/json replaces invalid UTF-8; valid stays as it is
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			d.i = k + 1
			return s, true
		case c >= 0x80:
			ascii = false
		case c < 0x20 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// time reads a time as time.Time's UnmarshalJSON does (it is what
// encoding/json calls).
func (d *leaseDecoder) time(out *time.Time) bool {
	start := d.i
	if _, ok := d.plain(); !ok {
		return false
	}
	return out.UnmarshalJSON(d.b[start:d.i]) == nil
}

// integer reads -?(0|[1-9][0-9]*), what JSON allows for an integer without
// fraction or exponent.
func (d *leaseDecoder) integer(bits int) (int64, bool) {
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || (d.b[digits] == '0' && d.i > digits+1) {
		return 0, false
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, bits)
	return v, err == nil
}

func (d *leaseDecoder) int(out *int) bool {
	v, ok := d.integer(strconv.IntSize)
	*out = int(v)
	return ok
}

func (d *leaseDecoder) int32(out *int32) bool {
	v, ok := d.integer(32)
	*out = int32(v)
	return ok
}

// raw reads any JSON value into a json.RawMessage (a copy of its bytes, as
// encoding/json makes): it finds the value's end, then json.Valid checks it.
func (d *leaseDecoder) raw(out *json.RawMessage) bool {
	start, depth := d.i, 0
	for d.i < len(d.b) {
		switch c := d.b[d.i]; c {
		case '"':
			if !d.skipString() {
				return false
			}
			if depth == 0 {
				return d.rawEnd(start, out)
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return d.rawEnd(start, out)
			}
			depth--
			if depth == 0 {
				d.i++
				return d.rawEnd(start, out)
			}
		case ',':
			if depth == 0 {
				return d.rawEnd(start, out)
			}
		}
		d.i++
	}
	return false
}

// skipString moves past the string at i, escapes included.
func (d *leaseDecoder) skipString() bool {
	for k := d.i + 1; k < len(d.b); k++ {
		switch d.b[k] {
		case '\\':
			k++
		case '"':
			d.i = k + 1
			return true
		}
	}
	return false
}

func (d *leaseDecoder) rawEnd(start int, out *json.RawMessage) bool {
	v := d.b[start:d.i]
	// white space around a value is not part of it for encoding/json, but
	// json.Valid allows it
	if len(v) == 0 || isSpace(v[0]) || isSpace(v[len(v)-1]) || !json.Valid(v) {
		return false
	}
	*out = append(json.RawMessage(nil), v...)
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }
