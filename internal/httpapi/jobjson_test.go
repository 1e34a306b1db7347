package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// marshalJob is what appendJob must equal.
func marshalJob(t testing.TB, j *fsm.Job) []byte {
	t.Helper()
	b, err := json.Marshal(toJob(j))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Strings and stored JSON values of every kind appendJob treats apart.
var (
	jobStrings = []string{"", "default", "email.send", "a b", `quo"te`, `back\slash`, "<tag>&", "a<b", "a>b", "a&b", "tab\there",
		"nl\n", "\x00\x1f", "\x7f", "é", "日本", "\u2028\u2029", "\xff\xfe", "a\xc3", "🦫"}
	jobRaws = []string{"", `{"to":"a@b.c","n":1}`, `[1,2,3]`, `"s"`, `12.5e3`, `true`, `null`, `{"a": 1}`,
		" {\"a\":1}\n", `{"h":"<b>&"}`, `{"h":"<"}`, `{"h":">"}`, `{"h":"&"}`, `{"u":"\u2028"}`, "{\"u\":\"\u2028\"}", `{"e":"é"}`, `not json`,
		`{"a":`, `{"a":1}x`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"deep":[[[[{"x":[{}]}]]]]}`}
)

func TestAppendJobMatchesMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(v []string) string { return v[rng.IntN(len(v))] }
	times := []int64{0, 1, 1_700_000_000_123_456_789, 1_700_000_000_000_000_000, math.MaxInt64, math.MinInt64, -1}
	durs := []int64{0, 1, 1e9, 30e9, 59e9, 60e9, 61e9, 90e9 + 5, 3599e9, 3600e9, 3661e9, 86400e9 * 400, -3e9, math.MaxInt64, math.MinInt64}
	for i := range 5000 {
		j := fsm.Job{
			ID: rng.Uint64() >> uint(rng.IntN(64)), Queue: pick(jobStrings), Type: pick(jobStrings),
			Payload: pick(jobRaws), Priority: int32(rng.IntN(21) - 10), State: fsm.State(rng.IntN(8)),
			Attempt: rng.IntN(30), MaxAttempts: rng.IntN(30), Timeout: durs[rng.IntN(len(durs))],
			UniqueKey: pick(jobStrings), UniqueFor: durs[rng.IntN(len(durs))],
			RunAt: times[rng.IntN(len(times))], CreatedAt: times[rng.IntN(len(times))],
			StartedAt: times[rng.IntN(len(times))], FinishedAt: times[rng.IntN(len(times))],
			LastError: pick(jobStrings), Result: pick(jobRaws),
			LeaseID: rng.Uint64N(3) * rng.Uint64(), LeaseDeadline: times[rng.IntN(len(times))], Worker: pick(jobStrings),
		}
		if i%50 == 0 {
			j.Deps = &fsm.JobDeps{On: []uint64{1, 2}, Waiting: []uint64{2}}
		}
		got, want := appendJob(nil, &j), marshalJob(t, &j)
		if !bytes.Equal(got, want) {
			t.Fatalf("job %+v\n got %s\nwant %s", j, got, want)
		}
	}
}

func TestAppendAnswersMatchMarshal(t *testing.T) {
	jobs := []fsm.Job{
		{ID: 1, Queue: "default", Type: "noop", Payload: `{"n":1}`, State: fsm.StateInFlight, Attempt: 1, MaxAttempts: 3,
			Timeout: 30e9, RunAt: 5, CreatedAt: 5, StartedAt: 6, LeaseID: 9, LeaseDeadline: 7, Worker: "w1"},
		{ID: 2, Queue: "q<1>", Type: "t", Payload: `{"a": "b"}`, State: fsm.StateInFlight, Attempt: 2, MaxAttempts: 3},
	}
	for _, n := range []int{0, 1, 2} {
		lease := api.LeaseResponse{Jobs: make([]api.Job, n)}
		for i := range n {
			lease.Jobs[i] = toJob(&jobs[i])
		}
		want, err := json.Marshal(lease)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendLeaseAnswer(newJobsBuffer(jobs[:n]), jobs[:n]); !bytes.Equal(got, append(want, '\n')) {
			t.Errorf("lease of %d:\n got %s\nwant %s", n, got, want)
		}
		for _, cursor := range []string{"", "AQAAAAAAAAAq", "a<b"} {
			list := api.ListResponse{Jobs: lease.Jobs, NextCursor: cursor}
			want, err := json.Marshal(list)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendListAnswer(nil, jobs[:n], cursor); !bytes.Equal(got, append(want, '\n')) {
				t.Errorf("list of %d, cursor %q:\n got %s\nwant %s", n, cursor, got, want)
			}
		}
	}
}

func FuzzAppendJob(f *testing.F) {
	for i, s := range jobStrings {
		f.Add(uint64(i), s, jobRaws[i%len(jobRaws)], jobRaws[(i+3)%len(jobRaws)], int64(i)*1e15, int64(i)*7e9)
	}
	f.Fuzz(func(t *testing.T, id uint64, s, payload, result string, at, dur int64) {
		j := fsm.Job{ID: id, Queue: s, Type: s, Payload: payload, State: fsm.State(id % 9), Attempt: int(id % 7),
			Timeout: dur, UniqueKey: s, UniqueFor: dur, RunAt: at, CreatedAt: at, StartedAt: at, FinishedAt: at,
			LastError: s, Result: result, LeaseID: id / 3, LeaseDeadline: at, Worker: s}
		if got, want := appendJob(nil, &j), marshalJob(t, &j); !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

// BenchmarkLeaseAnswer: the answer of a lease of 100 jobs with 100-byte
// payloads, by hand (appendLeaseAnswer) and by encoding/json (what the
// handler did before).
func BenchmarkLeaseAnswer(b *testing.B) {
	payload := `{"data":"` + strings.Repeat("x", 89) + `"}`
	jobs := make([]fsm.Job, 100)
	for i := range jobs {
		jobs[i] = fsm.Job{ID: uint64(1_000_000 + i), Queue: "default", Type: "bench", Payload: payload,
			State: fsm.StateInFlight, Attempt: 1, MaxAttempts: 25, Timeout: 30e9,
			RunAt: 1_700_000_000_123_456_789, CreatedAt: 1_700_000_000_123_456_789, StartedAt: 1_700_000_001_000_000_000,
			LeaseID: uint64(77 + i), LeaseDeadline: 1_700_000_031_000_000_000, Worker: "remote-1"}
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendLeaseAnswer(newJobsBuffer(jobs), jobs)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := api.LeaseResponse{Jobs: make([]api.Job, len(jobs))}
			for i := range jobs {
				out.Jobs[i] = toJob(&jobs[i])
			}
			if _, err := json.Marshal(out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPlainAck: whatever plainAck reads, decodeStrict reads the same.
func TestPlainAck(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		fast bool
	}{
		{`{"id":"12","lease_id":"34"}`, true},
		{`{"id":"0","lease_id":"007"}`, true},
		{`{"id":"18446744073709551616","lease_id":"1"}`, true}, // parseID refuses it, as after decodeStrict
		{`{"id":"","lease_id":"1"}`, false},
		{`{"id":"1","lease_id":""}`, false},
		{`{"lease_id":"1","id":"2"}`, false},
		{`{"id":"1", "lease_id":"2"}`, false},
		{`{"id":"1","lease_id":"2","result":1}`, false},
		{`{"id":"1","lease_id":"2"} `, false},
		{`{"id":"1\u0030","lease_id":"2"}`, false},
		{`{"id":"-1","lease_id":"2"}`, false},
		{`{"id":"1","lease_id":"2","lease_id":"3"}`, false},
		{`{"id":"1","lease_id":"2"}}`, false},
	} {
		id, lease, ok := plainAck([]byte(tc.raw))
		if ok != tc.fast {
			t.Errorf("%s: fast %v, want %v", tc.raw, ok, tc.fast)
		}
		if !ok {
			continue
		}
		var it api.AckItem
		if err := decodeStrict([]byte(tc.raw), &it, "acks[0]"); err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		if it.ID != id || it.LeaseID != lease || it.Result != nil || it.Error != nil || it.RetryIn != "" || it.Final {
			t.Errorf("%s: plainAck %q %q, decodeStrict %+v", tc.raw, id, lease, it)
		}
	}
}

// TestPlainAcks: a body plainAcks reads is one encoding/json reads the
// same, and it leaves every other body to encoding/json.
func TestPlainAcks(t *testing.T) {
	for _, tc := range []struct {
		body string
		fast bool
	}{
		{`{"acks":[{"id":"1","lease_id":"2"}]}`, true},
		{`{"acks":[{"id":"1","lease_id":"2"},{"id":"3","lease_id":"4"}]}` + "\n", true},
		{`{"acks":[{"id":"1","lease_id":"2"},{"id":"3","lease_id":"4"},{"id":"5","lease_id":"6"}]} `, true},
		{`{"acks":[]}`, false},
		{`{"acks":[{"id":"1","lease_id":"2"},{"id":"3","lease_id":"4"},{"id":"5","lease_id":"6"},{"id":"7","lease_id":"8"}]}`, false}, // more than 3
		{`{"acks":[{"id":"1","lease_id":"2"},]}`, false},
		{`{"acks":[{"id":"1","lease_id":"2"},,{"id":"3","lease_id":"4"}]}`, false},
		{`{"acks":[{"id":"1","lease_id":"2"}{"id":"3","lease_id":"4"}]}`, false},
		{`{"acks":[{"id":"1","lease_id":"2"}],"x":1}`, false},
		{`{"acks":[{"id":"1","lease_id":"2"}]}]}`, false},
		{`{"acks":[{"id":"1","lease_id":"2","result":{"a":1}},{"id":"3","lease_id":"4"}]}`, false},
		{` {"acks":[{"id":"1","lease_id":"2"}]}`, false},
		{`{"acks":[{"id":"1","lease_id":"2"}]}x`, false},
	} {
		if ok := checkPlainAcks(t, []byte(tc.body), 3); ok != tc.fast {
			t.Errorf("%s: fast %v, want %v", tc.body, ok, tc.fast)
		}
	}
}

// checkPlainAcks fails t unless encoding/json reads body as plainAcks
// does, when plainAcks takes it; it says whether plainAcks took it.
func checkPlainAcks(t *testing.T, body []byte, max int) bool {
	t.Helper()
	items, ok := plainAcks(body, max)
	if !ok {
		return false
	}
	var req api.AckRequest
	if err := decodeStrict(body, &req, ""); err != nil {
		t.Fatalf("%s: plainAcks took it, encoding/json: %v", body, err)
	}
	if len(items) != len(req.Acks) {
		t.Fatalf("%s: %d items, encoding/json %d", body, len(items), len(req.Acks))
	}
	for i, it := range req.Acks {
		if items[i] != [2]string{it.ID, it.LeaseID} || it.Result != nil || it.Error != nil || it.RetryIn != "" || it.Final {
			t.Fatalf("%s: item %d %q, encoding/json %+v", body, i, items[i], it)
		}
	}
	return true
}

func FuzzPlainAcks(f *testing.F) {
	f.Add([]byte(`{"acks":[{"id":"1","lease_id":"2"},{"id":"3","lease_id":"4"}]}`))
	f.Add([]byte(`{"acks":[{"id":"1","lease_id":"2"}]}` + "\n"))
	f.Fuzz(func(t *testing.T, body []byte) { checkPlainAcks(t, body, 1000) })
}
