package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beaver-raft/beaver-raft/api"
)

// readBody checks the Content-Type (application/json or none, else 415)
// and reads the body: at most MaxRequest bytes (413), within the read
// deadline that the router set (408), and valid UTF-8 (400).
//
// Once the whole body is read the read deadline is lifted: a long poll
// waits after reading, and a deadline left on the connection would cancel
// its context when it fires. (net/http lifts it too when the body reaches
// EOF; this does not rely on it.) On an error the deadline stays, so the
// server's discarding of an unread body is bounded by it too.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return a.readBodyInto(w, r, nil)
}

// readBodyInto is readBody into buf's array when it is large enough.
func (a *API) readBodyInto(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, &httpError{status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMediaType,
				msg: fmt.Sprintf("Content-Type must be application/json, not %q", ct)}
		}
	}
	limit := a.o.MaxRequest
	if r.ContentLength > limit {
		return nil, tooLargef("request body is %d bytes, more than the limit of %d bytes", r.ContentLength, limit)
	}
	bb := bytes.NewBuffer(buf[:0])
	if r.ContentLength > 0 {
		bb.Grow(int(r.ContentLength) + bytes.MinRead) // one allocation, not io.ReadAll's doublings
	}
	_, err := bb.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	b := bb.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, tooLargef("request body is larger than the limit of %d bytes", mbe.Limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			return nil, &httpError{status: http.StatusRequestTimeout, code: codeRequestTimeout,
				msg: fmt.Sprintf("the request body did not arrive within %v", a.o.ReadTimeout)}
		}
		return nil, invalidf("reading the request body: %v", err)
	}
	http.NewResponseController(w).SetReadDeadline(time.Time{}) // ErrNotSupported by recorders: no deadline to lift
	if off := invalidUTF8(b); off >= 0 {
		where := jsonPath(b[:off])
		if where == "" {
			where = subject("")
		}
		return nil, invalidf("%s: invalid UTF-8 at byte %d: JSON text must be UTF-8", where, off)
	}
	return b, nil
}

// invalidUTF8 returns the offset of the first byte of b that is not valid
// UTF-8, or -1 if all of b is. encoding/json would replace such bytes with
// U+FFFD in strings and keep them as they are in raw payloads and results.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// decodeBody reads a required JSON object into v.
func (a *API) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(b, v, "")
}

// decodeOptionalBody is decodeBody for calls whose body may be empty.
func (a *API) decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return decodeStrict(b, v, "")
}

// decodeStrict decodes exactly one JSON value from data into v, refusing
// unknown fields and trailing data. Its errors are 400s naming the field,
// prefixed by prefix (e.g. "jobs[3]").
func decodeStrict(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			te.Field = jsonFieldPath(reflect.TypeOf(v), te.Field)
		}
		return decodeError(err, data, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("%s: unexpected data after the JSON value", subject(prefix))
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		// encoding/json leaves v as it is for null: it would pass for {}.
		return invalidf("%s must be a JSON object, not null", subject(prefix))
	}
	return nil
}

// boundedList is a JSON array that is decoded only when it holds at most
// max elements; otherwise only its length n is kept. A hostile batch
// (megabytes of "1,") then costs its body and no more: decoded, each
// element would be a separate allocation many times its size.
type boundedList[T any] struct {
	max   int
	n     int // elements of the array (0 for null or absent)
	items []T // the elements, when n <= max
}

func (l *boundedList[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b) // encoding/json hands over one valid JSON value
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] != '[' {
		return &json.UnmarshalTypeError{Value: jsonKind(b[0]), Type: reflect.TypeFor[[]T]()}
	}
	if l.n = countElems(b); l.n > l.max {
		return nil
	}
	return json.Unmarshal(b, &l.items)
}

// countElems counts the elements of the JSON array b, which must be valid
// JSON, without decoding them.
func countElems(b []byte) int {
	n, depth := 0, 0
	inStr, esc, empty := false, false, true
	for _, c := range b[1:] {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the end of the array
				if !empty {
					n++
				}
				return n
			}
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
		empty = false
	}
	return n
}

// jsonKind names the kind of the JSON value that starts with c, as
// json.UnmarshalTypeError does.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

func subject(prefix string) string {
	if prefix == "" {
		return "request body"
	}
	return prefix
}

