package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomCommand makes a plausible command for m: it names existing jobs and
// current leases most of the time, and stale or unknown ones sometimes.
func randomCommand(rng *rand.Rand, m *Machine, now *int64) Command {
	*now += int64(rng.IntN(3)) * sec / 2
	if rng.IntN(20) == 0 {
		*now -= sec // proposers' clocks are not monotonic
	}
	queues := []string{"default", "q1", "q2"}
	pickID := func() uint64 { return uint64(rng.IntN(int(m.nextID) + 2)) }
	inflight, _ := m.List(Filter{State: StateInFlight, Limit: 50})
	switch k := rng.IntN(104); {
	case k < 35:
		n := 1 + rng.IntN(4)
		specs := make([]JobSpec, n)
		for i := range specs {
			specs[i] = JobSpec{
				Queue:       queues[rng.IntN(len(queues))],
				Type:        []string{"t", "u"}[rng.IntN(2)],
				Payload:     fmt.Sprintf(`{"n":%d}`, rng.IntN(1000)),
				Priority:    int32(rng.IntN(3)),
				MaxAttempts: rng.IntN(4),
			}
			if rng.IntN(4) == 0 {
				specs[i].RunAt = *now + int64(rng.IntN(10))*sec
			}
			if rng.IntN(5) == 0 {
				specs[i].UniqueKey = fmt.Sprintf("u%d", rng.IntN(10))
				specs[i].UniqueFor = int64(rng.IntN(3)) * 3 * sec // 0, 3s, 6s
			}
			if rng.IntN(50) == 0 {
				specs[i].Type = "" // invalid: rejects the whole batch
			}
			if rng.IntN(4) == 0 {
				d := &Deps{RunOnFailure: rng.IntN(3) == 0}
				for range rng.IntN(3) {
					d.On = append(d.On, pickID()) // sometimes a missing job: rejected
				}
				if i > 0 && rng.IntN(2) == 0 {
					d.OnIndex = []int{rng.IntN(i)}
				}
				if len(d.On)+len(d.OnIndex) > 0 {
					specs[i].Deps = d
				}
			}
		}
		return Command{Kind: KindEnqueue, Now: *now, Jobs: specs}
	case k < 55:
		qs := []string{queues[rng.IntN(3)]}
		if rng.IntN(3) == 0 {
			qs = append(qs, queues[rng.IntN(3)])
		}
		var types []string
		if rng.IntN(3) == 0 {
			types = []string{[]string{"t", "u"}[rng.IntN(2)]}
			if rng.IntN(2) == 0 {
				qs = nil
			}
		}
		c := Command{Kind: KindLease, Now: *now, Queues: qs, Types: types, Max: 1 + rng.IntN(3), Worker: "w", LeaseFor: int64(rng.IntN(3)) * 2 * sec}
		if len(inflight) > 0 && rng.IntN(3) == 0 {
			j := inflight[rng.IntN(len(inflight))]
			c.Acks = []Ack{{ID: j.ID, LeaseID: j.LeaseID, Result: `"ok"`, Fail: rng.IntN(2) == 0}}
		}
		return c
	case k < 75:
		n := 1 + rng.IntN(3)
		acks := make([]Ack, n)
		for i := range acks {
			if len(inflight) > 0 && rng.IntN(5) != 0 {
				j := inflight[rng.IntN(len(inflight))]
				acks[i] = Ack{ID: j.ID, LeaseID: j.LeaseID}
			} else {
				acks[i] = Ack{ID: pickID(), LeaseID: uint64(rng.IntN(int(m.nextLease) + 1))}
			}
			if rng.IntN(2) == 0 {
				acks[i].Fail = true
				acks[i].Error = "err"
				acks[i].RetryAt = *now + int64(rng.IntN(4))*sec
				acks[i].Final = rng.IntN(10) == 0
			} else {
				acks[i].Result = `"ok"`
			}
		}
		return Command{Kind: KindAck, Now: *now, Acks: acks}
	case k < 80:
		c := Command{Kind: KindHeartbeat, Now: *now, ID: pickID(), LeaseID: 1, LeaseFor: int64(rng.IntN(5)) * sec}
		if len(inflight) > 0 {
			j := inflight[rng.IntN(len(inflight))]
			c.ID, c.LeaseID = j.ID, j.LeaseID
		}
		return c
	case k < 85:
		c := Command{Kind: KindCancel, Now: *now, ID: pickID()}
		if len(inflight) > 0 && rng.IntN(2) == 0 {
			c.ID = inflight[rng.IntN(len(inflight))].ID // a running job
		}
		return c
	case k < 89:
		return Command{Kind: KindRetry, Now: *now, ID: pickID()}
	case k < 93:
		return Command{Kind: KindTick, Now: *now, Max: rng.IntN(5)}
	case k < 96:
		name := []string{"p1", "p2"}[rng.IntN(2)]
		switch rng.IntN(4) {
		case 0:
			return Command{Kind: KindPeriodicPut, Now: *now, Periodic: &PeriodicCommand{Name: name, Def: ScheduleDef{
				Every: int64(1+rng.IntN(3)) * sec, CatchUp: CatchUp(1 + rng.IntN(3)), Origin: OriginConfig,
				Job: JobSpec{Queue: "q1", Type: "t", Payload: `{"p":1}`, MaxAttempts: 3, Timeout: sec}}}}
		case 1:
			return Command{Kind: KindPeriodicDelete, Now: *now, Periodic: &PeriodicCommand{Name: name}}
		}
		p := &PeriodicCommand{Name: name, Fires: []int64{*now - 2*sec, *now - sec, *now}[rng.IntN(3):]}
		if rng.IntN(3) == 0 {
			p.SkipTo, p.Skipped = *now-3*sec, 2
		}
		return Command{Kind: KindPeriodicFire, Now: *now, Periodic: p}
	case k < 99:
		return Command{Kind: KindPurge, Now: *now, Max: rng.IntN(5), Retention: Retention{Completed: 3 * sec, Failed: 6 * sec, Canceled: int64(rng.IntN(2)) * sec}}
	case k < 100:
		return Command{Kind: KindRecover, Now: *now}
	default:
		return Command{Kind: KindSetQueue, Now: *now, Queue: randomQueueChange(rng, queues)}
	}
}

