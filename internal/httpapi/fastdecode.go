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
// encoding/json. data must be valid JSON (json.Valid): the values of
// payload and run_at are delimited, not validated, under that assumption.
//
// When ok, req is exactly what decodeStrict(data, &req, prefix) decodes,
// and decodeStrict would not fail. Anything it does not handle exactly
// answers !ok, never an error: the caller then decodes data with
// decodeStrict, which gives the answer and its error. It handles:
//
//   - an object (whitespace around it and its tokens), each key at most
//     once and byte for byte one of the keys of enqueueWire (encoding/json
//     also matches keys case-insensitively and takes the last of
//     duplicates: those go to decodeStrict, as do unknown keys);
//   - strings without escapes, of valid UTF-8 (encoding/json would
//     replace invalid bytes with U+FFFD), for queue, type, delay, timeout
//     and unique_key;
//   - any value but null for payload and run_at (json.RawMessage), kept
//     byte for byte;
//   - integers written as -?[1-9][0-9]{0,17} or 0, in range, for priority
//     (int32) and max_attempts (int).
//
// Payload and RunAt of req alias data (decodeStrict copies them). When not
// ok, req is the zero enqueueWire, ready for decodeStrict.
func fastDecodeEnqueue(data []byte) (enqueueWire, bool) {
	if req, ok := fastEnqueue(data); ok {
		return req, true
	}
	return enqueueWire{}, false
}

func fastEnqueue(data []byte) (req enqueueWire, ok bool) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return req, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return req, skipSpace(data, i+1) == len(data)
	}
	var seen uint
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return req, false
		}
		if i = skipSpace(data, j); i == len(data) || data[i] != ':' {
			return req, false
		}
		i = skipSpace(data, i+1)
		var bit uint
		switch string(key) {
		case "queue", "type", "delay", "timeout", "unique_key":
			s, j, ok := plainString(data, i)
			if !ok {
				return req, false
			}
			switch string(key) {
			case "queue":
				bit, req.Queue = fkQueue, string(s)
			case "type":
				bit, req.Type = fkType, string(s)
			case "delay":
				bit, req.Delay = fkDelay, string(s)
			case "timeout":
				bit, req.Timeout = fkTimeout, string(s)
			default:
				bit, req.UniqueKey = fkUniqueKey, string(s)
			}
			i = j
		case "payload", "run_at":
			raw, j, ok := rawValue(data, i)
			if !ok || string(raw) == "null" {
				return req, false
			}
			if key[0] == 'p' {
				bit, req.Payload = fkPayload, raw
			} else {
				bit, req.RunAt = fkRunAt, raw
			}
			i = j
		case "priority":
			n, j, ok := plainInt(data, i)
			if !ok || n < math.MinInt32 || n > math.MaxInt32 {
				return req, false
			}
			bit, req.Priority, i = fkPriority, int32(n), j
		case "max_attempts":
			n, j, ok := plainInt(data, i)
			if !ok || int64(int(n)) != n {
				return req, false
			}
			bit, req.MaxAttempts, i = fkMaxAttempts, int(n), j
		default:
			return req, false
		}
		if seen&bit != 0 {
			return req, false
		}
		seen |= bit
		if i = skipSpace(data, i); i == len(data) {
			return req, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
			continue
		case '}':
			return req, skipSpace(data, i+1) == len(data)
		}
		return req, false
	}
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

// plainString reads the JSON string at data[i], which must have no escape,
// no control character and only valid UTF-8: its contents, which are then
// its value, and the index after it.
func plainString(data []byte, i int) (s []byte, next int, ok bool) {
	if i == len(data) || data[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			s = data[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// plainInt reads the JSON number at data[i] when it is an integer of at
// most 18 digits without a sign or leading zeros but "0", or the negative
// of one that is not 0.
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

// rawValue delimits the JSON value at data[i], which valid JSON must hold,
// and returns its bytes and the index after it.
func rawValue(data []byte, i int) (raw []byte, next int, ok bool) {
	if i == len(data) {
		return nil, 0, false
	}
	switch data[i] {
	case '"':
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '\\':
				j++
			case '"':
				return data[i : j+1], j + 1, true
			}
		}
		return nil, 0, false
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				for j++; j < len(data) && data[j] != '"'; j++ {
					if data[j] == '\\' {
						j++
					}
				}
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return data[i : j+1], j + 1, true
				}
			}
		}
		return nil, 0, false
	}
	// A number, true, false or null: it ends at a delimiter.
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return data[i:j], j, true
		}
		j++
	}
	return data[i:j], j, j > i
}

// batchElems finds the jobs of a batch body of exactly the shape
//
//	{"jobs":[elem,elem,...]}
//
// (whitespace wherever JSON allows it, the key byte for byte "jobs" and no
// other key) and returns the elements, in place in body, and how many
// there are. body must be valid JSON (json.Valid): each element is then
// delimited by one scan of its bytes (rawValue), not validated. Past max
// elements it only counts them, as boundedList does: a hostile batch
// (megabytes of "1,") costs that scan and no memory.
//
// Any other shape answers !ok, and the caller decodes body with
// decodeStrict: encoding/json matches keys case-insensitively, takes the
// last of duplicates, reads null as no jobs, and it words the errors.
func batchElems(body []byte, max int) (elems [][]byte, n int, ok bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return nil, 0, false
	}
	key, i, ok := plainString(body, skipSpace(body, i+1))
	if !ok || string(key) != "jobs" {
		return nil, 0, false
	}
	if i = skipSpace(body, i); i == len(body) || body[i] != ':' {
		return nil, 0, false
	}
	if i = skipSpace(body, i+1); i == len(body) || body[i] != '[' {
		return nil, 0, false
	}
	if i = skipSpace(body, i+1); i < len(body) && body[i] == ']' {
		i++ // no jobs
	} else {
		for {
			elem, j, ok := rawValue(body, i)
			if !ok {
				return nil, 0, false
			}
			if n++; n <= max {
				elems = append(elems, elem)
			}
			if i = skipSpace(body, j); i == len(body) {
				return nil, 0, false
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] != ',' {
				return nil, 0, false
			}
			i = skipSpace(body, i+1)
		}
	}
	if i = skipSpace(body, i); i == len(body) || body[i] != '}' {
		return nil, 0, false
	}
	return elems, n, skipSpace(body, i+1) == len(body)
}
