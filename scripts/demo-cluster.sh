#!/usr/bin/env bash
# The cluster tour, end to end: start three nodes, enqueue jobs through a
# follower, kill -9 the leader while the jobs run, watch another node take
# over and every job complete, then restart the killed node and watch it
# rejoin and catch up. Ports: DEMO_CLUSTER_PORT (API of n1; n2, n3 the next
# ones), +30 the node-to-node ports, +2020 the metrics ports.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/beaver-raft
data=$(mktemp -d)
base=${DEMO_CLUSTER_PORT:-17071}
ids=(n1 n2 n3)
declare -A pid api met raft
for i in 0 1 2; do
  id=${ids[$i]}
  api[$id]=127.0.0.1:$((base + i))
  raft[$id]=127.0.0.1:$((base + 30 + i))
  met[$id]=127.0.0.1:$((base + 2020 + i))
  pid[$id]=
done
peers=()
for id in "${ids[@]}"; do peers+=(--peer "$id=${raft[$id]}"); done

cleanup() {
  set +e
  for id in "${ids[@]}"; do
    if [ -n "${pid[$id]}" ]; then kill -9 "${pid[$id]}" 2>/dev/null; fi
  done
  if [ -n "${DEMO_KEEP:-}" ]; then echo "kept $data"; else rm -rf "$data"; fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

field() { # field NAME < json: the first value of "NAME": (a number or a string)
  { grep -o "\"$1\":\(\"[^\"]*\"\|[0-9]*\)" || true; } | head -1 | cut -d: -f2 | tr -d '"'
}

start() { # start ID: run the node in the background, wait until it serves
  local id=$1 before
  before=$(grep -c 'msg=ready' "$data/$id.log" 2>/dev/null || true)
  "$bin" run --data-dir "$data/$id" --listen "${api[$id]}" --metrics-listen "${met[$id]}" \
    --cluster --node-id "$id" --raft-listen "${raft[$id]}" --bootstrap "${peers[@]}" \
    2>>"$data/$id.log" &
  pid[$id]=$!
  for _ in $(seq 1 300); do
    if [ "$(grep -c 'msg=ready' "$data/$id.log" 2>/dev/null || true)" -gt "${before:-0}" ]; then return; fi
    kill -0 "${pid[$id]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "node $id did not start:"; cat "$data/$id.log"; exit 1
}

leader_of() { # leader_of ID: the leader that node ID knows, or nothing
  "$bin" cluster status --server "http://${api[$1]}" --json --timeout 2s 2>/dev/null | field leader_id || true
}

wait_leader() { # wait_leader ID [NOT]: until node ID knows a leader (other than NOT)
  for _ in $(seq 1 300); do
    l=$(leader_of "$1")
    if [ -n "$l" ] && [ "$l" != "${2:-}" ]; then echo "$l"; return; fi
    sleep 0.1
  done
  echo "no leader known to $1"; exit 1
}

say "build"
go build -o "$bin" ./cmd/beaver-raft

say "start three nodes (every one with --bootstrap and the same --peer list)"
for id in "${ids[@]}"; do start "$id"; done
leader=$(wait_leader n1)
"$bin" cluster status --server "http://${api[n2]}"

follower=n1
[ "$leader" = n1 ] && follower=n2
say "enqueue examples/jobs.json and 2000 sleep jobs of 50ms through $follower (a follower: it forwards to $leader)"
echo "(a 5s timeout each: a job running on the killed leader runs again once its lease, its timeout, expires)"
"$bin" enqueue --server "http://${api[$follower]}" --file examples/jobs.json
for i in $(seq 1 2000); do echo '{"type":"sleep","timeout":"5s","payload":{"duration":"50ms"}}'; done > "$data/more.jsonl"
"$bin" enqueue --server "http://${api[$follower]}" --file "$data/more.jsonl"
expected=$(( 2000 + $(grep -c '"type"' examples/jobs.json) ))
"$bin" status --server "http://${api[$follower]}"

say "kill -9 the leader ($leader) while jobs run"
kill -9 "${pid[$leader]}"; wait "${pid[$leader]}" 2>/dev/null || true; pid[$leader]=
echo "killed $leader"
new=$(wait_leader "$follower" "$leader")
echo "new leader: $new"
"$bin" cluster status --server "http://${api[$follower]}"

say "wait until every job is finished (the two nodes left are a quorum)"
for _ in $(seq 1 600); do
  s=$("$bin" status --server "http://${api[$follower]}" --json)
  left=$(( $(echo "$s" | field pending) + $(echo "$s" | field scheduled) + $(echo "$s" | field in_flight) ))
  [ "$left" -eq 0 ] && break
  sleep 0.2
done
"$bin" status --server "http://${api[$follower]}"
s=$("$bin" status --server "http://${api[$follower]}" --json)
completed=$(echo "$s" | field completed)
failed=$(echo "$s" | field failed)
canceled=$(echo "$s" | field canceled)
echo "acknowledged jobs: $expected; completed: $completed; failed: $failed; canceled: $canceled"
if [ $(( completed + failed + canceled )) -ne "$expected" ]; then
  echo "MISMATCH: some acknowledged job did not finish"; exit 1
fi

say "restart $leader on its data directory with the same flags: it rejoins as a follower and catches up"
start "$leader"
commit=$("$bin" cluster status --server "http://${api[$new]}" --json | field commit_index)
for _ in $(seq 1 300); do
  st=$("$bin" cluster status --server "http://${api[$leader]}" --json --timeout 2s 2>/dev/null || true)
  applied=$(echo "$st" | field applied_index)
  if [ -n "$applied" ] && [ "$applied" -ge "$commit" ] && [ "$(echo "$st" | field leader_id)" = "$new" ]; then break; fi
  sleep 0.1
done
"$bin" cluster status --server "http://${api[$leader]}"
echo "applied index of $leader: $applied (the leader's commit index before the restart: $commit)"
if [ -z "$applied" ] || [ "$applied" -lt "$commit" ]; then
  echo "MISMATCH: $leader did not catch up"; exit 1
fi

say "stop every node (SIGTERM)"
for id in "${ids[@]}"; do
  [ -n "${pid[$id]}" ] && kill -TERM "${pid[$id]}"
done
for id in "${ids[@]}"; do
  [ -n "${pid[$id]}" ] && { wait "${pid[$id]}" 2>/dev/null || true; pid[$id]=; }
done
say "result"
echo "a leader killed with kill -9, $expected acknowledged jobs all finished, $leader rejoined: nothing lost."
