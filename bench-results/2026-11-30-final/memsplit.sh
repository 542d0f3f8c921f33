#!/bin/bash
# memsplit.sh OUT_JSONL LABEL PORT CLIENTS RUNS CMD...: idle storm (wsload, as the kit's idle
# scenario) with the server's RssAnon / RssFile (/proc/PID/status) before the first connect and
# 3 s after the last client connected; one JSON line per run. CMD must exec the server on PORT.
OUT=$1 LABEL=$2 PORT=$3 N=$4 RUNS=$5; shift 5
W=${W:-~/.cache/chat-bench/wsload/target/release/wsload}
for r in $(seq 1 $RUNS); do
  "$@" > /tmp/memsplit-server.log 2>&1 & P=$!
  for i in $(seq 1 100); do ss -Htln "( sport = :$PORT )" | grep -q . && break; sleep 0.2; done
  sleep 1
  A0=$(awk '/RssAnon/{print $2}' /proc/$P/status); F0=$(awk '/RssFile/{print $2}' /proc/$P/status)
  $W --url "ws://127.0.0.1:$PORT/ws/{id}" --clients $N --messages 0 --hold 5 --timeout 120 --pid $P --json -q > /tmp/memsplit.json & WP=$!
  A1=; F1=
  for i in $(seq 1 240); do sleep 0.5; n=$(ss -Htn state established "( sport = :$PORT )" | wc -l); if [ $n -ge $N ]; then sleep 3; A1=$(awk '/RssAnon/{print $2}' /proc/$P/status); F1=$(awk '/RssFile/{print $2}' /proc/$P/status); break; fi; done
  wait $WP; J=$(cat /tmp/memsplit.json)
  kill $P; wait $P 2>/dev/null
  echo "{\"label\":\"$LABEL\",\"run\":$r,\"clients\":$N,\"rss_anon_kib\":[${A0:-null},${A1:-null}],\"rss_file_kib\":[${F0:-null},${F1:-null}],\"wsload\":$J}" >> $OUT
  echo "$LABEL run $r: per_conn $(echo "$J" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["server_rss_kib"]["per_conn"], "connected", d["connected"])') anon/conn $(( (${A1:-0}-${A0:-0})*1024/N )) B file +$(( ${F1:-0}-${F0:-0} )) KiB"
done
