#!/usr/bin/env bash
# Issue 16's final sitting: every row against both peers, one sitting, medians of 3.
# Usage: bench-results/2026-11-30-final/sitting.sh OUT_DIR   (from the checkout, after
# `cargo build --release -p chat-mio-server -p roomload`; the kit's copy in ~/.cache/chat-bench)
set -euo pipefail
out=${1:?usage: sitting.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
cp "$here/target/release/chat-mio-server" /tmp/chat-mio-bin
cp "$here/target/release/roomload" /tmp/roomload
cp "$here/bench-results/2026-11-30-storage/chat-sqlite.sh" /tmp/chat-sqlite.sh
kit=~/.cache/chat-bench
[ -d "$kit" ] || kit=$here/../shared/bench
common='--rate-limit 0 --max-connections-per-ip 0 --log-level warn'

# 1. The kit's scenarios: axum-chat (broadcast capacity 4096), uws-chat, ours with storage off
#    and on (a fresh data directory per run).
(cd "$kit" && ./bench-all.sh -r 3 -o "$out/kit" fanout,fanout-large,fanout-large-long,latency,idle \
  --env BROADCAST_CAPACITY=4096 axum-chat uws-chat \
  --server mio-memory 8200 "/tmp/chat-mio-bin --bind 127.0.0.1:{port} $common --store memory" \
  --server mio-sqlite 8201 "/tmp/chat-sqlite.sh --bind 127.0.0.1:{port} $common")

# 1b. Storage on against off for fanout alone, alternating (its spread is wide): 5 x 2 runs.
for n in 1 2 3 4 5; do
  (cd "$kit" && ./bench-all.sh -r 1 -o "$out/storage-ab.$n" fanout \
    --server mio-memory 8200 "/tmp/chat-mio-bin --bind 127.0.0.1:{port} $common --store memory" \
    --server mio-sqlite 8201 "/tmp/chat-sqlite.sh --bind 127.0.0.1:{port} $common")
done

# 2. 19 000 idle connections (ours; uws-chat cannot finish this storm within wsload's 120 s).
W=$kit/wsload/target/release/wsload
for n in 1 2 3; do
  /tmp/chat-mio-bin --bind 127.0.0.1:8290 $common --store memory --max-connections 30000 \
    > "$out/i19k.mio.r$n.server.log" 2>&1 & P=$!
  sleep 0.5
  $W --url 'ws://127.0.0.1:8290/ws/{id}' --clients 19000 --messages 0 --hold 5 --timeout 120 \
    --pid $P --json -q > "$out/i19k.mio.r$n.json" || true
  kill $P; wait $P || true
done

# 2b. Idle memory split into the heap (RssAnon) and mapped files (RssFile: code paged in),
#     ours and uws-chat, 5 000 clients, 3 runs each, alternating.
for n in 1 2 3; do
  W=$W "$here/bench-results/2026-11-30-final/memsplit.sh" "$out/memsplit.jsonl" mio 8290 5000 1 \
    /tmp/chat-mio-bin --bind 127.0.0.1:8290 $common --store memory
  W=$W "$here/bench-results/2026-11-30-final/memsplit.sh" "$out/memsplit.jsonl" uws-chat 8104 5000 1 \
    "$kit/uws-chat/run.sh" 8104
done

# 3. Many small rooms (target 3): 19 700 v1 clients in rooms of 100, 10 s of chat per rate;
#    /metrics scraped every second for the loop's writes (chat_flush_bytes_count).
scrape() { # PORT FILE: "unix-time writes delivered" each second until the server is gone
  while m=$(curl -sf "127.0.0.1:$1/metrics"); do
    echo "$(date +%s.%N) $(echo "$m" | awk '/^chat_flush_bytes_count /{w=$2} /^chat_messages_delivered_total /{d=$2} END{print w, d}')" >> "$2"
    sleep 1
  done
}
for n in 1 2 3; do
  for rate in 5 7.5 10 15; do
    /tmp/chat-mio-bin --bind 127.0.0.1:18702 $common --store memory --max-connections 30000 \
      > "$out/rooms.r$rate.$n.server.log" 2>&1 & P=$!
    sleep 0.5
    scrape 18702 "$out/rooms.r$rate.$n.metrics" &
    # the whole machine's CPU (cpu line of /proc/stat) 9 s and 16 s in: inside the hold
    (sleep 9; head -1 /proc/stat; sleep 7; head -1 /proc/stat) > "$out/rooms.r$rate.$n.stat" &
    /tmp/roomload --url-base ws://127.0.0.1:18702 --clients 19700 --room-size 100 --rate $rate \
      --hold 10 --pid $P --json > "$out/rooms.r$rate.$n.json" || true
    awk '{print "{\"utime_s\":" $14/100 ",\"stime_s\":" $15/100 "}"}' /proc/$P/stat > "$out/rooms.r$rate.$n.cpu.json"
    kill $P; wait $P || true
  done
done

# 4. TLS against plain (roomload, rustls on both sides).
(cd "$here" && tools/tls_bench.sh "$out/tls" 3)

# 5. Where the server's CPU goes (perf, cpu-clock samples; proportions, not speed).
/tmp/chat-mio-bin --bind 127.0.0.1:18702 $common --store memory --max-connections 30000 > /dev/null 2>&1 & P=$!
sleep 0.5
/tmp/roomload --url-base ws://127.0.0.1:18702 --clients 19700 --room-size 100 --rate 5 --hold 20 \
  --pid $P --json > "$out/perf-rooms.roomload.json" & L=$!
sleep 14
perf record -e cpu-clock -F 999 -g -p $P -o "$out/perf-rooms.data" -- sleep 8 2>/dev/null || true
wait $L || true
kill $P; wait $P || true
/tmp/chat-mio-bin --bind 127.0.0.1:8262 $common --store memory > /dev/null 2>&1 & P=$!
sleep 0.5
perf record -e cpu-clock -F 1999 --call-graph dwarf,16384 -p $P -o "$out/perf-fll.data" 2>/dev/null & R=$!
sleep 0.3
for i in 1 2; do
  $W --url 'ws://127.0.0.1:8262/ws/{id}' --clients 1000 --senders 2 --messages 1000 --timeout 120 \
    --json -q --id-prefix r$i- > /dev/null || true
done
kill -INT $R; wait $R || true
kill $P; wait $P || true
for f in rooms fll; do
  { perf report -i "$out/perf-$f.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep "%"
    perf report -i "$out/perf-$f.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep "%"
    perf report -i "$out/perf-$f.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep "%" | head -40
  } > "$out/perf-$f.txt"
  rm -f "$out/perf-$f.data"
done
