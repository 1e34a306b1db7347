package client

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/beaver-raft/beaver-raft/api"
)

func randomAck(rng *rand.Rand) api.AckRequest {
	pick := func(v []string) string { return v[rng.IntN(len(v))] }
	raws := []string{`{"n":1}`, `[1,"a"]`, `"s"`, `null`, `{"a": 1}`, `{"h":"<b>"}`, `"é"`, `{"deep":[[[]]]}`}
	var req api.AckRequest
	req.Acks = []api.AckItem{}
	for range rng.IntN(5) {
		it := api.AckItem{ID: pick([]string{"1", "123456789", "", "x\"y"}), LeaseID: pick([]string{"77", "", "<"})}
		switch rng.IntN(4) {
		case 0:
			it.Result = json.RawMessage(pick(raws))
		case 1:
			e := pick(leaseStrings)
			it.Error = &e
			it.RetryIn = pick([]string{"", "10s", "1m\t"})
			it.Final = rng.IntN(2) == 0
		}
		req.Acks = append(req.Acks, it)
	}
	if rng.IntN(30) == 0 {
		req.Acks = nil
	}
	return req
}

func TestEncodeAckMatchesMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	took := 0
	for range 3000 {
		req := randomAck(rng)
		want, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := encodeAck(&req)
		if !ok {
			continue
		}
		took++
		if !bytes.Equal(got, want) {
			t.Fatalf("%+v\n got %s\nwant %s", req, got, want)
		}
	}
	if took < 300 {
		t.Errorf("encodeAck took %d of 3000", took)
	}
	plain := api.AckRequest{Acks: []api.AckItem{{ID: "1", LeaseID: "2"}, {ID: "3", LeaseID: "4"}}}
	if b, ok := encodeAck(&plain); !ok || string(b) != `{"acks":[{"id":"1","lease_id":"2"},{"id":"3","lease_id":"4"}]}` {
		t.Errorf("plain acks: %s %v", b, ok)
	}
}

// TestAckItemFields fails when api.AckItem gains a field encodeAck does
// not write.
func TestAckItemFields(t *testing.T) {
	var names []string
	for f := range reflect.TypeFor[api.AckItem]().Fields() {
		names = append(names, f.Name)
	}
	if want := []string{"ID", "LeaseID", "Result", "Error", "RetryIn", "Final"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("api.AckItem has fields %v; encodeAck writes %v: teach it the new ones", names, want)
	}
}

// checkAnswer fails t unless decodeAnswer and encoding/json agree on b
// decoded into a new value of out's type.
func checkAnswer[T any](t testing.TB, b []byte) {
	t.Helper()
	var got, want T
	gerr := decodeAnswer(b, &got)
	werr := json.NewDecoder(bytes.NewReader(b)).Decode(&want)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("%s\nerror %v, encoding/json %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s\n got %+v\nwant %+v", b, got, want)
	}
}

func mutations(rng *rand.Rand, b []byte) [][]byte {
	c := bytes.Clone(b)
	c[rng.IntN(len(c))] ^= byte(1 << rng.IntN(8))
	k := rng.IntN(len(b))
	return [][]byte{b, b[:rng.IntN(len(b))], c, append(append(bytes.Clone(b[:k]), ' '), b[k:]...)}
}

func TestDecodeAnswersMatchJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 3000 {
		var ack api.AckResponse
		var batch api.BatchResponse
		ack.Results = []api.AckResult{}
		batch.IDs, batch.Duplicates = []string{}, []bool{}
		for range rng.IntN(4) {
			r := api.AckResult{ID: []string{"1", "42", "", "a\"b"}[rng.IntN(4)], OK: rng.IntN(4) > 0}
			if !r.OK {
				r.Error = &api.ErrorBody{Code: api.CodeConflict, Message: "lease 7 of job 1 is not current"}
			}
			ack.Results = append(ack.Results, r)
			batch.IDs = append(batch.IDs, r.ID)
			batch.Duplicates = append(batch.Duplicates, rng.IntN(2) == 0)
		}
		for _, v := range []any{ack, batch} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range mutations(rng, append(b, '\n')) {
				checkAnswer[api.AckResponse](t, m)
				checkAnswer[api.BatchResponse](t, m)
			}
		}
	}
	// the common answers take the hand-written path
	var ack api.AckResponse
	if !(&leaseDecoder{b: []byte(`{"results":[{"id":"1","ok":true},{"id":"2","ok":true}]}` + "\n")}).ackResponse(&ack) || len(ack.Results) != 2 {
		t.Errorf("all-ok ack answer not read by hand: %+v", ack)
	}
	var batch api.BatchResponse
	if !(&leaseDecoder{b: []byte(`{"ids":["1","2"],"duplicates":[false,true]}` + "\n")}).batchResponse(&batch) || len(batch.IDs) != 2 || !batch.Duplicates[1] {
		t.Errorf("batch answer not read by hand: %+v", batch)
	}
}

func FuzzDecodeAnswers(f *testing.F) {
	f.Add([]byte(`{"results":[{"id":"1","ok":true}]}`))
	f.Add([]byte(`{"ids":["1","2"],"duplicates":[false,true]}`))
	f.Add([]byte(`{"results":[{"id":"1","ok":false,"error":{"code":"conflict","message":"m"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAnswer[api.AckResponse](t, b)
		checkAnswer[api.BatchResponse](t, b)
		checkAnswer[api.LeaseResponse](t, b)
	})
}

func FuzzEncodeAck(f *testing.F) {
	f.Add("1", "2", []byte(`{"a":1}`), "oops", "10s", true, false)
	f.Fuzz(func(t *testing.T, id, lease string, result []byte, msg, retry string, final, fail bool) {
		it := api.AckItem{ID: id, LeaseID: lease, Result: result, RetryIn: retry, Final: final}
		if fail {
			it.Error = &msg
		}
		req := api.AckRequest{Acks: []api.AckItem{it, {ID: id, LeaseID: lease}}}
		got, ok := encodeAck(&req)
		if !ok {
			return
		}
		want, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("encodeAck took what json.Marshal refuses (%v): %s", err, got)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf(" got %s\nwant %s", got, want)
		}
	})
}
