# Beaver-Raft developer targets. `make test` is what CI runs.
GO ?= go
BENCHTIME ?= 1x
COUNT ?= 5

.PHONY: all build test test-short bench fuzz crash-extended campaign cluster-campaign cluster-partitions demo demo-cluster clean

all: build

build:
	$(GO) build -o bin/beaver-raft ./cmd/beaver-raft

test:
	$(GO) vet ./...
	$(GO) test -race ./...

test-short:
	$(GO) test -short ./...

# Go benchmarks of the durable core; quote medians (COUNT runs each).
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count $(COUNT) ./internal/fsm/ ./internal/wal/ ./internal/replica/local/

# Each native fuzz target for FUZZTIME.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) ./internal/fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZTIME) ./internal/fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) ./internal/wal/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeOp$$' -fuzztime $(FUZZTIME) ./internal/replica/raftrep/raftlog/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/snapshot/
	$(GO) test -run '^$$' -fuzz '^FuzzEnqueue$$' -fuzztime $(FUZZTIME) ./internal/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzLease$$' -fuzztime $(FUZZTIME) ./internal/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzAck$$' -fuzztime $(FUZZTIME) ./internal/httpapi/

# The process crash test with many more kills than the default run.
CRASH_ITERATIONS ?= 1000
crash-extended:
	$(GO) test -run '^TestCrashRecovery$$' -count 1 -timeout 2h ./internal/replica/local/ -crash.iterations $(CRASH_ITERATIONS) -v

# The extended crash and fault campaign (figures go into docs/crash-safety.md).
KILLS ?= 1000
FLIPS ?= 1000
POWERCUTS ?= 100000
campaign:
	$(GO) test -count 1 -timeout 3h -run '^TestKillLoop$$' ./test/e2e/ -v -e2e.kills $(KILLS) -e2e.report kill-loop.json
	$(GO) test -count 1 -timeout 1h -run '^TestBitFlipsAreDetected$$' ./internal/replica/local/ -v -corrupt.flips $(FLIPS)
	$(GO) test -count 1 -timeout 3h -run '^TestPowerCut' ./internal/replica/local/ -v -powercut.points $(POWERCUTS)
	$(GO) test -count 1 -timeout 1h -run '^TestCrashRecovery$$' ./internal/replica/local/ -v -crash.iterations $(KILLS)

# The cluster kill loop of the real binary for CLUSTER_DURATION on
# CLUSTER_NODES nodes: a leader SIGKILL every 5s, follower SIGSTOPs
# (figures go into docs/cluster.md, "Testing").
CLUSTER_DURATION ?= 10m
CLUSTER_NODES ?= 5
cluster-campaign:
	$(GO) test -count 1 -timeout 1h -run '^TestClusterKillLoop$$' ./test/e2e/ -v -e2e.cluster.duration $(CLUSTER_DURATION) -e2e.cluster.nodes $(CLUSTER_NODES) -e2e.cluster.report cluster-kill-loop.json

# Partitions of the real binary behind a link proxy: PARTITION_ROUNDS
# partitions of 3 s on PARTITION_NODES nodes (docs/cluster.md, "Testing").
PARTITION_ROUNDS ?= 30
PARTITION_NODES ?= 5
cluster-partitions:
	$(GO) test -count 1 -timeout 1h -run '^TestClusterPartitions$$' ./test/e2e/ -v -e2e.partition.nodes $(PARTITION_NODES) -e2e.partition.rounds $(PARTITION_ROUNDS)

clean:
	rm -rf bin

# The README tour end to end (build, enqueue, kill -9, restart, nothing lost).
demo:
	bash scripts/demo.sh

# The cluster tour: three nodes, kill -9 the leader, a new one takes over,
# every job completes, the killed node rejoins.
demo-cluster:
	bash scripts/demo-cluster.sh

include bench/bench.mk
