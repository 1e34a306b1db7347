// Package fsm is Beaver-Raft's deterministic job state machine.
//
// A Machine holds every job and applies Commands to them. It is pure: it does
// no I/O, reads no clock, draws no random numbers, starts no goroutines and
// never lets Go map iteration order decide anything. Every Command carries the
// time at which it was proposed; the machine's clock is the largest such time
// it has seen, so time never goes backwards inside it. Applying the same
// command stream to two machines (or to one restored from a snapshot midway)
// gives identical state and identical results. That is what lets the same
// machine run behind our own WAL on one node and behind hashicorp/raft in a
// cluster.
//
// # Concurrency
//
// A Machine is not safe for concurrent use. Its owner (the replica) applies
// commands and answers queries under one lock. The only work that may run
// concurrently with Apply is writing a Snapshot that was captured under that
// lock: capture is cheap (it copies a page directory of about 250 pointers per
// million jobs) and pages and jobs are copied on write afterwards, so the
// snapshot goroutine reads a frozen view while Apply keeps going.
//
// # Rejections
//
// A command that names a job in the wrong state, or with a lease that is not
// the current one, is rejected: Apply returns a Result carrying one of the
// sentinel errors below. A rejection is an answer, the same on every replica,
// not a failure of the system; nothing changes.
package fsm
