package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jsonscan"
)

// benchReplica answers every enqueue without applying it, so that the
// benchmark measures the handler and not the machine.
type benchReplica struct{ *memReplica }

func (r benchReplica) Propose(ctx context.Context, cmd *fsm.Command) (fsm.Result, error) {
	res := fsm.Result{Enqueued: make([]fsm.EnqueueResult, len(cmd.Jobs))}
	for i := range res.Enqueued {
		res.Enqueued[i] = fsm.EnqueueResult{ID: uint64(i + 1), State: fsm.StatePending}
	}
	return res, nil
}

const benchJobs = 1000

// benchBatch is a batch of n jobs with 100-byte payloads, in the shape a
// client library sends.
func benchBatch(n int) (body []byte, elems [][]byte) {
	var b bytes.Buffer
	b.WriteString(`{"jobs":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		payload := fmt.Sprintf(`{"user_id":%d,"template":"welcome","to":"user%d@example.com","vars":{"name":"x"}}`, 100000+i, 100000+i)
		payload = payload[:len(payload)-2] + strings.Repeat(" ", 100-len(payload)) + "}}"
		if len(payload) != 100 {
			panic(len(payload))
		}
		start := b.Len()
		fmt.Fprintf(&b, `{"queue":"emails","type":"send_email","payload":%s,"priority":%d,"max_attempts":5,"timeout":"45s","unique_key":"welcome-%d"}`, payload, i%10, i)
		elems = append(elems, bytes.Clone(b.Bytes()[start:]))
	}
	b.WriteString(`]}`)
	return b.Bytes(), elems
}

// BenchmarkEnqueueBatchDecode measures POST /v1/jobs/batch of 1,000 jobs
// with 100-byte payloads, through the whole handler (a replica that
// applies nothing), and the second decode of the elements alone.
func BenchmarkEnqueueBatchDecode(b *testing.B) {
	body, elems := benchBatch(benchJobs)
	perJob := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchJobs), "ns/job")
	}
	b.Run("handler", func(b *testing.B) {
		a := New(Options{MaxRequest: 8 << 20, MaxBatch: benchJobs, MaxQueueDepth: -1})
		a.SetReplica(benchReplica{newMemReplica()})
		h := a.Handler()
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			req := httptest.NewRequest("POST", "/v1/jobs/batch", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
			}
		}
		perJob(b)
	})
	b.Run("elements/strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, e := range elems {
				var jr enqueueWire
				if err := decodeStrict(e, &jr, "jobs[0]"); err != nil {
					b.Fatal(err)
				}
			}
		}
		perJob(b)
	})
	b.Run("elements/fast", func(b *testing.B) {
		b.ReportAllocs()
		var strs strCache
		for b.Loop() {
			for _, e := range elems {
				jr, ok := fastDecodeEnqueue(e, &strs)
				if !ok {
					b.Fatalf("fallback for %s", e)
				}
				_ = jr
			}
		}
		perJob(b)
	})
	// One job's body for POST /v1/jobs: decodeStrict, and the fast path.
	single := elems[0]
	b.Run("single/strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var jr enqueueWire
			if err := decodeStrict(single, &jr, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := fastDecodeEnqueue(single, nil); !ok {
				b.Fatal("fallback")
			}
		}
	})
}

// fastDecodeSeeds are enqueue objects of every shape, for FuzzFastDecode
// and TestFastDecode.
var fastDecodeSeeds = []string{
	`{}`,
	` { } `,
	`{"type":"t"}`,
	"\t{\n\"type\" :\r\"t\" }\n",
	`{"queue":"q","type":"t","payload":{"a":[1,2,{"b":"}]"}]},"priority":-7,"run_at":"2030-01-02T03:04:05Z","max_attempts":3,"timeout":"1s","unique_key":"k"}`,
	`{"queue":"q","type":"t","delay":"5m","timeout":"30s","unique_key":"héllo ✓ 😀"}`,
	`{"type":"t","payload":"a \"quoted\" \\ string \u00e9 } ]"}`,
	`{"type":"t","payload":[]}`,
	`{"type":"t","payload":{}}`,
	`{"type":"t","payload":[[[[{"x":[{}]}]]]]}`,
	`{"type":"t","payload":-1.5e+10}`,
	`{"type":"t","payload":0}`,
	`{"type":"t","payload":true}`,
	`{"type":"t","payload":false}`,
	`{"type":"t","payload":null}`,
	`{"type":"t","payload":"\\"}`,
	`{"type":"t","payload":{"k\"}":"v\\\\"}}`,
	`{"type":"t","payload" : 12 , "priority" : 3 }`,
	`{"type":"t","run_at":12}`,
	`{"type":"t","run_at":{"a":1}}`,
	`{"type":"t","run_at":null}`,
	`{"type":"t","run_at":"2030-01-02T03:04:05.123456789+02:00"}`,
	`{"type":"t","run_at":"\u0032030-01-02T03:04:05Z"}`,
	`{"type":"t","priority":0}`,
	`{"type":"t","priority":-0}`,
	`{"type":"t","priority":00}`,
	`{"type":"t","priority":01}`,
	`{"type":"t","priority":1.0}`,
	`{"type":"t","priority":1e2}`,
	`{"type":"t","priority":1E2}`,
	`{"type":"t","priority":2147483647}`,
	`{"type":"t","priority":2147483648}`,
	`{"type":"t","priority":-2147483648}`,
	`{"type":"t","priority":-2147483649}`,
	`{"type":"t","priority":999999999999999999}`,
	`{"type":"t","priority":9999999999999999999}`,
	`{"type":"t","priority":"1"}`,
	`{"type":"t","priority":true}`,
	`{"type":"t","priority":null}`,
	`{"type":"t","max_attempts":65535}`,
	`{"type":"t","max_attempts":-1}`,
	`{"type":"t","max_attempts":999999999999999999}`,
	`{"type":"t","max_attempts":9223372036854775807}`,
	`{"type":"t","max_attempts":9223372036854775808}`,
	`{"type":"t","max_attempts":-9223372036854775808}`,
	`{"type":"t","max_attempts":1.5}`,
	`{"type":"t","max_attempts":[1]}`,
	`{"type":"t\u0041"}`,
	`{"type":"t\n"}`,
	`{"type":"t\/"}`,
	`{"type":"\ud83d\ude00"}`,
	`{"type":"\ud800"}`,
	"{\"type\":\"\xff\"}",
	"{\"type\":\"t\",\"payload\":\"\xff\"}",
	"{\"type\":\"t\",\"unique_key\":\"\xed\xa0\x80\"}",
	`{"type":5}`,
	`{"type":null}`,
	`{"type":["t"]}`,
	`{"type":{"t":1}}`,
	`{"queue":null,"type":"t"}`,
	`{"type":"t","delay":null}`,
	`{"type":"t","timeout":1}`,
	`{"Type":"t"}`,
	`{"TYPE":"t"}`,
	`{"Max_Attempts":2,"type":"t"}`,
	`{"unique_Key":"k","type":"t"}`,
	"{\"type\":\"t\",\"unique_\u212aey\":\"k\"}", // Kelvin sign folds to k
	`{"\u0074ype":"t"}`,
	`{"type":"a","type":"b"}`,
	`{"type":"a","Type":"b"}`,
	`{"payload":1,"payload":2}`,
	`{"type":"t","foo":1}`,
	`{"type":"t","":1}`,
	`{"type":"t","RunAt":"2030-01-02T03:04:05Z"}`,
	`{"type":"t","EnqueueRequest":{}}`,
	`{"type":"t","Payload":[1]}`,
	`null`,
	`[]`,
	`[{"type":"t"}]`,
	`"type"`,
	`17`,
	`true`,
}

func TestFastDecode(t *testing.T) {
	accept := []struct {
		in   string
		want enqueueWire
	}{
		{`{}`, enqueueWire{}},
		{" \t\r\n{ \n} \n", enqueueWire{}},
		{`{"type":"t"}`, ew(func(w *enqueueWire) { w.Type = "t" })},
		{`{ "queue" : "q" , "type" : "t" , "payload" : {"a": [1, "]}"]} , "priority" : -2147483648 , "run_at" : "2030-01-02T03:04:05Z" , "max_attempts" : 999999999999999999 , "timeout" : "1s" , "unique_key" : "é😀" }`,
			ew(func(w *enqueueWire) {
				w.Queue, w.Type, w.Payload, w.Priority = "q", "t", json.RawMessage(`{"a": [1, "]}"]}`), math.MinInt32
				w.RunAt, w.MaxAttempts, w.Timeout, w.UniqueKey = json.RawMessage(`"2030-01-02T03:04:05Z"`), 999999999999999999, "1s", "é😀"
			})},
		{`{"type":"t","delay":"5m","priority":2147483647,"max_attempts":0}`,
			ew(func(w *enqueueWire) { w.Type, w.Delay, w.Priority = "t", "5m", math.MaxInt32 })},
		{`{"payload":"a\"b\\","type":"t"}`, ew(func(w *enqueueWire) { w.Type, w.Payload = "t", json.RawMessage(`"a\"b\\"`) })},
		{`{"payload":-1.5e+10}`, ew(func(w *enqueueWire) { w.Payload = json.RawMessage(`-1.5e+10`) })},
		{`{"payload":false }`, ew(func(w *enqueueWire) { w.Payload = json.RawMessage(`false`) })},
		{`{"payload":[[],{}]}`, ew(func(w *enqueueWire) { w.Payload = json.RawMessage(`[[],{}]`) })},
		{`{"run_at":17}`, ew(func(w *enqueueWire) { w.RunAt = json.RawMessage(`17`) })},
		{`{"run_at":"\u0032030"}`, ew(func(w *enqueueWire) { w.RunAt = json.RawMessage(`"\u0032030"`) })},
		{`{"queue":""}`, enqueueWire{}},
		{`{"priority":0}`, enqueueWire{}},
		{`{"priority":-5}`, ew(func(w *enqueueWire) { w.Priority = -5 })},
	}
	for _, c := range accept {
		got, ok := fastDecodeEnqueue([]byte(c.in), nil)
		if !ok {
			t.Errorf("%s: fell back", c.in)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.in, got, c.want)
		}
		var slow enqueueWire
		if err := decodeStrict([]byte(c.in), &slow, ""); err != nil || !reflect.DeepEqual(got, slow) {
			t.Errorf("%s: decodeStrict gives %+v, %v", c.in, slow, err)
		}
	}

	fallback := []string{
		// nulls, of every field and of the whole
		`null`, `{"queue":null}`, `{"type":null}`, `{"payload":null}`, `{"priority":null}`, `{"run_at":null}`,
		`{"delay":null}`, `{"max_attempts":null}`, `{"timeout":null}`, `{"unique_key":null}`,
		// not an object
		`[]`, `"t"`, `1`, `true`,
		// keys: case variants, escaped, unknown, duplicate, embedded Go names
		`{"Type":"t"}`, `{"QUEUE":"q"}`, `{"unique_Key":"k"}`, "{\"unique_\u212aey\":\"k\"}", `{"\u0074ype":"t"}`,
		`{"foo":1}`, `{"":1}`, `{"type ":"t"}`, `{"type":"a","type":"b"}`, `{"type":"a","Type":"b"}`,
		`{"payload":1,"payload":1}`, `{"RunAt":"x"}`, `{"EnqueueRequest":{}}`,
		// strings with escapes, or bad UTF-8, or of the wrong type
		`{"type":"t\u0041"}`, `{"type":"\/"}`, `{"unique_key":"\ud800"}`, "{\"type\":\"\xff\"}", "{\"unique_key\":\"\xed\xa0\x80\"}",
		`{"type":5}`, `{"type":true}`, `{"type":["t"]}`, `{"timeout":{}}`,
		// numbers out of the plain form or of range, or of the wrong type
		`{"priority":-0}`, `{"priority":01}`, `{"priority":1.0}`, `{"priority":1e2}`, `{"priority":1E+2}`,
		`{"priority":2147483648}`, `{"priority":-2147483649}`, `{"max_attempts":1000000000000000000}`,
		`{"max_attempts":9223372036854775808}`, `{"priority":"1"}`, `{"priority":true}`, `{"max_attempts":[]}`,
		// invalid JSON: bad escapes, raw control characters, truncated,
		// trailing data, bad numbers and literals, bad nesting
		`{"payload":"\x"}`, `{"payload":"\u12x4"}`, `{"payload":"\u12"}`, `{"payload":"\`, `{"payload":{"\a":1}}`,
		"{\"payload\":\"\x00\"}", "{\"payload\":\"\n\"}", "{\"payload\":{\"\t\":1}}", "{\"type\":\"\x1f\"}", "{\"ty\npe\":1}",
		`{"type":"t"`, `{"type":"t",`, `{"type":`, `{"type"`, `{"type":"t`, `{"payload":[1,2`, `{"payload":{"a":1`, `{`, ``, ` `,
		`{"type":"t"}x`, `{"type":"t"}}`, `{"type":"t"} {}`, `{"type":"t"},`, `{"type":"t",}`, `{,"type":"t"}`, `{"type":"t",,"queue":"q"}`,
		`{"type":"t" "queue":"q"}`, `{"type" "t"}`, `{"type"::"t"}`, `{"payload":[1,]}`, `{"payload":[,1]}`, `{"payload":{"a":1,}}`,
		`{"payload":{"a"}}`, `{"payload":{1:2}}`, `{"payload":[1}`, `{"payload":{"a":1]}`, `{"payload":1 2}`, `{"payload":"a""b"}`,
		`{"payload":01}`, `{"payload":-}`, `{"payload":1.}`, `{"payload":.1}`, `{"payload":+1}`, `{"payload":1e}`, `{"payload":1e-}`,
		`{"payload":0x1}`, `{"payload":NaN}`, `{"payload":-Infinity}`, `{"priority":1.}`, `{"priority":-}`, `{"priority":1x}`,
		`{"priority":1-}`, `{"max_attempts":2e}`, `{"payload":tru}`, `{"payload":nul}`, `{"payload":True}`, `{"payload":falsee}`,
		`{"run_at":nulls}`, `{"payload":` + strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1) + `}`,
	}
	for _, in := range fallback {
		got, ok := fastDecodeEnqueue([]byte(in), nil)
		if ok {
			t.Errorf("%s: accepted as %+v", in, got)
		} else if !reflect.DeepEqual(got, enqueueWire{}) {
			t.Errorf("%s: fell back with %+v, not the zero value", in, got)
		}
	}

	// Each seed: the fast path agrees with decodeStrict when it accepts.
	for _, s := range fastDecodeSeeds {
		checkFastDecode(t, []byte(s))
	}
}

