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
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// readBody checks the Content-Type (application/json or none, else 415)
// and reads the body, at most MaxRequest bytes (413).
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
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
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLargef("request body is larger than the limit of %d bytes", mbe.Limit)
		}
		return nil, invalidf("reading the request body: %v", err)
	}
	return b, nil
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
	return nil
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
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				stack[n-1].key, stack[n-1].wantKey = t, false
				continue
			}
			valueDone()
		default:
			valueDone()
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

// Cursors of GET /v1/jobs are opaque to clients: a version byte and the id
// after which the next page starts, base64url encoded.
const cursorVersion = 1

func encodeCursor(after uint64) string {
	if after == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(binary.AppendUvarint([]byte{cursorVersion}, after))
}

func decodeCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) > 1 && b[0] == cursorVersion {
		if after, n := binary.Uvarint(b[1:]); n == len(b)-1 {
			return after, nil
		}
	}
	return 0, invalidf("cursor %q is not valid: pass next_cursor of a previous page", s)
}
