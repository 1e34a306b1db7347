package client

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// checkEncodeBatch fails unless encodeBatch gives what json.Marshal gives,
// byte for byte, whenever it takes req, and reports whether it did.
func checkEncodeBatch(t *testing.T, req api.BatchRequest) bool {
	t.Helper()
	got, ok := encodeBatch(&req)
	want, err := json.Marshal(req)
	if !ok {
		if got != nil {
			t.Fatalf("%+v: not taken, yet %q", req, got)
		}
		return false
	}
	if err != nil {
		t.Fatalf("%+v: encoded as %q, json.Marshal fails: %v", req, got, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%+v:\n got %s\nwant %s", req, got, want)
	}
	return true
}

// TestEncodeBatchFields: appendEnqueue knows every field of
// api.EnqueueRequest, in order. A new field must be added to it (and
// here), or a batch would be sent without it.
func TestEncodeBatchFields(t *testing.T) {
	want := []string{"queue,omitempty", "type", "payload,omitempty", "priority,omitempty", "run_at,omitzero",
		"delay,omitempty", "max_attempts,omitempty", "timeout,omitempty", "unique_key,omitempty",
		"depends_on,omitempty", "depends_on_index,omitempty", "on_dependency_failure,omitempty", "unique_for,omitempty"}
	var got []string
	typ := reflect.TypeFor[api.EnqueueRequest]()
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Tag.Get("json"))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fields of api.EnqueueRequest: %q, appendEnqueue knows %q", got, want)
	}
	if typ := reflect.TypeFor[api.BatchRequest](); typ.NumField() != 1 || typ.Field(0).Tag.Get("json") != "jobs" {
		t.Fatalf("api.BatchRequest has fields encodeBatch does not know")
	}
}

