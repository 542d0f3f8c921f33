#!/bin/bash
# usage: memrun.sh LABEL BIN PORT CLIENTS RUNS [extra server args...]
LABEL=$1; BIN=$2; PORT=$3; N=$4; RUNS=$5; shift 5
W=~/.cache/chat-bench/wsload/target/release/wsload
OUT=/work/wt-mem/bench-results/2026-11-30-mem2/raw.jsonl
for r in $(seq 1 $RUNS); do
  $BIN --bind 127.0.0.1:$PORT --rate-limit 0 --max-connections-per-ip 0 --log-level warn "$@" > ${TMPDIR:-/tmp}/memrun-server.log 2>&1 & P=$!
  sleep 1.5
  A0=$(awk '/RssAnon/{print $2}' /proc/$P/status); F0=$(awk '/RssFile/{print $2}' /proc/$P/status)
  $W --url "ws://127.0.0.1:$PORT/ws/{id}" --clients $N --messages 0 --hold 5 --timeout 120 --pid $P --json -q > ${TMPDIR:-/tmp}/memrun.json & WP=$!
  A1=; F1=
  for i in $(seq 1 240); do sleep 0.5; n=$(ss -Htn state established "( sport = :$PORT )" | wc -l); if [ $n -ge $N ]; then sleep 3; A1=$(awk '/RssAnon/{print $2}' /proc/$P/status); F1=$(awk '/RssFile/{print $2}' /proc/$P/status); break; fi; done
  wait $WP; J=$(cat ${TMPDIR:-/tmp}/memrun.json)
  kill $P; wait $P 2>/dev/null
  echo "{\"label\":\"$LABEL\",\"run\":$r,\"clients\":$N,\"server_args\":\"$*\",\"rss_anon_kib\":[${A0:-null},${A1:-null}],\"rss_file_kib\":[${F0:-null},${F1:-null}],\"wsload\":$J}" >> $OUT
  echo "$LABEL run $r: $(echo "$J" | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["server_rss_kib"]; print(r["per_conn"], "before", r["before_connect"], "after", r["after_hold"], "connected", d["connected"], "connect_s", d["connect_s"])') anon $A0->$A1 file $F0->$F1 anon/conn $(( (${A1:-0}-${A0:-0})*1024/N )) B"
done
