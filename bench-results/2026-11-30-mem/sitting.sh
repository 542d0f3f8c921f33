#!/usr/bin/env bash
# One sitting: idle 5000 (3 reps, interleaved), speed check, 19000.
set -u
R=/tmp/memres/sitting; mkdir -p $R
B=/tmp/mem-bin
M="--rate-limit 0 --store memory --max-connections-per-ip 0 --log-level warn"
S="--rate-limit 0 --max-connections-per-ip 0 --log-level warn"
for r in 1 2 3; do
  /tmp/mem-idle.sh $R/i5k.before-mem.r$r 8200 5000 "$B/before --bind 127.0.0.1:8200 $M"
  /tmp/mem-idle.sh $R/i5k.after-mem.r$r 8201 5000 "$B/after --bind 127.0.0.1:8201 $M"
  rm -rf /tmp/memdata; /tmp/mem-idle.sh $R/i5k.before-sqlite.r$r 8202 5000 "$B/before --bind 127.0.0.1:8202 --data-dir /tmp/memdata $S"
  rm -rf /tmp/memdata; /tmp/mem-idle.sh $R/i5k.after-sqlite.r$r 8203 5000 "$B/after --bind 127.0.0.1:8203 --data-dir /tmp/memdata $S"
  /tmp/mem-idle.sh $R/i5k.uws.r$r 8104 5000 "/work/shared/bench/uws-chat/run.sh 8104"
done
echo "=== speed" 
/work/shared/bench/bench-all.sh -o $R/speed fanout-large-long,latency \
  --server before-5e53282 8210 "$B/before --bind 127.0.0.1:{port} $M" \
  --server after-cc1d453 8211 "$B/after --bind 127.0.0.1:{port} $M" 2>$R/speed.err | tail -20
echo "=== 19000"
for r in 1 2 3; do
  /tmp/mem-idle.sh $R/i19k.before-mem.r$r 8220 19000 "$B/before --bind 127.0.0.1:8220 --max-connections 30000 $M"
  /tmp/mem-idle.sh $R/i19k.after-mem.r$r 8221 19000 "$B/after --bind 127.0.0.1:8221 --max-connections 30000 $M"
done
rm -rf /tmp/memdata; /tmp/mem-idle.sh $R/i19k.after-sqlite.r1 8223 19000 "$B/after --bind 127.0.0.1:8223 --max-connections 30000 --data-dir /tmp/memdata $S"
/tmp/mem-idle.sh $R/i19k.uws.r1 8104 19000 "/work/shared/bench/uws-chat/run.sh 8104"
echo "=== done"
