package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jsonscan"
)

// batchCases are bodies of POST /v1/jobs/batch for the differential test
// of batchSpecsFast against batchSpecsStrict (with fuzzOptions: at most 8
// jobs), and whether the fast path must answer them itself: a fast path
// that gave everything up would agree with the strict one too.
var batchCases = []struct {
	body string
	fast bool
}{
	// the common shape, with whitespace wherever JSON allows it
	{`{"jobs":[{"type":"t"}]}`, true},
	{`{"jobs":[{"queue":"q","type":"t","payload":{"a":[1,{"b":"]}"}]},"priority":-3,"run_at":"2031-01-02T03:04:05Z","max_attempts":4,"timeout":"1m","unique_key":"k"},{"type":"u","delay":"5s"}]}`, true},
	{" \t\r\n{ \n\"jobs\" \t:\r [ \n{\"type\":\"t\"} \n, {\"type\":\"u\"}\t] \r} \n", true},
	{`{"jobs":[ {"type":"t"},{"type":"t"} ,{"type":"t"}]}`, true},
	// strings with escapes and unicode, inside the jobs and their payloads
	{`{"jobs":[{"type":"t","payload":"a \"b\" \\ \u00e9 } ] , {"}]}`, true},
	{`{"jobs":[{"type":"t","payload":{"k\"]}":"v\\\\"}},{"type":"t"}]}`, true},
	{`{"jobs":[{"type":"t\u0041"},{"type":"\/t"}]}`, true},
	{`{"jobs":[{"type":"t","unique_key":"héllo ✓ 😀"},{"type":"t","unique_key":"\ud83d\ude00"}]}`, true},
	{`{"jobs":[{"type":"t","payload":"\u00e9\ud83d\ude00"}]}`, true},
	// nested payloads, and payloads of every kind
	{`{"jobs":[{"type":"t","payload":[[[[{"x":[{}]}]]]]},{"type":"t","payload":[]},{"type":"t","payload":{}}]}`, true},
	{`{"jobs":[{"type":"t","payload":-1.5e+10},{"type":"t","payload":true},{"type":"t","payload":null},{"type":"t","payload":"s"}]}`, true},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}`, true},
	// jobs the element fast path refuses: decodeStrict decodes them, or
	// names them in its error ("jobs[1]: ...")
	{`{"jobs":[{"type":"t"},{"TYPE":"t","Priority":1}]}`, true},
	{`{"jobs":[{"type":"t"},{"type":"t","foo":1}]}`, true},
	{`{"jobs":[{"type":"t"},{"type":"a","type":"b"}]}`, true},
	{`{"jobs":[{"type":"t"},null]}`, true},
	{`{"jobs":[{"type":"t"},1]}`, true},
	{`{"jobs":[{"type":"t"},"t"]}`, true},
	{`{"jobs":[{"type":"t"},[{"type":"t"}]]}`, true},
	{`{"jobs":[{"type":5}]}`, true},
	{`{"jobs":[{"type":"t","priority":"1"}]}`, true},
	{`{"jobs":[{"type":"t","priority":1.5}]}`, true},
	{`{"jobs":[{"type":"t","priority":2147483648}]}`, true},
	{`{"jobs":[{"type":"t","max_attempts":[1]}]}`, true},
	{`{"jobs":[{"type":"t","payload":null,"queue":null,"run_at":null}]}`, true},
	{`{"jobs":[{"type":"t","depends_on_index":[0]}]}`, true},
	{`{"jobs":[{"type":"t"},{"type":"t","depends_on_index":[0]},{"type":"t","depends_on":["1"]}]}`, true},
	// jobs that decode but that the builder refuses: the first failing
	// job, decoding or building, gives the error
	{`{"jobs":[{"type":"t"},{"type":"bad type"}]}`, true},
	{`{"jobs":[{"type":"t","delay":"-1s"},{"type":"t","foo":1}]}`, true},
	{`{"jobs":[{"type":"t","foo":1},{"type":"t","delay":"-1s"}]}`, true},
	{`{"jobs":[{"Type":"t"},{"type":"bad type"}]}`, true},
	{`{"jobs":[{"Type":"t"},{"type":"t"},{"TYPE":"t"},{"type":"t","delay":"-1s"},{"Type":"t"}]}`, true},
	{`{"jobs":[{"Type":"t"},{"type":"t","delay":"-1s"},{"TYPE":"bad type"}]}`, true},
	{`{"jobs":[{"type":"t","run_at":"2030-01-01T00:00:00Z","delay":"1s"}]}`, true},
	{`{"jobs":[{"type":"t","run_at":17}]}`, true},
	{`{"jobs":[{"type":"t","payload":"` + strings.Repeat("x", 253) + `"}]}`, true},
	{`{"jobs":[{}]}`, true},
	// no jobs, and too many
	{`{"jobs":[]}`, true},
	{`{"jobs":[ ]}`, true},
	{`{"jobs":[{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"}]}`, true},
	{`{"jobs":[{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"}]}`, true},
	{`{"jobs":[1,2,3,4,5,6,7,8,9,10]}`, true},
	{`{"jobs":[{"foo":1},2,"3",[4],null,true,false,{},{}]}`, true},
	// every other shape goes to decodeStrict
	{`{"jobs":[{"type":"t"}],"jobs":[{"type":"u"}]}`, false},
	{`{"jobs":[{"type":"t"}],"Jobs":[{"type":"u"}]}`, false},
	{`{"JOBS":[{"type":"t"}]}`, false},
	{`{"Jobs":[{"Type":"t"}]}`, false},
	{`{"jo\u0062s":[{"type":"t"}]}`, false},
	{`{"jobs":[{"type":"t"}],"x":1}`, false},
	{`{"x":1,"jobs":[{"type":"t"}]}`, false},
	{`{"jobs":[],"x":1}`, false},
	{`{"jobs":null}`, false},
	{`{"jobs":{}}`, false},
	{`{"jobs":"t"}`, false},
	{`{"jobs":1}`, false},
	{`{}`, false},
	{`null`, false},
	{`[]`, false},
	{`[{"type":"t"}]`, false},
	{`"jobs"`, false},
	{``, false},
	{` `, false},
	// invalid JSON, and trailing data
	{`{`, false},
	{`{"jobs":[{"type":"t"}]`, false},
	{`{"jobs":[{"type":"t"},]}`, false},
	{`{"jobs":[{"type":"t"} {"type":"u"}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a":}}]}`, false},
	{`{"jobs":[{"type":"t"}]} {"jobs":[]}`, false},
	{`{"jobs":[{"type":"t"}]}]`, false},
	{`{"jobs":[{"type":"t"}]}x`, false},
	{`{"jobs":[` + strings.Repeat("[", 20000) + `]}`, false},
	{"{\"jobs\":[{\"type\":\"t\n\"}]}", false},
	// invalid JSON of every kind, in a job the fast path decodes, in its
	// payload, in a job for decodeStrict, past MaxBatch and around them:
	// all of it goes to decodeStrict, which words the error.
	// bad escapes
	{`{"jobs":[{"type":"t","payload":"\x"}]}`, false},
	{`{"jobs":[{"type":"t","payload":"\u12"}]}`, false},
	{`{"jobs":[{"type":"t","payload":"\u12g4"}]}`, false},
	{`{"jobs":[{"type":"t","payload":"\U0041"}]}`, false},
	{`{"jobs":[{"type":"t","payload":"\'"}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a\x":1}}]}`, false},
	{`{"jobs":[{"type":"t\x"}]}`, false},
	{`{"jobs":[{"ty\pe":"t"}]}`, false},
	{`{"jobs":[{"type":"t","payload":"\`, false},
	{`{"jobs":[{"type":"t","payload":"\u00`, false},
	{`{"jobs":[1,2,3,4,5,6,7,8,"\q"]}`, false},
	// raw control characters
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":\"a\x00b\"}]}", false},
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":\"\x1f\"}]}", false},
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":\"\t\"}]}", false},
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":{\"\n\":1}}]}", false},
	{"{\"jobs\":[{\"queue\":\"\x01\",\"type\":\"t\"}]}", false},
	{"{\"jobs\":[{\"ty\x7fpe\":\"t\"}]}", true}, // DEL is no control character: an unknown key
	{"{\"jobs\":[{\"Type\":\"t\x00\"}]}", false},
	{"{\"jo\x00bs\":[]}", false},
	// invalid UTF-8: json.Valid takes it, encoding/json keeps it in a
	// raw payload and replaces it with U+FFFD in a string
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":\"\xff\"}]}", true},
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":{\"\xc0\x80\":\"\xed\xa0\x80\"}}]}", true},
	{"{\"jobs\":[{\"type\":\"t\",\"payload\":\"\xe2\x82\"}]}", true},
	{"{\"jobs\":[{\"type\":\"t\",\"unique_key\":\"\xff\"}]}", true},
	{"{\"jobs\":[{\"type\":\"t\xff\"}]}", true},
	{"{\"jobs\":[{\"type\":\"t\",\"\xffpayload\":1}]}", true},
	{"{\"jobs\":[\"\xff\"]}", true},
	{"{\"jobs\":[{\"type\":\"t\"}]}\xff", false},
	{"\xff{\"jobs\":[{\"type\":\"t\"}]}", false},
	{"\xef\xbb\xbf{\"jobs\":[{\"type\":\"t\"}]}", false}, // a byte order mark
	// truncated
	{`{"jobs":[{"type":"t","payload":{"a":[1,2`, false},
	{`{"jobs":[{"type":"t","payload":"abc`, false},
	{`{"jobs":[{"type":"t","payload":tr`, false},
	{`{"jobs":[{"type":"t","payload":1`, false},
	{`{"jobs":[{"type":"t","priority":1`, false},
	{`{"jobs":[{"type":"t"`, false},
	{`{"jobs":[{"type":`, false},
	{`{"jobs":[{"type"`, false},
	{`{"jobs":[{"ty`, false},
	{`{"jobs":[{`, false},
	{`{"jobs":[`, false},
	{`{"jobs":`, false},
	{`{"jobs"`, false},
	{`{"jo`, false},
	{`{"jobs":[{"type":"t"},`, false},
	{`{"jobs":[{"type":"t"}]`, false},
	{`{"jobs":[1,2,3,4,5,6,7,8,9,10`, false},
	// trailing garbage, and missing or extra delimiters
	{`{"jobs":[{"type":"t"}]},`, false},
	{`{"jobs":[{"type":"t"}]}}`, false},
	{`{"jobs":[{"type":"t"}]}null`, false},
	{`{"jobs":[{"type":"t"}]}` + "\x00", false},
	{`{"jobs":[{"type":"t"}],}`, false},
	{`{"jobs":[{"type":"t"}}]}`, false},
	{`{"jobs":[{"type":"t",}]}`, false},
	{`{"jobs":[{"type":"t"]}]}`, false},
	{`{"jobs":[{"type":"t","payload":[1,]}]}`, false},
	{`{"jobs":[{"type":"t","payload":[1}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a":1]}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a":1,}}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a" 1}}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a"::1}}]}`, false},
	{`{"jobs":[{"type":"t","payload":{1:1}}]}`, false},
	{`{"jobs":[{"type":"t","payload":{,}}]}`, false},
	{`{"jobs":[{"type":"t","payload":[,]}]}`, false},
	{`{"jobs":[{"type":"t","payload":[1 2]}]}`, false},
	{`{"jobs":[{"type":"t","payload":1 2}]}`, false},
	{`{"jobs":[{"type":"t" "payload":1}]}`, false},
	{`{"jobs":[{"type""t"}]}`, false},
	{`{"jobs":[{"Type":"t",}]}`, false},
	{`{"jobs":[{"Type":"t"},]}`, false},
	{`{"jobs":[,{"type":"t"}]}`, false},
	{`{"jobs":[{"type":"t"},,{"type":"t"}]}`, false},
	{`{"jobs" [{"type":"t"}]}`, false},
	{`{,"jobs":[{"type":"t"}]}`, false},
	// bad numbers, in a payload, a priority and past MaxBatch
	{`{"jobs":[{"type":"t","payload":01}]}`, false},
	{`{"jobs":[{"type":"t","payload":1.}]}`, false},
	{`{"jobs":[{"type":"t","payload":.5}]}`, false},
	{`{"jobs":[{"type":"t","payload":-}]}`, false},
	{`{"jobs":[{"type":"t","payload":+1}]}`, false},
	{`{"jobs":[{"type":"t","payload":-01}]}`, false},
	{`{"jobs":[{"type":"t","payload":1e}]}`, false},
	{`{"jobs":[{"type":"t","payload":1e+}]}`, false},
	{`{"jobs":[{"type":"t","payload":1.e5}]}`, false},
	{`{"jobs":[{"type":"t","payload":0x10}]}`, false},
	{`{"jobs":[{"type":"t","payload":NaN}]}`, false},
	{`{"jobs":[{"type":"t","payload":Infinity}]}`, false},
	{`{"jobs":[{"type":"t","payload":[1,01]}]}`, false},
	{`{"jobs":[{"type":"t","payload":-0.0e-0}]}`, true},
	{`{"jobs":[{"type":"t","payload":1E+9}]}`, true},
	{`{"jobs":[{"type":"t","priority":01}]}`, false},
	{`{"jobs":[{"type":"t","priority":1.}]}`, false},
	{`{"jobs":[{"type":"t","priority":-}]}`, false},
	{`{"jobs":[{"type":"t","priority":--1}]}`, false},
	{`{"jobs":[{"type":"t","priority":1x}]}`, false},
	{`{"jobs":[{"type":"t","priority":1-}]}`, false},
	{`{"jobs":[{"type":"t","max_attempts":00}]}`, false},
	{`{"jobs":[{"type":"t","max_attempts":1e}]}`, false},
	{`{"jobs":[{"type":"t","priority":-0}]}`, true},
	{`{"jobs":[{"type":"t","priority":1e0}]}`, true},
	{`{"jobs":[1,2,3,4,5,6,7,8,9,01]}`, false},
	{`{"jobs":[1,2,3,4,5,6,7,8,9,1.]}`, false},
	{`{"jobs":[01]}`, false},
	{`{"jobs":[-]}`, false},
	// bad literals
	{`{"jobs":[{"type":"t","payload":tru}]}`, false},
	{`{"jobs":[{"type":"t","payload":True}]}`, false},
	{`{"jobs":[{"type":"t","payload":nul}]}`, false},
	{`{"jobs":[{"type":"t","payload":falsey}]}`, false},
	{`{"jobs":[{"type":"t","payload":[nulll]}]}`, false},
	{`{"jobs":[{"type":"t","payload":undefined}]}`, false},
	{`{"jobs":[nul]}`, false},
	{`{"jobs":[truefalse]}`, false},
	{`{"jobs":[{"type":"t","priority":tru}]}`, false},
	{`{"jobs":[{"type":"t","queue":nul}]}`, false},
	// deep nesting in a payload: up to jsonscan.MaxDepth on the fast path, deeper
	// through decodeStrict, and past encoding/json's limit refused
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 255) + strings.Repeat("]", 255) + `}]}`, true},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 256) + strings.Repeat("]", 256) + `}]}`, true},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 257) + strings.Repeat("]", 257) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat(`{"a":[`, 128) + "1" + strings.Repeat("]}", 128) + `}]}`, true},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat(`{"a":[`, 129) + "1" + strings.Repeat("]}", 129) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 9996) + strings.Repeat("]", 9996) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 300) + strings.Repeat("]", 299) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 100) + strings.Repeat("]", 101) + `}]}`, false},
	{`{"jobs":[{"type":"t","payload":` + strings.Repeat("[", 100) + strings.Repeat("}", 100) + `}]}`, false},
	{`{"jobs":[1,2,3,4,5,6,7,8,` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `]}`, false},
	// duplicate keys: of the body and of a job go to decodeStrict, of a
	// payload are valid JSON, kept as they are
	{`{"jobs":[],"jobs":[{"type":"t"}]}`, false},
	{`{"jobs":[{"type":"t","payload":{"a":1,"a":2}}]}`, true},
	{`{"jobs":[{"type":"t","priority":1,"priority":2}]}`, true},
	{`{"jobs":[{"type":"t","payload":1,"payload":null}]}`, true},
	{`{"jobs":[{"type":"t","run_at":"2031-01-02T03:04:05Z","run_at":null}]}`, true},
	// wrong types
	{`{"jobs":[{"type":"t","unique_key":1}]}`, true},
	{`{"jobs":[{"type":"t","delay":false}]}`, true},
	{`{"jobs":[{"type":"t","priority":[]}]}`, true},
	{`{"jobs":[{"type":"t","max_attempts":{}}]}`, true},
	{`{"jobs":[{"type":"t","depends_on":"1"}]}`, true},
	{`{"jobs":[{"type":"t","depends_on_index":{}}]}`, true},
	{`{"jobs":[{"type":"t","run_at":true}]}`, true},
	{`{"jobs":[{"type":"t","run_at":"tomorrow"}]}`, true},
	{`{"jobs":true}`, false},
	{`{"jobs":[{"type":"t"}]` + strings.Repeat(" ", 10) + "\t\r\n}", true},
}

