package httpapi

import (
	"math"
	"unicode/utf8"

	"github.com/beaver-raft/beaver-raft/internal/jsonscan"
)

// Bits of fastDecodeEnqueue's set of keys seen.
const (
	fkQueue = 1 << iota
	fkType
	fkPayload
	fkPriority
	fkRunAt
	fkDelay
	fkMaxAttempts
	fkTimeout
	fkUniqueKey
)

// fastDecodeEnqueue decodes one enqueue object of the common shape without
// encoding/json, validating every byte of data as it reads it: it needs no
// json.Valid first.
//
// When ok, req is exactly what decodeStrict(data, &req, prefix) decodes,
// and decodeStrict would not fail. Anything it does not handle exactly,
// invalid JSON among it, answers !ok, never an error: the caller then
// decodes data with decodeStrict, which gives the answer and its error.
// It handles:
//
//   - an object (whitespace around it and its tokens), each key at most
//     once and byte for byte one of the keys of enqueueWire (encoding/json
//     also matches keys case-insensitively and takes the last of
//     duplicates: those go to decodeStrict, as do unknown keys);
//   - strings without escapes, of valid UTF-8 (encoding/json would
//     replace invalid bytes with U+FFFD), for queue, type, delay, timeout
//     and unique_key;
//   - any valid JSON value but null, at most jsonscan.MaxDepth deep, for payload
//     and run_at (json.RawMessage), kept byte for byte;
//   - integers written as -?[1-9][0-9]{0,17} or 0, in range, for priority
//     (int32) and max_attempts (int).
//
// Payload and RunAt of req alias data (decodeStrict copies them). When not
// ok, req is the zero enqueueWire, ready for decodeStrict.
func fastDecodeEnqueue(data []byte, c *strCache) (enqueueWire, bool) {
	if req, j, ok := fastEnqueue(data, jsonscan.Space(data, 0), c); ok && jsonscan.Space(data, j) == len(data) {
		return req, true
	}
	return enqueueWire{}, false
}

// fastEnqueue is fastDecodeEnqueue of the object at data[i], which ends
// before next; what follows it is the caller's to check.
func fastEnqueue(data []byte, i int, c *strCache) (req enqueueWire, next int, ok bool) {
	var own strCache
	if c == nil {
		c = &own
	}
	if i == len(data) || data[i] != '{' {
		return req, 0, false
	}
	i = jsonscan.Space(data, i+1)
	if i < len(data) && data[i] == '}' {
		return req, i + 1, true
	}
	var seen uint
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return req, 0, false
		}
		if i = jsonscan.Space(data, j); i == len(data) || data[i] != ':' {
			return req, 0, false
		}
		i = jsonscan.Space(data, i+1)
		var bit uint
		switch string(key) {
		case "queue", "type", "delay", "timeout", "unique_key":
			s, j, ok := plainString(data, i)
			if !ok {
				return req, 0, false
			}
			switch string(key) {
			case "queue":
				bit, req.Queue = fkQueue, keep(&c.queue, s)
			case "type":
				bit, req.Type = fkType, keep(&c.typ, s)
			case "delay":
				bit, req.Delay = fkDelay, keep(&c.delay, s)
			case "timeout":
				bit, req.Timeout = fkTimeout, keep(&c.timeout, s)
			default:
				bit, req.UniqueKey = fkUniqueKey, string(s)
			}
			i = j
		case "payload", "run_at":
			j, ok := jsonscan.Value(data, i)
			if !ok || string(data[i:j]) == "null" {
				return req, 0, false
			}
			if key[0] == 'p' {
				bit, req.Payload = fkPayload, data[i:j:j]
			} else {
				bit, req.RunAt = fkRunAt, data[i:j:j]
			}
			i = j
		case "priority":
			n, j, ok := plainInt(data, i)
			if !ok || n < math.MinInt32 || n > math.MaxInt32 {
				return req, 0, false
			}
			bit, req.Priority, i = fkPriority, int32(n), j
		case "max_attempts":
			n, j, ok := plainInt(data, i)
			if !ok || int64(int(n)) != n {
				return req, 0, false
			}
			bit, req.MaxAttempts, i = fkMaxAttempts, int(n), j
		default:
			return req, 0, false
		}
		if seen&bit != 0 {
			return req, 0, false
		}
		seen |= bit
		// A value ends at a delimiter: what follows a number or a literal
		// ("01", "1.", "truex") is refused here.
		if i = jsonscan.Space(data, i); i == len(data) {
			return req, 0, false
		}
		switch data[i] {
		case ',':
			i = jsonscan.Space(data, i+1)
			continue
		case '}':
			return req, i + 1, true
		}
		return req, 0, false
	}
}

