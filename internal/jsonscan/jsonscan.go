// Package jsonscan validates and delimits JSON values in place, exactly as
// encoding/json's json.Valid accepts them, without decoding them: the fast
// paths of the server's decoders and of the client's encoders use it to
// vouch for the bytes they pass on as they are.
package jsonscan

// plain tells the bytes that a JSON string holds as they are: not '"',
// '\\' or a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Space returns the index of the first byte of data at or after i that is
// not JSON whitespace.
func Space(data []byte, i int) int {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return i
		}
	}
	return i
}

// MaxDepth bounds the nesting that Value follows (encoding/json stops at
// 10,000 levels; no payload of a job needs 256): a caller gives deeper
// values to encoding/json.
const MaxDepth = 256

// Value validates the JSON value at data[i] exactly as json.Valid would
// (strings may hold bytes that are not UTF-8, as json.Valid allows and a
// json.RawMessage keeps) and returns the index after it. It answers !ok
// for anything else, and for a value nested more than MaxDepth deep. What
// follows the value is the caller's to check.
func Value(data []byte, i int) (next int, ok bool) {
	var object [MaxDepth]bool // of each open container: an object
	depth := 0
	for {
		// At the start of a value.
		if i == len(data) {
			return 0, false
		}
		switch c := data[i]; c {
		case '{', '[':
			if depth == MaxDepth {
				return 0, false
			}
			object[depth] = c == '{'
			depth++
			if i = Space(data, i+1); i < len(data) && data[i] == c+2 { // '}', ']'
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
			if i = Space(data, i); i == len(data) {
				return 0, false
			}
			c := data[i]
			if c == ',' {
				if i = Space(data, i+1); object[depth-1] {
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
	if i = Space(data, i); i == len(data) || data[i] != ':' {
		return 0, false
	}
	return Space(data, i+1), true
}

// skipString validates the JSON string at data[i] as json.Valid does (its
// escapes, no control character) and returns the index after it.
func skipString(data []byte, i int) (next int, ok bool) {
	if i == len(data) || data[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(data); j++ {
		if plain[data[j]] {
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
