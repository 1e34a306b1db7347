package httpapi

import (
	"math"
	"unicode/utf8"
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
//   - any valid JSON value but null, at most skipDepth deep, for payload
//     and run_at (json.RawMessage), kept byte for byte;
//   - integers written as -?[1-9][0-9]{0,17} or 0, in range, for priority
//     (int32) and max_attempts (int).
//
// Payload and RunAt of req alias data (decodeStrict copies them). When not
// ok, req is the zero enqueueWire, ready for decodeStrict.
func fastDecodeEnqueue(data []byte, c *strCache) (enqueueWire, bool) {
	if req, j, ok := fastEnqueue(data, skipSpace(data, 0), c); ok && skipSpace(data, j) == len(data) {
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
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return req, i + 1, true
	}
	var seen uint
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return req, 0, false
		}
		if i = skipSpace(data, j); i == len(data) || data[i] != ':' {
			return req, 0, false
		}
		i = skipSpace(data, i+1)
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
			j, ok := skipValue(data, i)
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
		if i = skipSpace(data, i); i == len(data) {
			return req, 0, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
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

// skipSpace returns the index of the first byte of data at or after i that
// is not JSON whitespace.
func skipSpace(data []byte, i int) int {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return i
		}
	}
	return i
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

// skipDepth bounds the nesting that skipValue follows: deeper values go to
// decodeStrict (encoding/json stops at 10,000 levels; no payload of a
// job needs 256).
const skipDepth = 256

// skipValue validates the JSON value at data[i] exactly as json.Valid
// would (strings may hold bytes that are not UTF-8, as json.Valid allows
// and a json.RawMessage keeps) and returns the index after it. It answers
// !ok for anything else, and for a value nested more than skipDepth deep.
// What follows the value is the caller's to check.
func skipValue(data []byte, i int) (next int, ok bool) {
	var object [skipDepth]bool // of each open container: an object
	depth := 0
	for {
		// At the start of a value.
		if i == len(data) {
			return 0, false
		}
		switch c := data[i]; c {
		case '{', '[':
			if depth == skipDepth {
				return 0, false
			}
			object[depth] = c == '{'
			depth++
			if i = skipSpace(data, i+1); i < len(data) && data[i] == c+2 { // '}', ']'
				i++
				depth--
				break
			}
			if c == '{' {
				if i, ok = skipKey(data, i); !ok {
					return 0, false
				}
			}
			continue
		case '"':
			if i, ok = skipString(data, i); !ok {
				return 0, false
			}
		case 't':
			if i, ok = skipLiteral(data, i, "true"); !ok {
				return 0, false
			}
		case 'f':
			if i, ok = skipLiteral(data, i, "false"); !ok {
				return 0, false
			}
		case 'n':
			if i, ok = skipLiteral(data, i, "null"); !ok {
				return 0, false
			}
		default:
			if i, ok = skipNumber(data, i); !ok {
				return 0, false
			}
		}
		// After a value: close the containers it ends, up to the next
		// value of the innermost one that goes on.
		for {
			if depth == 0 {
				return i, true
			}
			if i = skipSpace(data, i); i == len(data) {
				return 0, false
			}
			c := data[i]
			if c == ',' {
				if i = skipSpace(data, i+1); object[depth-1] {
					if i, ok = skipKey(data, i); !ok {
						return 0, false
					}
				}
				break
			}
			if c != '}' && c != ']' || (c == '}') != object[depth-1] {
				return 0, false
			}
			i++
			depth--
		}
	}
}

// skipKey skips the key at data[i] of an object, the colon after it and
// the whitespace around that, to the start of its value.
func skipKey(data []byte, i int) (next int, ok bool) {
	if i, ok = skipString(data, i); !ok {
		return 0, false
	}
	if i = skipSpace(data, i); i == len(data) || data[i] != ':' {
		return 0, false
	}
	return skipSpace(data, i+1), true
}

// skipString validates the JSON string at data[i] as json.Valid does (its
// escapes, no control character) and returns the index after it.
func skipString(data []byte, i int) (next int, ok bool) {
	if i == len(data) || data[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(data); j++ {
		if strClass[data[j]] != strEnd {
			continue
		}
		switch data[j] {
		case '"':
			return j + 1, true
		case '\\':
			if j++; j == len(data) {
				return 0, false
			}
			switch data[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(data) || !isHex(data[j+1]) || !isHex(data[j+2]) || !isHex(data[j+3]) || !isHex(data[j+4]) {
					return 0, false
				}
				j += 4
			default:
				return 0, false
			}
		default: // a control character
			return 0, false
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipLiteral skips lit (true, false or null) at data[i].
func skipLiteral(data []byte, i int, lit string) (next int, ok bool) {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// skipNumber skips the JSON number at data[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(data []byte, i int) (next int, ok bool) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i == len(data):
		return 0, false
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return 0, false
	}
	if i < len(data) && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
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
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return 0, false
	}
	key, i, ok := plainString(body, skipSpace(body, i+1))
	if !ok || string(key) != "jobs" {
		return 0, false
	}
	if i = skipSpace(body, i); i == len(body) || body[i] != ':' {
		return 0, false
	}
	if i = skipSpace(body, i+1); i == len(body) || body[i] != '[' {
		return 0, false
	}
	if i = skipSpace(body, i+1); i < len(body) && body[i] == ']' {
		i++ // no jobs
	} else {
		for {
			if i, ok = elem(n, i); !ok {
				return 0, false
			}
			n++
			if i = skipSpace(body, i); i == len(body) {
				return 0, false
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] != ',' {
				return 0, false
			}
			i = skipSpace(body, i+1)
		}
	}
	if i = skipSpace(body, i); i == len(body) || body[i] != '}' {
		return 0, false
	}
	return n, skipSpace(body, i+1) == len(body)
}