func TestEncodeBatch(t *testing.T) {
	full := api.EnqueueRequest{Queue: "q", Type: "t", Payload: json.RawMessage(`{"a":[1,-2.5e3,true,false,null],"b":"x y \"z\" \\ \u00e9"}`),
		Priority: -7, RunAt: time.Date(2031, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600)), Delay: "5m", MaxAttempts: 3,
		Timeout: "30s", UniqueKey: "k-1", DependsOn: []string{"1", "22"}, DependsOnIndex: []int{0, 1},
		OnDependencyFailure: "run", UniqueFor: "1h"}
	taken := [][]api.EnqueueRequest{
		{},
		{{}},
		{{Type: "t"}},
		{{Queue: "q", Type: "t"}, {Type: "u", Priority: 1}},
		{full, full},
		{{Type: "t", Payload: json.RawMessage(`null`)}, {Type: "t", Payload: json.RawMessage(`"s"`)}, {Type: "t", Payload: json.RawMessage(`17`)}},
		{{Type: "t", Payload: json.RawMessage(`{"pad":"` + strings.Repeat("x", 90) + `"}`)}},
		{{Type: "t", Payload: json.RawMessage(`[]`), DependsOn: []string{}, DependsOnIndex: []int{}}},
		{{Type: "t", Priority: -2147483648, MaxAttempts: -1}},
		{{Type: "t", UniqueKey: "a b ~!@#$%^*()_+={}[]|:;'?/.,`"}},
		{{Type: "t", RunAt: time.Unix(0, 0)}},
	}
	for _, jobs := range taken {
		if !checkEncodeBatch(t, api.BatchRequest{Jobs: jobs}) {
			t.Errorf("%+v: not taken", jobs)
		}
	}
	// What json.Marshal escapes, compacts or refuses goes to it.
	left := []api.EnqueueRequest{
		{Type: "a<b"}, {Type: "a>b"}, {Type: "a&b"}, {Type: `a"b`}, {Type: `a\b`}, {Type: "a\nb"}, {Type: "a\x00b"},
		{Type: "a\x7fb"}, {Type: "é"}, {Type: "\xff"}, {Type: "\u2028"}, {Queue: "<"}, {Type: "t", Delay: "&"},
		{Type: "t", Timeout: "\t"}, {Type: "t", UniqueKey: "ü"}, {Type: "t", DependsOn: []string{"1", "<"}},
		{Type: "t", OnDependencyFailure: `"`}, {Type: "t", UniqueFor: "\\"},
		{Type: "t", Payload: json.RawMessage(`{ "a":1}`)}, {Type: "t", Payload: json.RawMessage(`{"a":1} `)},
		{Type: "t", Payload: json.RawMessage(` 1`)}, {Type: "t", Payload: json.RawMessage("{\"a\":\n1}")},
		{Type: "t", Payload: json.RawMessage(`"<"`)}, {Type: "t", Payload: json.RawMessage(`"&amp;"`)},
		{Type: "t", Payload: json.RawMessage(`"é"`)}, {Type: "t", Payload: json.RawMessage(`"\u2028"`)},
		{Type: "t", Payload: json.RawMessage(`{"a":}`)}, {Type: "t", Payload: json.RawMessage(`01`)},
		{Type: "t", Payload: json.RawMessage(`"\x"`)}, {Type: "t", Payload: json.RawMessage(`"\`)},
		{Type: "t", Payload: json.RawMessage(`[1,2`)}, {Type: "t", Payload: json.RawMessage(`1 2`)},
		{Type: "t", Payload: json.RawMessage(`"a\" b"`)}, // a space in a string after an escaped quote is kept
		{Type: "t", RunAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Type: "t", Payload: json.RawMessage(strings.Repeat("[", 300) + strings.Repeat("]", 300))}, // deeper than jsonscan follows
	}
	for _, j := range left {
		ok := checkEncodeBatch(t, api.BatchRequest{Jobs: []api.EnqueueRequest{{Type: "first"}, j}})
		if ok && (j.Payload == nil || len(j.Payload) == 600) {
			t.Errorf("%+v: taken", j)
		}
	}
	if checkEncodeBatch(t, api.BatchRequest{}) {
		t.Error("a nil Jobs (json.Marshal: null) taken")
	}
}

// FuzzEncodeBatch is a differential test of encodeBatch against
// json.Marshal, on jobs made of any strings and payload bytes.
//
//	go test -run '^$' -fuzz '^FuzzEncodeBatch$' -fuzztime 60s ./client/
func FuzzEncodeBatch(f *testing.F) {
	f.Add("q", "t", []byte(`{"a":[1,2]}`), int32(3), int64(0), "5m", 2, "1s", "k", "1", 0, "run", "1h")
	f.Add("", "t", []byte(`{"pad":"xx"}`), int32(0), int64(1e18), "", 0, "", "", "", -1, "", "")
	f.Add("<", "é", []byte(`{ "a" : "b c" }`), int32(-1), int64(-1), "\n", -5, "\\", "\"", "&", 7, "\xff", "\u2028")
	f.Add("q", "t", []byte(`"a\" b"`), int32(0), int64(0), "", 0, "", "", "", -1, "", "")
	f.Fuzz(func(t *testing.T, queue, typ string, payload []byte, prio int32, runAt int64, delay string, maxAttempts int,
		timeout, uniqueKey, dep string, depIndex int, onFailure, uniqueFor string) {
		j := api.EnqueueRequest{Queue: queue, Type: typ, Priority: prio, Delay: delay, MaxAttempts: maxAttempts,
			Timeout: timeout, UniqueKey: uniqueKey, OnDependencyFailure: onFailure, UniqueFor: uniqueFor}
		if len(payload) > 0 {
			j.Payload = payload
		}
		if runAt != 0 {
			j.RunAt = time.Unix(0, runAt).In(time.FixedZone("", int(runAt%50000)))
		}
		if dep != "" {
			j.DependsOn = []string{dep, "2"}
		}
		if depIndex >= 0 {
			j.DependsOnIndex = []int{depIndex}
		}
		checkEncodeBatch(t, api.BatchRequest{Jobs: []api.EnqueueRequest{j, {Type: typ}}})
	})
}