func ew(f func(w *enqueueWire)) enqueueWire {
	var w enqueueWire
	f(&w)
	return w
}

// checkFastDecode checks that fastDecodeEnqueue, on any bytes, accepts
// only valid JSON that decodeStrict accepts, with the same result.
func checkFastDecode(t *testing.T, data []byte) {
	t.Helper()
	got, ok := fastDecodeEnqueue(data, nil)
	// With a cache of strings: one that holds others, then those of data.
	c := &strCache{queue: "q0", typ: "t0", delay: "1m", timeout: "2s"}
	fastDecodeEnqueue(data, c)
	if cached, cok := fastDecodeEnqueue(data, c); cok != ok || !reflect.DeepEqual(cached, got) {
		t.Fatalf("%q: with a cache %+v %v, without %+v %v", data, cached, cok, got, ok)
	}
	if !ok {
		if !reflect.DeepEqual(got, enqueueWire{}) {
			t.Fatalf("%q: fell back with %+v, not the zero value", data, got)
		}
		return
	}
	if !json.Valid(data) {
		t.Fatalf("%q: fast path accepted invalid JSON as %+v", data, got)
	}
	var want enqueueWire
	if err := decodeStrict(data, &want, "jobs[0]"); err != nil {
		t.Fatalf("%q: fast path accepted as %+v, decodeStrict refuses: %v", data, got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: fast path gives %+v, decodeStrict %+v", data, got, want)
	}
}

// FuzzFastDecode is a differential test of fastDecodeEnqueue against
// decodeStrict, on any bytes.
//
//	go test -run '^$' -fuzz '^FuzzFastDecode$' -fuzztime 60s ./internal/httpapi/
func FuzzFastDecode(f *testing.F) {
	for _, s := range fastDecodeSeeds {
		f.Add([]byte(s))
	}
	for _, s := range seedEnqueue {
		f.Add([]byte(s))
	}
	_, elems := benchBatch(3)
	for _, e := range elems {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fastDecodeEnqueue(data, nil) // no panic on any bytes
		checkFastDecode(t, data)
	})
}

