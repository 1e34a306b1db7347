package fsm

// LeaseIssued reports whether this machine has handed out lease id. On a
// cluster follower a lease the leader made may not be applied here yet: a
// worker that learns the state of its job from this machine (is it
// canceled?) must not take a state from before its own lease for an answer
// (package worker).
func (m *Machine) LeaseIssued(id uint64) bool { return id != 0 && id < m.nextLease }
