package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
)

// The input of enqueue --file: a JSON array of jobs, or JSON Lines (one job
// object per line, blank lines ignored), told apart by the first byte that
// is not white space. Every job is decoded strictly (no unknown fields) and
// checked as the server checks it, so that a file with one bad job sends
// nothing.

// inputJob is one job of an input file.
type inputJob struct {
	req  api.EnqueueRequest
	line int // line of the file where the job starts, from 1
}

// jobFile is a parsed input file.
type jobFile struct {
	name  string // for messages: the path, or "stdin"
	path  string // the path as given, "" for stdin
	array bool   // a JSON array, else JSON Lines
	jobs  []inputJob
}

// problem is an invalid job of an input file (or a syntax error that
// stopped its reading).
type problem struct {
	line int
	msg  string
}

// parseJobs parses the jobs of data. It returns every problem it found
// (reading stops at a syntax error of a JSON array, which hides what comes
// after it).
func parseJobs(data []byte) (jobs []inputJob, array bool, problems []problem) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if first := bytes.TrimLeft(data, " \t\r\n"); len(first) > 0 && first[0] == '[' {
		jobs, problems = parseArray(data)
		return jobs, true, problems
	}
	jobs, problems = parseLines(data)
	return jobs, false, problems
}

// parseLines parses JSON Lines: one job object per line.
func parseLines(data []byte) (jobs []inputJob, problems []problem) {
	for line := 1; len(data) > 0; line++ {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		req, err := decodeJob(l)
		if err != nil {
			problems = append(problems, problem{line, err.Error()})
			continue
		}
		jobs = append(jobs, inputJob{req: req, line: line})
	}
	return jobs, problems
}

// parseArray parses a JSON array of job objects. Messages name the element
// by its index from 0, and give the line where it starts.
func parseArray(data []byte) (jobs []inputJob, problems []problem) {
	dec := json.NewDecoder(bytes.NewReader(data))
	syntax := func(err error) []problem {
		line := lineAt(data, len(data))
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line = lineAt(data, int(se.Offset))
		}
		return append(problems, problem{line, jsonProblem(err)})
	}
	if _, err := dec.Token(); err != nil { // the '['
		return nil, syntax(err)
	}
	for i := 0; dec.More(); i++ {
		start := int(dec.InputOffset())
		for start < len(data) && strings.IndexByte(" \t\r\n,", data[start]) >= 0 {
			start++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return jobs, syntax(err)
		}
		line := lineAt(data, start)
		req, err := decodeJob(raw)
		if err != nil {
			problems = append(problems, problem{line, fmt.Sprintf("element %d: %v", i, err)})
			continue
		}
		jobs = append(jobs, inputJob{req: req, line: line})
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return jobs, syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		line := lineAt(data, int(dec.InputOffset()))
		if err != nil {
			return jobs, syntax(err)
		}
		return jobs, append(problems, problem{line, "invalid JSON: data after the end of the array"})
	}
	return jobs, problems
}

// lineAt is the line (from 1) of byte offset off of data.
func lineAt(data []byte, off int) int {
	return 1 + bytes.Count(data[:min(max(off, 0), len(data))], []byte("\n"))
}

// decodeJob decodes one job object strictly and checks it.
func decodeJob(raw []byte) (api.EnqueueRequest, error) {
	var req api.EnqueueRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, errors.New(jsonProblem(err))
	}
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) > 0 {
		return req, errors.New("invalid JSON: data after the job object")
	}
	return req, checkJob(&req)
}

// jsonProblem words an error of the JSON decoder.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch {
	case errors.As(err, &se):
		return "invalid JSON: " + se.Error()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "invalid JSON: unexpected end of input"
	case errors.As(err, &te):
		if te.Field == "" {
			return "a job must be a JSON object, got " + jsonKind(te.Value)
		}
		return fmt.Sprintf("%s: expected %s, got %s", te.Field, goKind(te.Type), jsonKind(te.Value))
	case errors.As(err, &pe):
		return "run_at: expected an RFC 3339 time such as 2026-01-02T15:04:05Z: " + pe.Error()
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind words the Value of a json.UnmarshalTypeError ("string",
// "number 1.5", ...).
func jsonKind(v string) string {
	switch {
	case v == "array", v == "object":
		return "an " + v
	case v == "":
		return "another type"
	}
	return "a " + v
}

// goKind words the Go type a JSON value did not fit.
func goKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return fmt.Sprintf("a %d-bit integer", t.Bits())
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return "an RFC 3339 time string"
		}
		return "an object"
	}
	return t.String()
}

// checkJob checks a job with the server's own builder, so that a file is
// refused as a whole before anything is sent. The limits that are the
// server's configuration (payload size, queue depth) are left to it.
func checkJob(req *api.EnqueueRequest) error {
	in := jobspec.Input{Queue: req.Queue, Type: req.Type, MaxAttempts: req.MaxAttempts, UniqueKey: req.UniqueKey, RunAt: req.RunAt}
	var err error
	if in.Delay, err = jobspec.ParseDuration("delay", req.Delay); err != nil {
		return err
	}
	if in.Timeout, err = jobspec.ParseDuration("timeout", req.Timeout); err != nil {
		return err
	}
	if in.UniqueFor, err = jobspec.ParseDuration("unique_for", req.UniqueFor); err != nil {
		return err
	}
	if req.Timeout != "" && in.Timeout == 0 {
		return fmt.Errorf("timeout must be positive, got %q", req.Timeout)
	}
	b := jobspec.Builder{MaxPayload: math.MaxInt64}
	_, err = b.Build(&in, time.Now(), 0)
	return err
}
