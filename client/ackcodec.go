package client

import (
	"bytes"
	"encoding/json"

	"github.com/beaver-raft/beaver-raft/api"
)

// encodeAck encodes req byte for byte as json.Marshal does, without
// reflection, when every string needs no escape and every result is JSON
// that json.Marshal keeps as it is (see appendEnqueue); ok is false
// otherwise, and the caller leaves req to json.Marshal.
func encodeAck(req *api.AckRequest) (b []byte, ok bool) {
	if req.Acks == nil {
		return nil, false // json.Marshal writes null
	}
	n := len(`{"acks":[]}`)
	for i := range req.Acks {
		n += 48 + len(req.Acks[i].Result)
	}
	b = make([]byte, 0, n)
	b = append(b, `{"acks":[`...)
	for i := range req.Acks {
		it := &req.Acks[i]
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = appendField(b, `{"id":`, it.ID); !ok {
			return nil, false
		}
		if b, ok = appendField(b, `,"lease_id":`, it.LeaseID); !ok {
			return nil, false
		}
		if len(it.Result) > 0 {
			if !plainJSON(it.Result) {
				return nil, false
			}
			b = append(b, `,"result":`...)
			b = append(b, it.Result...)
		}
		if it.Error != nil {
			if b, ok = appendField(b, `,"error":`, *it.Error); !ok {
				return nil, false
			}
		}
		if it.RetryIn != "" {
			if b, ok = appendField(b, `,"retry_in":`, it.RetryIn); !ok {
				return nil, false
			}
		}
		if it.Final {
			b = append(b, `,"final":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), true
}

// decodeAnswer decodes b, an answer's body, into out: the common answers
// of the worker and batch calls by hand when they have exactly the shape
// a Beaver-Raft server writes, everything else (and every answer the
// hand-written path is not sure of) with encoding/json, which then gives
// its own result or error.
func decodeAnswer(b []byte, out any) error {
	ok := false
	switch v := out.(type) {
	case *api.LeaseResponse:
		ok = (&leaseDecoder{b: b}).leaseResponse(v)
	case *api.AckResponse:
		ok = (&leaseDecoder{b: b}).ackResponse(v)
	case *api.BatchResponse:
		ok = (&leaseDecoder{b: b}).batchResponse(v)
	}
	if ok {
		return nil
	}
	return json.NewDecoder(bytes.NewReader(b)).Decode(out)
}

// hasFastDecoder: decodeAnswer reads answers of this type by hand.
func hasFastDecoder(out any) bool {
	switch out.(type) {
	case *api.LeaseResponse, *api.AckResponse, *api.BatchResponse:
		return true
	}
	return false
}

// ackResponse reads {"results":[{"id":"N","ok":true},...]}: every ack
// accepted. A rejected ack's result is left to encoding/json.
func (d *leaseDecoder) ackResponse(out *api.AckResponse) bool {
	if !d.lit(`{"results":[`) {
		return false
	}
	results := make([]api.AckResult, 0, bytes.Count(d.b, []byte(`{"id":`)))
	if !d.lit("]") {
		for {
			var r api.AckResult
			if !d.lit(`{"id":`) || !d.str(&r.ID, "") || !d.lit(`,"ok":true}`) {
				return false
			}
			r.OK = true
			results = append(results, r)
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
	out.Results = results
	return true
}

// batchResponse reads {"ids":["N",...],"duplicates":[false,...]}.
func (d *leaseDecoder) batchResponse(out *api.BatchResponse) bool {
	if !d.lit(`{"ids":[`) {
		return false
	}
	n := bytes.Count(d.b, []byte(`,`))/2 + 1
	ids := make([]string, 0, n)
	if !d.lit("]") {
		for {
			var id string
			if !d.str(&id, "") {
				return false
			}
			ids = append(ids, id)
			if d.lit("]") {
				break
			}
			if !d.lit(",") {
				return false
			}
		}
	}
	if !d.lit(`,"duplicates":[`) {
		return false
	}
	dups := make([]bool, 0, len(ids))
	if !d.lit("]") {
		for {
			switch {
			case d.lit("false"):
				dups = append(dups, false)
			case d.lit("true"):
				dups = append(dups, true)
			default:
				return false
			}
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
	out.IDs, out.Duplicates = ids, dups
	return true
}
