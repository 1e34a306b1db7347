package httpapi

import (
	"encoding/json"
	"strconv"
	"time"
	"unsafe"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// appendJob appends the JSON of job j: the bytes json.Marshal(toJob(j))
// gives, written by hand for the common job (a lease answer carries up to
// hundreds of them, and encoding/json's reflection and its second pass over
// every payload were the largest cost of a lease). Whatever the hand-written
// path cannot vouch for byte for byte goes through encoding/json: a job
// with dependencies whole, and any string or stored JSON value with
// characters that encoding/json escapes or rewrites (anything but plain
// printable ASCII, and for JSON values also whitespace and < > &).
// TestAppendJobMatchesMarshal and FuzzAppendJob hold the two equal.
func appendJob(b []byte, j *fsm.Job) []byte {
	if j.Deps != nil {
		out, err := json.Marshal(toJob(j))
		if err != nil {
			// toJob's fields always encode
			panic("httpapi: encode a job: " + err.Error())
		}
		return append(b, out...)
	}
	b = append(b, `{"id":`...)
	b = appendIDString(b, j.ID)
	b = append(b, `,"queue":`...)
	b = appendString(b, j.Queue)
	b = append(b, `,"type":`...)
	b = appendString(b, j.Type)
	b = append(b, `,"payload":`...)
	b = appendRaw(b, j.Payload, "null")
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(j.Priority), 10)
	b = append(b, `,"state":`...)
	b = appendString(b, j.State.String())
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(j.Attempt), 10)
	b = append(b, `,"max_attempts":`...)
	b = strconv.AppendInt(b, int64(j.MaxAttempts), 10)
	b = append(b, `,"timeout":`...)
	b = appendDuration(b, j.Timeout)
	if j.UniqueKey != "" {
		b = append(b, `,"unique_key":`...)
		b = appendString(b, j.UniqueKey)
	}
	if j.UniqueFor != 0 {
		b = append(b, `,"unique_for":`...)
		b = appendDuration(b, j.UniqueFor)
	}
	b = appendTime(b, `,"run_at":`, j.RunAt)
	b = appendTime(b, `,"created_at":`, j.CreatedAt)
	b = appendTime(b, `,"started_at":`, j.StartedAt)
	b = appendTime(b, `,"finished_at":`, j.FinishedAt)
	if j.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = appendString(b, j.LastError)
	}
	if j.Result != "" {
		b = append(b, `,"result":`...)
		b = appendRaw(b, j.Result, "")
	}
	if j.LeaseID != 0 {
		b = append(b, `,"lease_id":`...)
		b = appendIDString(b, j.LeaseID)
	}
	b = appendTime(b, `,"lease_deadline":`, j.LeaseDeadline)
	if j.Worker != "" {
		b = append(b, `,"worker":`...)
		b = appendString(b, j.Worker)
	}
	return append(b, '}')
}

// appendIDString appends formatID(id) as a JSON string.
func appendIDString(b []byte, id uint64) []byte {
	b = append(b, '"')
	if id != 0 {
		b = strconv.AppendUint(b, id, 10)
	}
	return append(b, '"')
}

// appendDuration appends time.Duration(ns).String() as a JSON string,
// without the allocation of String for whole seconds.
func appendDuration(b []byte, ns int64) []byte {
	if ns <= 0 || ns%1e9 != 0 {
		return appendString(b, time.Duration(ns).String())
	}
	sec := ns / 1e9
	h, m, s := sec/3600, sec/60%60, sec%60
	b = append(b, '"')
	if h > 0 {
		b = strconv.AppendInt(b, h, 10)
		b = append(b, 'h')
	}
	if h > 0 || m > 0 {
		b = strconv.AppendInt(b, m, 10)
		b = append(b, 'm')
	}
	b = strconv.AppendInt(b, s, 10)
	return append(b, 's', '"')
}

// appendTime appends key and the time of ns (wireTime), unless ns is 0
// (omitzero).
func appendTime(b []byte, key string, ns int64) []byte {
	if ns == 0 {
		return b
	}
	b = append(b, key...)
	// int64 nanoseconds stay within the years 1677 to 2262, all of which
	// time.Time.MarshalJSON writes as RFC 3339 with nanoseconds
	b = append(b, '"')
	b = wireTime(ns).AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString appends s as encoding/json writes a string: by hand when
// every byte is printable ASCII that it leaves alone, else by encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainStringByte(s[i]) {
			out, _ := json.Marshal(s)
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainStringByte: encoding/json copies c unchanged inside a string.
func plainStringByte(c byte) bool {
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// appendRaw appends rawJSON(s, def) as encoding/json writes a
// json.RawMessage (compacted, with < > & and U+2028/U+2029 escaped): by
// hand when s is valid JSON of plain ASCII without whitespace or < > &, which
// it copies unchanged.
func appendRaw(b []byte, s, def string) []byte {
	if s == "" {
		return append(b, def...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			out, _ := json.Marshal(rawJSON(s, def))
			return append(b, out...)
		}
	}
	// json.Valid only reads: no copy of s for it
	if !json.Valid(unsafe.Slice(unsafe.StringData(s), len(s))) {
		out, _ := json.Marshal(s)
		return append(b, out...)
	}
	return append(b, s...)
}

// appendJobArray appends the JSON array of jobs.
func appendJobArray(b []byte, jobs []fsm.Job) []byte {
	b = append(b, '[')
	for i := range jobs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJob(b, &jobs[i])
	}
	return append(b, ']')
}

// jobJSONSize guesses the bytes of a job's JSON besides its payload and
// result, to size an answer's buffer once.
const jobJSONSize = 384

// newJobsBuffer is a buffer for the JSON of jobs.
func newJobsBuffer(jobs []fsm.Job) []byte {
	n := 64
	for i := range jobs {
		n += jobJSONSize + len(jobs[i].Payload) + len(jobs[i].Result)
	}
	return make([]byte, 0, n)
}

// appendLeaseAnswer appends the answer of a lease (api.LeaseResponse) and
// its newline.
func appendLeaseAnswer(b []byte, jobs []fsm.Job) []byte {
	b = append(b, `{"jobs":`...)
	b = appendJobArray(b, jobs)
	return append(b, "}\n"...)
}

// appendListAnswer appends the answer of GET /v1/jobs (api.ListResponse)
// and its newline.
func appendListAnswer(b []byte, jobs []fsm.Job, cursor string) []byte {
	b = append(b, `{"jobs":`...)
	b = appendJobArray(b, jobs)
	b = append(b, `,"next_cursor":`...)
	b = appendString(b, cursor)
	return append(b, "}\n"...)
}