// invalidVariants are mutations of the valid body of a batch: every
// prefix of it (truncated), and every byte of it replaced by each byte of
// a set that breaks JSON, or not, in every position.
func invalidVariants(body string) []string {
	var out []string
	for i := range len(body) {
		out = append(out, body[:i])
		for _, c := range []byte("\"\\,:{}[]0-.e+ xtn\x00\x1f\x7f\xff") {
			if body[i] != c {
				out = append(out, body[:i]+string(c)+body[i+1:])
			}
		}
		out = append(out, body[:i]+body[i+1:])       // a byte left out
		out = append(out, body[:i]+`"`+body[i:])     // a quote more
		out = append(out, body[:i]+"\\u00"+body[i:]) // a short escape
	}
	return out
}

// mutatedBatch is a body with every kind of value in every place, for
// invalidVariants: a job of the fast path, one for decodeStrict, escapes,
// numbers and literals of every form in a payload.
const mutatedBatch = `{"jobs":[{"queue":"q","type":"t","payload":{"s":"a\"\u00e9","n":[-1.5e+3,0,true,false,null],"o":{}},"priority":-3,"max_attempts":12,"timeout":"1s"},{"Type":"t","run_at":"2031-01-02T03:04:05Z"},{"type":"u"}]}`

// checkBatchDecode fails unless batchSpecsFast and batchSpecsStrict give
// the same specs or the same error for body, and reports whether the fast
// path answered it.
func checkBatchDecode(t *testing.T, a *API, body []byte) bool {
	t.Helper()
	now := a.clock()
	fast, ok, fastErr := a.batchSpecsFast(body, now)
	strict, strictErr := a.batchSpecsStrict(body, now)
	if !ok {
		if fast != nil || fastErr != nil {
			t.Fatalf("%q: not handled, yet %d specs and error %v", body, len(fast), fastErr)
		}
		return false
	}
	if !json.Valid(body) {
		t.Fatalf("%q: the fast path answered a body that is not valid JSON: %s", body, describeError(fastErr))
	}
	if !sameError(fastErr, strictErr) {
		t.Fatalf("%q: fast path answers %s, decodeStrict %s", body, describeError(fastErr), describeError(strictErr))
	}
	if !reflect.DeepEqual(fast, strict) {
		t.Fatalf("%q: fast path gives %+v, decodeStrict %+v", body, fast, strict)
	}
	return true
}

