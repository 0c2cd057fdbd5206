#!/usr/bin/env python3
"""Mean Kafka request latency per connectd round, from the harness's
per-round /metrics snapshots (WORK/*.drain.metrics, kept in -work).

usage: summarize.py WORKDIR [TITLE]"""
import glob, os, re, sys

KINDS = ["Produce", "TxnOffsetCommit", "OffsetCommit", "Heartbeat", "EndTxn"]
LINE = re.compile(r'connectd_kafka_request_seconds_(sum|count)\{client="pipeline",connector="bench",request="(\w+)"\} (\S+)')
ROUND = re.compile(r"^connectd-(.*)-r(\d+)-\d+-\d+\.drain\.metrics$")

def means(path):
    s, c = {}, {}
    for line in open(path):
        m = LINE.match(line)
        if m:
            (s if m.group(1) == "sum" else c)[m.group(2)] = float(m.group(3))
    return {k: (s[k] / c[k] * 1000, int(c[k])) for k in KINDS if c.get(k)}

rows = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "connectd-*.drain.metrics"))):
    m = ROUND.match(os.path.basename(path))
    if m:
        rows.setdefault(m.group(1), {})[int(m.group(2))] = means(path)

print("### " + (sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]) + "\n")
print("| scenario | request | " + " | ".join(f"round {r}" for r in range(1, 6)) + " |")
print("|---|---|" + "---|" * 5)
for scenario, rounds in sorted(rows.items()):
    for kind in KINDS:
        cells = [rounds.get(r, {}).get(kind) for r in range(1, 6)]
        if any(cells):
            print(f"| {scenario} | {kind} | " + " | ".join(f"{v[0]:.1f} ms ({v[1]})" if v else "" for v in cells) + " |")
print()
