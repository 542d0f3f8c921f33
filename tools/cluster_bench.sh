#!/usr/bin/env bash
# Several nodes against one, side by side in one sitting (BENCHMARKS.md, "Several nodes"): a
# redis-server on a free loopback port (no persistence), the release server as one node
# without Redis, then three nodes on that Redis; roomload measures each, in turns (ABCABC...):
#   single   one node, no Redis (the embedded default, memory store)
#   same     one node of the cluster: every client on it, each message through Redis
#   spread   three nodes: each room's clients spread over the three (cross-node)
# Each run: ROOMS rooms of 99 clients, RATE messages/s per room, 10 s. Usage:
#   tools/cluster_bench.sh OUT_DIR [RUNS] [RATE] [ROOMS]
set -euo pipefail
out=${1:?usage: tools/cluster_bench.sh OUT_DIR [RUNS] [RATE] [ROOMS]}
runs=${2:-3}
rate=${3:-200}
rooms=${4:-1}
cd "$(dirname "$0")/.."
cargo build --release -q -p chat-mio-server -p roomload
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$out" \
  >"$out/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true' EXIT
sleep 0.5
clients=$((rooms * 99))
common=(--store memory --rate-limit 0 --max-connections-per-ip 0 --log-level warn --heartbeat 0)
run() { # MODE RUN
  local mode=$1 n=$2 pids=() urls=()
  redis-cli -p "$rport" FLUSHALL >/dev/null
  local nodes=1
  [ "$mode" = spread ] && nodes=3
  for i in $(seq 1 $nodes); do
    local port; port=$(free_port)
    local cluster=()
    [ "$mode" != single ] && cluster=(--redis "redis://127.0.0.1:$rport/0" --node-name "n$i")
    target/release/chat-mio-server --bind 127.0.0.1:$port "${common[@]}" "${cluster[@]}" \
      >"$out/server-$mode-$n-$i.log" 2>&1 &
    pids+=($!)
    urls+=(--url-base ws://127.0.0.1:$port)
  done
  sleep 0.7
  target/release/roomload "${urls[@]}" --pid "${pids[0]}" --json --clients $clients \
    --room-size 99 --rate "$rate" --hold 10 --drain 2 >"$out/$mode-$n.json"
  for p in "${pids[@]}"; do kill -TERM "$p"; done
  for p in "${pids[@]}"; do wait "$p" || true; done
  echo "$mode $n: $(cat "$out/$mode-$n.json")"
}
for n in $(seq 1 "$runs"); do
  for mode in single same spread; do
    run $mode "$n"
  done
done