// sameError reports whether a and b are the same answer: the same status,
// code, message and Retry-After of an *httpError, or errors alike.
func sameError(a, b error) bool {
	var ha, hb *httpError
	if errors.As(a, &ha) != errors.As(b, &hb) {
		return false
	}
	if ha != nil {
		return ha.status == hb.status && ha.code == hb.code && ha.msg == hb.msg && ha.retryAfter == hb.retryAfter
	}
	return (a == nil) == (b == nil) && (a == nil || a.Error() == b.Error())
}

func describeError(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		return he.code + " (" + he.msg + ")"
	}
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestBatchDecodeDifferential: on every body of batchCases the fast path
// agrees with decodeStrict, and it answers those of the common shape.
func TestBatchDecodeDifferential(t *testing.T) {
	a := New(fuzzOptions())
	for _, c := range batchCases {
		if got := checkBatchDecode(t, a, []byte(c.body)); got != c.fast {
			t.Errorf("%q: handled by the fast path %v, want %v", c.body, got, c.fast)
		}
	}
	for _, s := range seedBatch {
		checkBatchDecode(t, a, []byte(s))
	}
	// Every mutation of a valid body: the fast path either agrees or gives
	// the body up, and it takes every valid one it took before.
	handled := 0
	variants := invalidVariants(mutatedBatch)
	for _, v := range variants {
		if checkBatchDecode(t, a, []byte(v)) {
			handled++
		}
	}
	if handled == 0 || handled == len(variants) {
		t.Errorf("the fast path answered %d of %d mutated bodies", handled, len(variants))
	}
	// The benchmark's batch: 3 jobs as a client library sends them.
	body, _ := benchBatch(3)
	if !checkBatchDecode(t, a, body) {
		t.Error("the benchmark's batch fell back to decodeStrict")
	}
	specs, err := a.batchSpecs(body, a.clock())
	if err != nil || len(specs) != 3 || specs[2].UniqueKey != "welcome-2" || specs[1].Priority != 1 || specs[0].Queue != "emails" {
		t.Errorf("batchSpecs: %+v, %v", specs, err)
	}
}

