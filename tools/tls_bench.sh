#!/usr/bin/env bash
# TLS against plain, side by side in one sitting (BENCHMARKS.md, "Native TLS"): the release
# server on loopback, plain and --tls-cert in turn (ABAB...), each run measured by roomload
# (ws:// or wss:// with the same rustls/ring stack on the client side). Short runs: the machine
# is shared. Usage: tools/tls_bench.sh OUT_DIR [RUNS]
set -euo pipefail
out=${1:?usage: tools/tls_bench.sh OUT_DIR [RUNS]}
runs=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release -q -p chat-mio-server -p roomload
mkdir -p "$out"
cert=$out/cert.pem key=$out/key.pem
# A throwaway self-signed end-entity certificate for 127.0.0.1 (P-256).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE -days 2 \
  -keyout "$key" -out "$cert" 2>/dev/null
port=18811
run() { # MODE SCENARIO RUN ROOMLOAD_ARGS...
  local mode=$1 scenario=$2 n=$3; shift 3
  local tls=() url=ws://127.0.0.1:$port ca=()
  if [ "$mode" = tls ]; then
    tls=(--tls-cert "$cert" --tls-key "$key"); url=wss://127.0.0.1:$port; ca=(--ca "$cert")
  fi
  target/release/chat-mio-server --bind 127.0.0.1:$port --store memory --rate-limit 0 \
    --max-connections-per-ip 0 --log-level warn "${tls[@]}" >"$out/server-$mode-$scenario-$n.log" 2>&1 &
  local pid=$!
  sleep 0.5
  target/release/roomload --url-base "$url" "${ca[@]}" --pid $pid --json "$@" \
    >"$out/$scenario-$mode-$n.json"
  kill -TERM $pid; wait $pid || true
  echo "$scenario $mode $n: $(cat "$out/$scenario-$mode-$n.json")"
}
for n in $(seq 1 "$runs"); do
  for mode in plain tls; do
    # Latency and idle memory: 2 000 clients in rooms of 100, 2 messages/s per room.
    run $mode latency $n --clients 2000 --room-size 100 --rate 2 --hold 10 --drain 2
    # Fanout: the same rooms at 40 messages/s each (80 000 deliveries/s offered).
    run $mode fanout $n --clients 2000 --room-size 100 --rate 40 --hold 10 --drain 3
  done
done
