# Benchmark targets of the running system; included by the Makefile
# (`include bench/bench.mk`). See docs/performance.md for what they measure
# and how to read them.

# Flags for bench/peers, e.g. PEERS_FLAGS='--quick' or
# PEERS_FLAGS='--rounds 5 --json'.
PEERS_FLAGS ?=
# Flags added to every `beaver-raft bench` run of bench-system, e.g.
# BENCH_FLAGS='--json'.
BENCH_FLAGS ?=
BENCH_JOBS ?= 200000
RECOVERY_JOBS ?= 1000000

.PHONY: bench-system bench-peers bench-peers-check test-peers

# Every scenario of `beaver-raft bench` against an in-process server
# (sync always), then the recovery of RECOVERY_JOBS pending jobs.
bench-system: build
	./bin/beaver-raft bench enqueue -n $(BENCH_JOBS) $(BENCH_FLAGS)
	./bin/beaver-raft bench enqueue-batch -n $(BENCH_JOBS) $(BENCH_FLAGS)
	./bin/beaver-raft bench e2e -n $(BENCH_JOBS) $(BENCH_FLAGS)
	./bin/beaver-raft bench remote -n $(BENCH_JOBS) $(BENCH_FLAGS)
	./bin/beaver-raft bench recovery -n $(RECOVERY_JOBS) $(BENCH_FLAGS)

# beanstalkd must be installed by hand; make does not install packages.
bench-peers-check:
	@command -v beanstalkd >/dev/null 2>&1 || { \
		echo "beanstalkd is not installed. Install it with:"; \
		echo "    apt-get install -y beanstalkd"; \
		echo "or leave it out: cd bench/peers && $(GO) run . --systems beaver-raft,jetstream"; \
		exit 1; }

# Beaver-Raft against beanstalkd and NATS JetStream (bench/peers is a module
# of its own: the main module gains no dependency).
bench-peers: bench-peers-check
	cd bench/peers && $(GO) run . $(PEERS_FLAGS)

# The peer harness's own tests (not part of `go test ./...` of the main
# module); beanstalkd's are skipped when it is not installed.
test-peers:
	cd bench/peers && $(GO) vet ./... && $(GO) test -race ./...

# Single node against 3-node clusters (clients on the leader, and on a
# follower that forwards the writes) against JetStream with a 3-replica
# stream, alternating, median of the rounds (docs/performance.md, Cluster).
CLUSTER_FLAGS ?= --jobs 20000 --rounds 3
.PHONY: bench-cluster
bench-cluster:
	cd bench/peers && $(GO) run . --systems beaver-raft,beaver-raft-3,beaver-raft-3-follower,jetstream-3 \
		--durable-only --scenarios enqueue,enqueue-client,enqueue-batch,stream,remote $(CLUSTER_FLAGS)