// decodeError turns an error of json.Decoder into a 400 naming the field.
func decodeError(err error, data []byte, prefix string) *httpError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalidf("%s is empty: send a JSON object", subject(prefix))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		msg := err.Error()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "unexpected end of input"
		}
		if p := jsonPath(data); p != "" {
			return invalidf("%s: invalid JSON: %s", field(prefix, p), msg)
		}
		return invalidf("%s is not valid JSON: %s", subject(prefix), msg)
	case errors.As(err, &te):
		if te.Field == "" {
			return invalidf("%s must be a JSON object, not %s", subject(prefix), te.Value)
		}
		return invalidf("%s: expected %s, got %s", field(prefix, te.Field), kindName(te.Type), te.Value)
	}
	// Other errors of encoding/json (an unknown field) read well without
	// their package prefix.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if prefix != "" {
		msg = prefix + ": " + msg
	}
	return invalidf("%s", msg)
}

// jsonFieldPath drops from a field path of json.UnmarshalTypeError the
// names of embedded structs, which are Go names, not JSON keys (a field of
// api.EnqueueRequest inside enqueueWire is "EnqueueRequest.priority").
func jsonFieldPath(t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return path
	}
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.Anonymous && f.Tag.Get("json") == "" {
			path = strings.Replace(path, f.Name+".", "", 1)
		}
	}
	return path
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return "a " + strconv.Itoa(t.Bits()) + "-bit integer"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// jsonPath follows at most maxPathDepth levels of nesting in its path
// (deeper, the path ends in "..."), and stops reading at maxJSONDepth, where
// encoding/json stops too. Both keep the work, the memory and the message
// small for a hostile body (megabytes of "[").
const (
	maxPathDepth = 32
	maxJSONDepth = 10_000
)

// jsonPath returns where in data the first syntax error is, as a field path
// ("jobs[3].payload"), or "" for the top level.
func jsonPath(data []byte) string {
	type frame struct {
		object  bool
		wantKey bool // object: the next string token is a key
		key     string
		index   int
	}
	var stack []frame
	deep := 0 // levels of nesting below the frames of stack
	valueDone := func() {
		if n := len(stack); n > 0 {
			if f := &stack[n-1]; f.object {
				f.wantKey = true
			} else {
				f.index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for len(stack)+deep <= maxJSONDepth {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case json.Delim:
			switch {
			case (t == '{' || t == '[') && len(stack) == maxPathDepth:
				deep++
			case t == '{' || t == '[':
				stack = append(stack, frame{object: t == '{', wantKey: t == '{'})
			case deep > 0:
				if deep--; deep == 0 {
					valueDone()
				}
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if deep > 0 {
				continue
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				stack[n-1].key, stack[n-1].wantKey = t, false
				continue
			}
			valueDone()
		default:
			if deep == 0 {
				valueDone()
			}
		}
	}
	var b strings.Builder
	for _, f := range stack {
		switch {
		case f.object && !f.wantKey:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		case !f.object:
			fmt.Fprintf(&b, "[%d]", f.index)
		}
	}
	if deep > 0 {
		b.WriteString("...")
	}
	return b.String()
}

// parseDuration parses a Go duration string of field name; empty gives def.
// Negative durations, and durations over limit, are refused.
func parseDuration(name, s string, def, limit time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalidf("%s: %v", name, err)
	}
	if d < 0 {
		return 0, invalidf("%s must not be negative", name)
	}
	if d > limit {
		return 0, invalidf("%s must be at most %v", name, limit)
	}
	return d, nil
}

// parseID parses a job or lease id: a decimal string.
func parseID(name, s string) (uint64, error) {
	if s == "" {
		return 0, invalidf("%s is required", name)
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalidf("%s must be a decimal id, not %q", name, s)
	}
	return id, nil
}

// pathID is the {id} of the route.
func pathID(r *http.Request) (uint64, error) { return parseID("id", r.PathValue("id")) }

func formatID(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

// Cursors of GET /v1/jobs are opaque to clients: a version byte that says
// the order of the list, and the id after which (oldest first) or before
// which (newest first, order=desc) the next page starts, base64url encoded.
const (
	cursorVersion     = 1
	cursorVersionDesc = 2
)

func encodeCursor(id uint64, desc bool) string {
	if id == 0 {
		return ""
	}
	v := byte(cursorVersion)
	if desc {
		v = cursorVersionDesc
	}
	return base64.RawURLEncoding.EncodeToString(binary.AppendUvarint([]byte{v}, id))
}

func decodeCursor(s string, desc bool) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	want, other := byte(cursorVersion), byte(cursorVersionDesc)
	if desc {
		want, other = other, want
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) > 1 && (b[0] == want || b[0] == other) {
		if id, n := binary.Uvarint(b[1:]); n == len(b)-1 {
			if b[0] == other {
				return 0, invalidf("cursor %q belongs to a list in the other order: pass the same order as for the previous page", s)
			}
			return id, nil
		}
	}
	return 0, invalidf("cursor %q is not valid: pass next_cursor of a previous page", s)
}