// randomQueueChange pauses, resumes or limits one queue (now and then with
// an invalid value).
func randomQueueChange(rng *rand.Rand, queues []string) *QueueChange {
	ch := &QueueChange{Queue: queues[rng.IntN(len(queues))], Set: QueueFields(1 + rng.IntN(int(AllQueueFields)))}
	if ch.Set&SetPaused != 0 {
		ch.Settings.Paused = rng.IntN(3) == 0
	}
	if ch.Set&SetConcurrency != 0 {
		ch.Settings.Concurrency = rng.IntN(4)
	}
	if ch.Set&SetRate != 0 && rng.IntN(3) != 0 {
		ch.Settings.RateLimit, ch.Settings.RatePeriod = 1+rng.IntN(4), int64(1+rng.IntN(3))*sec
	}
	if rng.IntN(30) == 0 {
		ch.Settings.Concurrency = -1 // invalid
	}
	return ch
}

func randomStream(seed uint64, n int) []Command {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := New()
	now := int64(1000) * sec
	cmds := make([]Command, n)
	for i := range cmds {
		cmds[i] = randomCommand(rng, m, &now)
		m.Apply(&cmds[i])
	}
	return cmds
}

// TestDeterminism: one random command stream applied to a fresh machine, to a
// machine restored midway from a snapshot that was written while the first
// machine kept applying (copy on write), and through the codec, gives equal
// results and equal digests.
func TestDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cmds := randomStream(seed, 3000)
			a := New()
			mid := len(cmds) / 2
			var snap *Snapshot
			var midDigest [32]byte
			results := make([]Result, len(cmds))
			for i := range cmds {
				if i == mid {
					midDigest = a.Digest()
					snap = a.Capture()
				}
				results[i] = a.Apply(&cmds[i])
				if i%100 == 0 {
					checkInvariants(t, a)
				}
			}
			checkInvariants(t, a)
			// the snapshot was captured at mid and written only now
			var buf bytes.Buffer
			if _, err := snap.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			b := New()
			b.Apply(&Command{Kind: KindEnqueue, Now: 1, Jobs: []JobSpec{{Type: "junk"}}}) // Restore discards this
			if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, b)
			if b.Digest() != midDigest {
				t.Fatal("restored snapshot differs from the state at capture")
			}
			for i := mid; i < len(cmds); i++ {
				raw := AppendCommand(nil, &cmds[i])
				c, err := DecodeCommand(raw)
				if err != nil {
					t.Fatal(err)
				}
				r := b.Apply(&c)
				if !reflect.DeepEqual(normalize(r), normalize(results[i])) {
					t.Fatalf("command %d (%s): result %+v, want %+v", i, c.Kind, r, results[i])
				}
			}
			checkInvariants(t, b)
			if a.Digest() != b.Digest() {
				t.Fatal("digests differ after the same commands")
			}
		})
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(r Result) Result {
	if len(r.Enqueued) == 0 {
		r.Enqueued = nil
	}
	if len(r.Jobs) == 0 {
		r.Jobs = nil
	}
	if len(r.AckErrs) == 0 {
		r.AckErrs = nil
	}
	return r
}

func TestSnapshotCorruptionDetected(t *testing.T) {
	cmds := randomStream(42, 400)
	m := New()
	for i := range cmds {
		m.Apply(&cmds[i])
	}
	var buf bytes.Buffer
	if _, err := m.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for off := 0; off < len(good); off += 1 + off/50 {
		bad := append([]byte(nil), good...)
		bad[off] ^= 0x10
		r := New()
		if err := r.Restore(bytes.NewReader(bad)); err == nil {
			t.Fatalf("flip at offset %d of %d not detected", off, len(good))
		}
	}
	for n := 0; n < len(good); n += 1 + n/30 {
		r := New()
		if err := r.Restore(bytes.NewReader(good[:n])); err == nil {
			t.Fatalf("snapshot cut at %d of %d not detected", n, len(good))
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range randomStream(3, 60) {
		f.Add(AppendCommand(nil, &c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// whatever decodes survives a round trip and applies without panic
		again, err := DecodeCommand(AppendCommand(nil, &c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
		m := New()
		m.Apply(&Command{Kind: KindEnqueue, Now: 1, Jobs: []JobSpec{{Type: "t"}, {Type: "t", UniqueKey: "k"}}})
		m.Apply(&Command{Kind: KindLease, Now: 1, Queues: []string{"default"}, Max: 1})
		m.Apply(&c)
		checkInvariants(t, m)
	})
}

func FuzzRestore(f *testing.F) {
	m := New()
	for _, c := range randomStream(5, 80) {
		m.Apply(&c)
	}
	var buf bytes.Buffer
	m.Capture().WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r := New()
		if err := r.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		checkInvariants(t, r)
	})
}