// strCache keeps the last string fastEnqueue made of each field that
// mostly repeats from job to job of a batch or a stream, so that alike jobs
// share one string, not one each; nil keeps none from call to call. It
// belongs to one goroutine.
type strCache struct{ queue, typ, delay, timeout string }

// keep returns s as a string: *last if it holds those bytes, else a new
// string that it keeps in *last.
func keep(last *string, s []byte) string {
	if string(s) != *last {
		*last = string(s)
	}
	return *last
}

// Classes of a byte inside a JSON string (strClass).
const (
	strEnd   = iota // '"', '\\' or a control character: the plain run ends
	strASCII        // a printable ASCII byte
	strHigh         // a byte of a multi-byte UTF-8 sequence, or not UTF-8
)

// strClass classifies each byte inside a JSON string.
var strClass = func() (t [256]uint8) {
	for c := 0x20; c < 256; c++ {
		switch {
		case c == '"' || c == '\\':
		case c < utf8.RuneSelf:
			t[c] = strASCII
		default:
			t[c] = strHigh
		}
	}
	return t
}()

// plainString reads the JSON string at data[i], which must have no escape,
// no control character and only valid UTF-8: its contents, which are then
// its value, and the index after it.
func plainString(data []byte, i int) (s []byte, next int, ok bool) {
	if i == len(data) || data[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	j := i + 1
	for ; j < len(data); j++ {
		switch strClass[data[j]] {
		case strASCII:
			continue
		case strHigh:
			ascii = false
			continue
		}
		break
	}
	if j == len(data) || data[j] != '"' {
		return nil, 0, false
	}
	s = data[i+1 : j]
	if !ascii && !utf8.Valid(s) {
		return nil, 0, false
	}
	return s, j + 1, true
}

// plainInt reads the JSON number at data[i] when it is an integer of at
// most 18 digits without a sign or leading zeros but "0", or the negative
// of one that is not 0. The caller checks that a delimiter follows it.
func plainInt(data []byte, i int) (n int64, next int, ok bool) {
	neg := i < len(data) && data[i] == '-'
	if neg {
		i++
	}
	j := i
	for ; j < len(data) && data[j] >= '0' && data[j] <= '9'; j++ {
		n = n*10 + int64(data[j]-'0')
		if j-i == 18 {
			return 0, 0, false
		}
	}
	switch {
	case j == i: // no digit
		return 0, 0, false
	case data[i] == '0' && (j-i > 1 || neg): // leading zero, -0
		return 0, 0, false
	case j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E'):
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, j, true
}

// batchElems reads a batch body of exactly the shape
//
//	{"jobs":[elem,elem,...]}
//
// (whitespace wherever JSON allows it, the key byte for byte "jobs" and no
// other key), validating it as json.Valid would: it calls elem for each
// element, k from 0, starting at body[i], and elem validates the element
// and returns the index after it, or !ok. It returns the number of
// elements.
//
// Any other shape, and any invalid JSON, answers !ok, and the caller
// decodes body with decodeStrict: encoding/json matches keys
// case-insensitively, takes the last of duplicates, reads null as no jobs,
// and it words the errors.
func batchElems(body []byte, elem func(k, i int) (next int, ok bool)) (n int, ok bool) {
	i := jsonscan.Space(body, 0)
	if i == len(body) || body[i] != '{' {
		return 0, false
	}
	key, i, ok := plainString(body, jsonscan.Space(body, i+1))
	if !ok || string(key) != "jobs" {
		return 0, false
	}
	if i = jsonscan.Space(body, i); i == len(body) || body[i] != ':' {
		return 0, false
	}
	if i = jsonscan.Space(body, i+1); i == len(body) || body[i] != '[' {
		return 0, false
	}
	if i = jsonscan.Space(body, i+1); i < len(body) && body[i] == ']' {
		i++ // no jobs
	} else {
		for {
			if i, ok = elem(n, i); !ok {
				return 0, false
			}
			n++
			if i = jsonscan.Space(body, i); i == len(body) {
				return 0, false
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] != ',' {
				return 0, false
			}
			i = jsonscan.Space(body, i+1)
		}
	}
	if i = jsonscan.Space(body, i); i == len(body) || body[i] != '}' {
		return 0, false
	}
	return n, jsonscan.Space(body, i+1) == len(body)
}