// TestBatchDecodeHostile: a batch of 262,145 tiny jobs, far over
// MaxBatch, is refused by the fast path after one scan, with memory for
// at most MaxBatch jobs and none decoded.
func TestBatchDecodeHostile(t *testing.T) {
	a := New(fuzzOptions())
	body := []byte(`{"jobs":[` + strings.Repeat("1,", 1<<18) + `1]}`)
	_, ok, err := a.batchSpecsFast(body, a.clock())
	var he *httpError
	if !ok || !errors.As(err, &he) || he.code != "payload_too_large" || !strings.Contains(he.msg, "262145 jobs") {
		t.Fatalf("handled %v, error %v", ok, err)
	}
	if allocs := testing.AllocsPerRun(3, func() { a.batchSpecsFast(body, a.clock()) }); allocs > 10 {
		t.Errorf("%v allocations for a refused batch", allocs)
	}
	checkBatchDecode(t, a, body)
}

// elemsOf is batchElems with jsonscan.Value for each element: the elements of
// a batch body, in place, and how many there are.
func elemsOf(body []byte) (elems [][]byte, n int, ok bool) {
	n, ok = batchElems(body, func(k, i int) (int, bool) {
		j, ok := jsonscan.Value(body, i)
		if ok {
			elems = append(elems, body[i:j])
		}
		return j, ok
	})
	return elems, n, ok
}

