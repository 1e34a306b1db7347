package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestCodecGolden pins the command encoding byte for byte: the digests and
// the hex below were written by AppendCommand before it pre-sized its
// buffer (enqueueSizeHint), which must change only capacities.
func TestCodecGolden(t *testing.T) {
	h := sha256.New()
	n := 0
	for _, seed := range []uint64{1, 2, 3} {
		for _, c := range randomStream(seed, 300) {
			b := AppendCommand(nil, &c)
			n += len(b)
			h.Write(b)
		}
	}
	if got, want := fmt.Sprintf("%d %x", n, h.Sum(nil)), "35214 203ee7f83c138b1cbf4c2c075d24ce73f9b5e1be1df08b15f16c56651a5c6cd0"; got != want {
		t.Errorf("random streams encode to %s, want %s", got, want)
	}
	c := enq(5*sec, JobSpec{Queue: "q", Type: "t", Payload: `{"a":1}`, Priority: -3, RunAt: 7 * sec, MaxAttempts: 5, Timeout: 45 * sec, UniqueKey: "k"}, JobSpec{Type: "t2", Payload: "null"})
	const v1 = "010180c8afa0250201710174077b2261223a317d058098dc93340a8088aca3cf02016b00027432046e756c6c0000000000"
	if got := hex.EncodeToString(AppendCommand(nil, c)); got != v1 {
		t.Errorf("enqueue encodes to %s, want %s", got, v1)
	}
	c.Jobs[1].Deps = &Deps{On: []uint64{5, 1 << 40}, OnIndex: []int{0}, RunOnFailure: true}
	c.Jobs[0].UniqueFor = 60 * sec
	const v2 = "020180c8afa0250201710174077b2261223a317d058098dc93340a8088aca3cf02016b010680e0ba84bf030000027432046e756c6c00000000000a0802058080808080200b0201000c010100"
	if got := hex.EncodeToString(AppendCommand(nil, c)); got != v2 {
		t.Errorf("enqueue with extension fields encodes to %s, want %s", got, v2)
	}
}

// TestAppendCommandPresized: an enqueue of a batch is encoded with one
// allocation (enqueueSizeHint covers it; the race detector adds one), not
// the dozen of a buffer that doubles, after whatever dst held.
func TestAppendCommandPresized(t *testing.T) {
	specs := make([]JobSpec, 1000)
	for i := range specs {
		specs[i] = JobSpec{Queue: "emails", Type: "send_email", Payload: `{"n":` + strings.Repeat("1", 90) + `}`,
			Priority: int32(i % 10), RunAt: 1 << 62, MaxAttempts: 5, Timeout: 45 * sec, UniqueKey: fmt.Sprintf("welcome-%d", i)}
	}
	c := enq(1<<62, specs...)
	want := AppendCommand(nil, c)
	if allocs := testing.AllocsPerRun(10, func() { AppendCommand(nil, c) }); allocs > 2 {
		t.Errorf("AppendCommand of %d jobs: %v allocations, want 1", len(specs), allocs)
	}
	if hint := enqueueSizeHint(specs); hint < len(want) || hint > len(want)*5/4 {
		t.Errorf("size hint %d for an encoding of %d bytes", hint, len(want))
	}
	prefix := []byte("prefix")
	if got := AppendCommand(bytes.Clone(prefix), c); !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Error("AppendCommand after a prefix differs from the encoding alone")
	}
}

// TestDecodeCommandReusing: decoding into an array a command used before
// gives exactly what DecodeCommand gives, nothing left over from the last.
func TestDecodeCommandReusing(t *testing.T) {
	var spare []JobSpec
	for _, seed := range []uint64{1, 2} {
		for _, c := range randomStream(seed, 300) {
			b := AppendCommand(nil, &c)
			want, werr := DecodeCommand(b)
			for i := range spare[:cap(spare)] { // dirty every field
				spare[:cap(spare)][i] = JobSpec{Queue: "x", Payload: "y", UniqueKey: "z", UniqueFor: 9, Deps: &Deps{On: []uint64{1}}, Priority: 3}
			}
			got, err := DecodeCommandReusing(b, spare)
			if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: reusing gives %+v, %v; want %+v, %v", c.Kind, got, err, want, werr)
			}
			if cap(got.Jobs) > cap(spare) {
				spare = got.Jobs[:0]
			}
		}
	}
	if cap(spare) == 0 {
		t.Fatal("no enqueue in the streams")
	}
}
