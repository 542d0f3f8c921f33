#!/usr/bin/env python3
"""Target 3's table from sitting.sh's rooms.* files: medians over the runs of each rate."""
import glob, json, re, statistics, sys

out = sys.argv[1] if len(sys.argv) > 1 else "."
rows = {}
for path in glob.glob(f"{out}/rooms.r*.json"):
    m = re.search(r"rooms\.r([0-9.]+)\.(\d+)\.json$", path)
    if not m:
        continue
    rate, n = m.group(1), m.group(2)
    j = json.load(open(path))
    base = path[: -len(".json")]
    # writes/s and frames/s from /metrics over the middle of the hold: the first sample is
    # taken as the server starts, roomload connects for connect_s, then holds for hold_s;
    # the window is 2 s after the hold began to 2 s before it ended.
    samples = [list(map(float, l.split())) for l in open(base + ".metrics") if len(l.split()) == 3]
    t0 = samples[0][0]
    lo, hi = t0 + j["connect_s"] + 2.5, t0 + j["connect_s"] + j["hold_s"] - 1.5
    inside = [s for s in samples if lo <= s[0] <= hi]
    best = None
    if len(inside) >= 2:
        a, b = inside[0], inside[-1]
        dt = b[0] - a[0]
        best = ((b[1] - a[1]) / dt, (b[2] - a[2]) / dt)
    stat = [list(map(int, l.split()[1:])) for l in open(base + ".stat")]
    busy = None
    if len(stat) == 2:
        diff = [y - x for x, y in zip(*stat)]
        busy = 100.0 * (1 - diff[3] / sum(diff[:8]))
    cpu = json.load(open(base + ".cpu.json"))
    rows.setdefault(float(rate), []).append({
        "dps": j["deliveries_per_s"], "lost": j["lost"], "p50": j["latency_ms_p50"],
        "p99": j["latency_ms_p99"], "srv": j["server_cpu_pct_hold"], "gen": j["roomload_cpu_pct_hold"],
        "writes": best[0] if best else float("nan"), "per_write": best[1] / best[0] if best and best[0] else float("nan"),
        "busy": busy, "sys_share": cpu["stime_s"] / max(cpu["utime_s"] + cpu["stime_s"], 1e-9),
    })
med = lambda rs, k: statistics.median(r[k] for r in rs if r[k] is not None)
print("| msg/s per room | deliveries/s | lost | p50 / p99 ms | loop writes/s | deliveries per write | server CPU (kernel share) | generator CPU | machine busy |")
print("|---|---|---|---|---|---|---|---|---|")
for rate in sorted(rows):
    rs = rows[rate]
    print(f"| {rate:g} | {med(rs,'dps')/1000:.0f} k | {sum(r['lost'] for r in rs)} | {med(rs,'p50'):.1f} / {med(rs,'p99'):.0f} "
          f"| {med(rs,'writes')/1000:.0f} k | {med(rs,'per_write'):.2f} | {med(rs,'srv'):.0f} % ({100*med(rs,'sys_share'):.0f} %) "
          f"| {med(rs,'gen'):.0f} % | {med(rs,'busy'):.0f} % |  ({len(rs)} runs)")