// TestBatchElemsInPlace: batchElems hands over each element where it
// starts, and goes on after it; the elements are slices of the body, not
// copies, and exactly the bytes of each element.
func TestBatchElemsInPlace(t *testing.T) {
	body := []byte(" {\"jobs\" : [ {\"type\":\"t\"} ,\n\"a,]\\\"\" , [1,[2]] ,3] } ")
	elems, n, ok := elemsOf(body)
	if !ok || n != 4 || len(elems) != 4 {
		t.Fatalf("batchElems: %q, %d, %v", elems, n, ok)
	}
	for i, want := range []string{`{"type":"t"}`, `"a,]\""`, `[1,[2]]`, `3`} {
		if string(elems[i]) != want {
			t.Errorf("element %d: %q, want %q", i, elems[i], want)
		}
		if start := bytes.Index(body, elems[i]); start < 0 || &body[start] != &elems[i][0] {
			t.Errorf("element %d is not in place in the body", i)
		}
	}
	// An element that elem refuses refuses the body.
	if n, ok := batchElems(body, func(k, i int) (int, bool) { return i, k < 2 }); ok {
		t.Errorf("a refused element: %d, %v", n, ok)
	}
}

// FuzzBatchDecode is a differential test of batchSpecsFast against
// batchSpecsStrict on any bytes (the handler sees only valid UTF-8; the
// two must agree on the rest too).
//
//	go test -run '^$' -fuzz '^FuzzBatchDecode$' -fuzztime 60s ./internal/httpapi/
func FuzzBatchDecode(f *testing.F) {
	for _, c := range batchCases {
		f.Add([]byte(c.body))
	}
	for _, s := range seedBatch {
		f.Add([]byte(s))
	}
	for _, s := range fastDecodeSeeds {
		f.Add([]byte(`{"jobs":[` + s + `]}`))
	}
	body, _ := benchBatch(3)
	f.Add(body)
	a := New(fuzzOptions())
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBatchDecode(t, a, body)
	})
}

