package client

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// jsonLease is what decodeLease must equal: encoding/json's answer.
func jsonLease(b []byte) (api.LeaseResponse, error) {
	var out api.LeaseResponse
	err := json.NewDecoder(bytes.NewReader(b)).Decode(&out)
	return out, err
}

// checkLease fails t unless decodeLease and encoding/json agree on b; it
// says whether the hand-written path took b.
func checkLease(t testing.TB, b []byte) bool {
	t.Helper()
	var fast api.LeaseResponse
	took := (&leaseDecoder{b: b}).leaseResponse(&fast)
	var got api.LeaseResponse
	gerr := decodeLease(b, &got)
	want, werr := jsonLease(b)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("%s\nerror %v, encoding/json %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s\n got %+v\nwant %+v", b, got, want)
	}
	if took && (werr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("%s\nthe hand-written path took it: %+v, encoding/json %+v (%v)", b, fast, want, werr)
	}
	return took
}

var leaseStrings = []string{"", "default", "email.send", "a b", `quo"te`, `back\slash`, "<tag>&", "tab\t", "é", "\x7f", "\xff"}

func randomLease(rng *rand.Rand) api.LeaseResponse {
	pick := func(v []string) string { return v[rng.IntN(len(v))] }
	raws := []string{`{"n":1}`, `[1,"a",{"b":[]}]`, `"s"`, `12.5e3`, `-0`, `true`, `null`, `{"a": 1}`, `{"h":"<b>"}`, `"\u00e9\""`}
	times := []time.Time{{}, time.Unix(0, 1_700_000_000_123_456_789).UTC(), time.Unix(1_700_000_000, 0).UTC(), time.Unix(-5, 0).UTC()}
	var out api.LeaseResponse
	out.Jobs = []api.Job{}
	for range rng.IntN(5) {
		j := api.Job{ID: pick([]string{"1", "123456789", ""}), Queue: pick(leaseStrings), Type: pick(leaseStrings),
			Payload: json.RawMessage(pick(raws)), Priority: int32(rng.IntN(2001) - 1000), State: pick([]string{"in_flight", "pending"}),
			Attempt: rng.IntN(3), MaxAttempts: rng.IntN(30), Timeout: pick([]string{"30s", "1m30s", "1.5s"}),
			UniqueKey: pick(leaseStrings), UniqueFor: pick([]string{"", "1h0m0s"}),
			RunAt: times[rng.IntN(len(times))], CreatedAt: times[rng.IntN(len(times))], StartedAt: times[rng.IntN(len(times))],
			FinishedAt: times[rng.IntN(len(times))], LastError: pick(leaseStrings), LeaseID: pick([]string{"", "77"}),
			LeaseDeadline: times[rng.IntN(len(times))], Worker: pick(leaseStrings)}
		if rng.IntN(3) == 0 {
			j.Result = json.RawMessage(pick(raws))
		}
		if rng.IntN(20) == 0 {
			j.DependsOn = []string{"1"}
		}
		out.Jobs = append(out.Jobs, j)
	}
	return out
}

func TestDecodeLeaseMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	took := 0
	for range 3000 {
		b, err := json.Marshal(randomLease(rng))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
		if checkLease(t, b) {
			took++
		}
		// and the same body changed: cut, a byte flipped, white space added
		checkLease(t, b[:rng.IntN(len(b))])
		c := bytes.Clone(b)
		c[rng.IntN(len(c))] ^= byte(1 << rng.IntN(8))
		checkLease(t, c)
		k := rng.IntN(len(b))
		checkLease(t, append(append(bytes.Clone(b[:k]), ' '), b[k:]...))
	}
	// strings with escapes go to encoding/json; the rest must not
	if took < 300 {
		t.Errorf("the hand-written path took %d of 3000 answers of the server's shape", took)
	}
	if b, _ := json.Marshal(benchLease()); !checkLease(t, b) {
		t.Errorf("the hand-written path did not take a plain lease answer: %s", b)
	}
	for _, b := range []string{`{"jobs":[]}`, `{"jobs":[]}` + "\n", `{"jobs":null}`, `{"jobs":[]} x`, `{"jobs":[]}{}`, ``,
		`{"jobs":[{"id":"1","queue":"q","type":"t","payload":1 ,"priority":0,"state":"s","attempt":0,"max_attempts":0,"timeout":"1s"}]}`,
		`{"jobs":[{"id":"1","queue":"q","type":"t","payload":{"a" : 1},"priority":01,"state":"s","attempt":0,"max_attempts":0,"timeout":"1s"}]}`,
		`{"jobs":[{"id":"1","queue":"q","type":"t","payload":{},"priority":2147483648,"state":"s","attempt":0,"max_attempts":0,"timeout":"1s"}]}`,
		`{"jobs":[{"id":"1","queue":"q","type":"t","payload":{},"priority":-0,"state":"s","attempt":0,"max_attempts":0,"timeout":"1s","run_at":"2023-11-14T22:13:20.1Z"}]}`,
		`{"jobs":[{"id":"1","queue":"q","type":"t","payload":{},"priority":1,"state":"s","attempt":0,"max_attempts":0,"timeout":"1s","run_at":"2023-11-14 22:13:20Z"}]}`,
	} {
		checkLease(t, []byte(b))
	}
}

func FuzzDecodeLease(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		b, _ := json.Marshal(randomLease(rng))
		f.Add(b)
	}
	f.Add([]byte(`{"jobs":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkLease(t, b) })
}

// benchLease is a lease of 100 jobs with 100-byte payloads.
func benchLease() api.LeaseResponse {
	at := time.Unix(0, 1_700_000_000_123_456_789).UTC()
	var lease api.LeaseResponse
	for i := range 100 {
		lease.Jobs = append(lease.Jobs, api.Job{ID: "100000" + strings.Repeat("1", i%3), Queue: "default", Type: "bench",
			Payload: json.RawMessage(`{"data":"` + strings.Repeat("x", 89) + `"}`), State: "in_flight", Attempt: 1, MaxAttempts: 25,
			Timeout: "30s", RunAt: at, CreatedAt: at, StartedAt: at, LeaseID: "77", LeaseDeadline: at, Worker: "remote-1"})
	}
	return lease
}

// BenchmarkDecodeLease: a lease answer of 100 jobs with 100-byte payloads.
func BenchmarkDecodeLease(b *testing.B) {
	body, _ := json.Marshal(benchLease())
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out api.LeaseResponse
			if err := decodeLease(body, &out); err != nil || len(out.Jobs) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out, err := jsonLease(body); err != nil || len(out.Jobs) != 100 {
				b.Fatal(err)
			}
		}
	})
}
