#!/usr/bin/env bash
# Many connections over several nodes (BENCHMARKS.md, "Several nodes: scale"): a redis-server
# on a free loopback port (no persistence), NODES release servers on it, and LOADERS roomload
# processes (each at most ~19 000 clients: the machine allows 20 000 open files per process)
# with disjoint rooms (--first-room), every room spread over every node. Rooms of 100, RATE
# messages/s per room, HOLD seconds. Prints each loader's JSON, then each node's RSS and CPU.
# Usage: [DRAIN=SECS] tools/cluster_scale.sh OUT_DIR NODES LOADERS CLIENTS_PER_LOADER [RATE] [HOLD]
# (DRAIN: how long the loaders keep reading after the last send, default 3 s)
set -euo pipefail
out=${1:?usage: tools/cluster_scale.sh OUT_DIR NODES LOADERS CLIENTS_PER_LOADER [RATE] [HOLD]}
nodes=${2:?} loaders=${3:?} per=${4:?} rate=${5:-1} hold=${6:-60}
cd "$(dirname "$0")/.."
cargo build --release -q -p chat-mio-server -p roomload
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$out" \
  --maxclients 1000 >"$out/redis.log" 2>&1 &
pids=($!)
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
sleep 0.5
urls=()
node_pids=()
per_node=$(( (loaders * per) / nodes + 1000 ))
for i in $(seq 1 "$nodes"); do
  port=$(free_port)
  target/release/chat-mio-server --bind 127.0.0.1:$port --store memory --rate-limit 0 \
    --max-connections-per-ip 0 --max-connections "$per_node" --max-rooms 5000 --heartbeat 0 \
    --idle-timeout 0 \
    --log-level warn --redis "redis://127.0.0.1:$rport/0" --node-name "n$i" \
    >"$out/node-$i.log" 2>&1 &
  pids+=($!); node_pids+=($!)
  urls+=(--url-base ws://127.0.0.1:$port)
done
sleep 1
rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
for p in "${node_pids[@]}"; do echo "node $p before: rss_kib=$(rss $p) cpu_ticks=$(cpu $p)"; done | tee "$out/nodes-before.txt"
loader_pids=()
for l in $(seq 0 $((loaders - 1))); do
  target/release/roomload "${urls[@]}" --json --clients "$per" --room-size 100 --rate "$rate" \
    --hold "$hold" --drain "${DRAIN:-3}" --first-room $((l * (per / 100 + 1))) --connect-timeout 180 \
    --pid "${node_pids[$((l % nodes))]}" >"$out/loader-$l.json" 2>"$out/loader-$l.err" &
  loader_pids+=($!)
done
# Sample the nodes while the loaders hold their connections.
( sleep $((hold / 2 + 20)); for p in "${node_pids[@]}"; do echo "node $p holding: rss_kib=$(rss $p) cpu_ticks=$(cpu $p)"; done ) | tee "$out/nodes-holding.txt" &
for p in "${loader_pids[@]}"; do wait "$p" || true; done
for p in "${node_pids[@]}"; do echo "node $p after: rss_kib=$(rss $p) cpu_ticks=$(cpu $p)"; done | tee "$out/nodes-after.txt"
# Each node's counters at the end (closes by reason, cluster link changes, ...).
i=0
for u in "${urls[@]}"; do
  [ "$u" = --url-base ] && continue
  i=$((i + 1))
  curl -s "http://${u#ws://}/metrics" >"$out/node-$i.metrics" || true
done
for l in $(seq 0 $((loaders - 1))); do echo "loader $l: $(cat "$out/loader-$l.json")"; done