// TestBatchResponse: appendBatchResponse writes what writeJSON of the
// api.BatchResponse writes, byte for byte.
func TestBatchResponse(t *testing.T) {
	for _, enq := range [][]fsm.EnqueueResult{
		{},
		{{ID: 1}},
		{{ID: 7, Duplicate: true}, {ID: 0}, {ID: math.MaxUint64, State: fsm.StatePending}, {ID: 1 << 40, Duplicate: true}},
	} {
		out := api.BatchResponse{IDs: make([]string, len(enq)), Duplicates: make([]bool, len(enq))}
		for i, e := range enq {
			out.IDs[i], out.Duplicates[i] = formatID(e.ID), e.Duplicate
		}
		want, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		if got := appendBatchResponse([]byte("x"), enq); string(got) != "x"+string(want) {
			t.Errorf("%+v: %q, want %q", enq, got[1:], want)
		}
	}
}

// TestBatchBodyReused: the buffer of a batch body goes back to
// batchBodies, and the jobs of a batch keep their own copies of what they
// hold: batches after them (a valid one, a refused one) that fill the same
// buffer change nothing of them.
func TestBatchBodyReused(t *testing.T) {
	rep := newMemReplica()
	a := New(fuzzOptions())
	a.SetReplica(rep)
	h := a.Handler()
	batch := func(c byte) []byte {
		s := strings.Repeat(string(c), 40)
		return []byte(`{"jobs":[{"queue":"q` + s + `","type":"t` + s + `","payload":{"p":"` + s + `"},"timeout":"1s","unique_key":"` + s + `","run_at":"2031-01-02T03:04:05Z"},{"Type":"t` + s + `","payload":"` + s + `"}]}`)
	}
	if rec := fuzzRequest(h, "POST", "/v1/jobs/batch", "application/json", batch('a')); rec.Code != 201 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec := fuzzRequest(h, "POST", "/v1/jobs/batch", "application/json", batch('b')); rec.Code != 201 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec := fuzzRequest(h, "POST", "/v1/jobs/batch", "application/json", bytes.ReplaceAll(batch('c'), []byte(`"t`), []byte(`" t`))); rec.Code != 400 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	for id, c := range map[uint64]string{1: "a", 2: "a", 3: "b", 4: "b"} {
		s := strings.Repeat(c, 40)
		var job fsm.Job
		rep.Read(func(m *fsm.Machine) { job, _ = m.Get(id) })
		want := `{"p":"` + s + `"}`
		if id%2 == 0 {
			want = `"` + s + `"`
		}
		if job.Type != "t"+s || job.Payload != want || id%2 == 1 && (job.Queue != "q"+s || job.UniqueKey != s) {
			t.Errorf("job %d: %+v", id, job)
		}
	}
}
