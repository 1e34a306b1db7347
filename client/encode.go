package client

import (
	"encoding/json"
	"strconv"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/jsonscan"
)

// encodedBody is a request body already in JSON: doAt sends it as it is.
type encodedBody []byte

// encodeBatch encodes req byte for byte as json.Marshal does, without
// reflection, when every job is of the common shape (appendEnqueue); ok
// is false otherwise, and the caller leaves req to json.Marshal.
func encodeBatch(req *api.BatchRequest) (b []byte, ok bool) {
	if req.Jobs == nil {
		return nil, false // json.Marshal writes null
	}
	n := len(`{"jobs":[]}`)
	for i := range req.Jobs {
		n += len(req.Jobs[i].Payload) + 128
	}
	b = make([]byte, 0, n)
	b = append(b, `{"jobs":[`...)
	for i := range req.Jobs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = appendEnqueue(b, &req.Jobs[i]); !ok {
			return nil, false
		}
	}
	return append(b, "]}"...), true
}

// appendEnqueue appends j as json.Marshal encodes it (the fields in order,
// omitempty and omitzero as tagged), when that is plain to do: every
// string is printable ASCII that needs no escape (json.Marshal escapes
// '"', '\\' and, for HTML, '<', '>' and '&'), and the payload is valid JSON
// that json.Marshal would keep as it is (compact: no whitespace; ASCII;
// nothing it escapes for HTML). ok is false otherwise.
func appendEnqueue(b []byte, j *api.EnqueueRequest) (_ []byte, ok bool) {
	b = append(b, '{')
	if j.Queue != "" {
		if b, ok = appendField(b, `"queue":`, j.Queue); !ok {
			return nil, false
		}
		b = append(b, ',')
	}
	if b, ok = appendField(b, `"type":`, j.Type); !ok {
		return nil, false
	}
	if len(j.Payload) > 0 {
		if !plainJSON(j.Payload) {
			return nil, false
		}
		b = append(b, `,"payload":`...)
		b = append(b, j.Payload...)
	}
	if j.Priority != 0 {
		b = append(b, `,"priority":`...)
		b = strconv.AppendInt(b, int64(j.Priority), 10)
	}
	if !j.RunAt.IsZero() {
		t, err := j.RunAt.MarshalJSON()
		if err != nil {
			return nil, false // json.Marshal words the error
		}
		b = append(b, `,"run_at":`...)
		b = append(b, t...)
	}
	if j.Delay != "" {
		if b, ok = appendField(b, `,"delay":`, j.Delay); !ok {
			return nil, false
		}
	}
	if j.MaxAttempts != 0 {
		b = append(b, `,"max_attempts":`...)
		b = strconv.AppendInt(b, int64(j.MaxAttempts), 10)
	}
	if j.Timeout != "" {
		if b, ok = appendField(b, `,"timeout":`, j.Timeout); !ok {
			return nil, false
		}
	}
	if j.UniqueKey != "" {
		if b, ok = appendField(b, `,"unique_key":`, j.UniqueKey); !ok {
			return nil, false
		}
	}
	if len(j.DependsOn) > 0 {
		b = append(b, `,"depends_on":[`...)
		for i, s := range j.DependsOn {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendField(b, "", s); !ok {
				return nil, false
			}
		}
		b = append(b, ']')
	}
	if len(j.DependsOnIndex) > 0 {
		b = append(b, `,"depends_on_index":[`...)
		for i, n := range j.DependsOnIndex {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		b = append(b, ']')
	}
	if j.OnDependencyFailure != "" {
		if b, ok = appendField(b, `,"on_dependency_failure":`, j.OnDependencyFailure); !ok {
			return nil, false
		}
	}
	if j.UniqueFor != "" {
		if b, ok = appendField(b, `,"unique_for":`, j.UniqueFor); !ok {
			return nil, false
		}
	}
	return append(b, '}'), true
}

// appendField appends key and the JSON string s, when s needs no escape.
func appendField(b []byte, key, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return nil, false
		}
	}
	b = append(b, key...)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// plainJSON reports whether json.Marshal keeps the json.RawMessage p byte
// for byte: it is valid JSON, of printable ASCII without what it escapes
// for HTML, and with spaces only inside strings, so that compacting it
// changes nothing.
func plainJSON(p json.RawMessage) bool {
	inStr := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&':
			return false
		case inStr && c == '\\':
			i++ // not a quote; jsonscan.Value refuses any but a plain ASCII escape
		case c == '"':
			inStr = !inStr
		case c == ' ' && !inStr:
			return false
		}
	}
	// jsonscan.Value is json.Valid but for values nested deeper than
	// jsonscan.MaxDepth, which it leaves to json.Marshal.
	end, ok := jsonscan.Value(p, 0)
	return ok && end == len(p)
}