// payloadCases are JSON values, valid or not, for the payloads of the
// differential tests (internal/jsonscan tests jsonscan.Value on them).
var payloadCases = []string{
	`0`, `-0`, `1`, `-1`, `12.5`, `-0.0e-0`, `1E+9`, `1e9`, `123456789012345678901234567890`,
	`01`, `-01`, `00`, `1.`, `.5`, `-`, `+1`, `1e`, `1e+`, `1.e5`, `0x10`, `NaN`, `Infinity`, `--1`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `fals`,
	`""`, `"a"`, `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"\ud800"`, `"\x"`, `"\u12"`, `"\u12g4"`, `"\U0041"`, `"\`, `"abc`,
	"\"\x00\"", "\"\x1f\"", "\"\t\"", "\"\x7f\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"é😀\"",
	`[]`, `{}`, `[ ]`, `{ }`, `[1,2]`, `[1 , 2 ]`, `{"a":1,"b":[{}]}`, ` { "a" : [ 1 , { "b" : null } ] } `,
	`[`, `]`, `{`, `}`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{1:1}`, `{"a" 1}`, `{"a"::1}`,
	`[1}`, `{"a":1]`, `[[[]]`, `[]]`, `{"a":{"b":1}`, `{"a":1}}`, `[1][2]`, `1 2`, `"a" "b"`,
	strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth),
	strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1),
	strings.Repeat(`{"a":`, jsonscan.MaxDepth) + "1" + strings.Repeat("}", jsonscan.MaxDepth),
	strings.Repeat("[", 3) + strings.Repeat("]", 2),
}
