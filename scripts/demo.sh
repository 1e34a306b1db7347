#!/usr/bin/env bash
# The README tour, end to end: start a server, enqueue a file of jobs and a
# few thousand more, kill -9 it while jobs are running, restart it, and check
# that every acknowledged job completes.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/beaver-raft
data=$(mktemp -d)
api=127.0.0.1:${DEMO_PORT:-17070}
met=127.0.0.1:${DEMO_METRICS_PORT:-19090}
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

start() {
  "$bin" run --data-dir "$data/data" --listen "$api" --metrics-listen "$met" --workers 8 \
    2>>"$data/server.log" &
  pid=$!
  for _ in $(seq 1 300); do
    if "$bin" status --server "http://$api" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "server did not start:"; cat "$data/server.log"; exit 1
}

field() { # field NAME < status.json: the number after "NAME":
  grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2
}

say "build"
go build -o "$bin" ./cmd/beaver-raft

say "start the server on a fresh data directory"
start
grep 'msg=ready' "$data/server.log" | tail -1
echo "watch it in the dashboard: http://$api/ui/"

say "enqueue examples/jobs.json, then 3000 sleep jobs of 20ms (some will be running at the kill)"
"$bin" enqueue --server "http://$api" --file examples/jobs.json
for i in $(seq 1 3000); do echo '{"type":"sleep","payload":{"duration":"20ms"}}'; done > "$data/more.jsonl"
"$bin" enqueue --server "http://$api" --file "$data/more.jsonl"
"$bin" status --server "http://$api"

say "kill -9 while jobs run"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "killed"

say "restart: recovery replays the WAL since the last snapshot"
start
grep 'msg=ready' "$data/server.log" | tail -1

say "wait until every job is finished"
for _ in $(seq 1 600); do
  s=$("$bin" status --server "http://$api" --json)
  left=$(( $(echo "$s" | field pending) + $(echo "$s" | field scheduled) + $(echo "$s" | field in_flight) ))
  [ "$left" -eq 0 ] && break
  sleep 0.2
done
"$bin" status --server "http://$api"

s=$("$bin" status --server "http://$api" --json)
completed=$(echo "$s" | field completed)
failed=$(echo "$s" | field failed)
canceled=$(echo "$s" | field canceled)
expected=$(( 3000 + $(grep -c '"type"' examples/jobs.json) ))
say "result"
echo "acknowledged jobs: $expected; completed: $completed; failed: $failed; canceled: $canceled"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
if [ $(( completed + failed + canceled )) -ne "$expected" ]; then
  echo "MISMATCH: some acknowledged job did not finish"; exit 1
fi
echo "nothing lost."
