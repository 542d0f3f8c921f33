#!/bin/bash
BIN=$1; PORT=$2; N=$3
$BIN --bind 127.0.0.1:$PORT --rate-limit 0 --max-connections-per-ip 0 --log-level warn --store memory > /tmp/diag.server.log 2>&1 & P=$!
sleep 1.5
echo "before $(grep -E "VmRSS|RssAnon|RssFile" /proc/$P/status | tr -s " \t\n" " ")"
W=~/.cache/chat-bench/wsload/target/release/wsload
$W --url "ws://127.0.0.1:$PORT/ws/{id}" --clients $N --messages 0 --hold 25 --timeout 120 --json -q > /tmp/diag.wsload.json & WP=$!
for i in $(seq 1 100); do sleep 1; n=$(ss -tn state established "( sport = :$PORT )" | wc -l); if [ $n -gt $N ]; then sleep 4; break; fi; done
echo "after storm $(grep -E "VmRSS|RssAnon|RssFile" /proc/$P/status | tr -s " \t\n" " ")"
gdb -p $P -batch -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' > /tmp/diag.gdb.log 2>&1
sleep 0.5
echo "after trim $(grep -E "VmRSS|RssAnon|RssFile" /proc/$P/status | tr -s " \t\n" " ")"
wait $WP
kill $P; wait $P 2>/dev/null
grep -A30 "Arena 0" /tmp/diag.server.log | head -30
