#!/usr/bin/env python3
"""Per pair: EO and bare CPU µs/record and records/s, base vs head, derived and header IDs."""
import json, glob, re, statistics, sys
d = sys.argv[1]
runs = {}
for f in sorted(glob.glob(d + '/*.json')):
    m = re.search(r'ab-(\w+)-(\d+)\.json$', f)
    if not m: continue
    b, r = m.group(1), int(m.group(2))
    for x in json.load(open(f))['Results']:
        s = x['Scenario']
        ids = 'hdr' if s.get('EventID') == 'header' else 'derived'
        key = (s['System'], ids)
        runs.setdefault((b, r), {})[key] = (x['CPUDrain'] / x['Records'] / 1000, x['RecordsPerSec'])
rows = {}
for (b, r), v in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    for ids in ('derived', 'hdr'):
        eo, bare = v.get(('connectd', ids)), v.get(('bare', ids))
        if not eo or not bare: continue
        rows.setdefault((b, ids), []).append((eo[0] / bare[0], eo[1] / bare[1], eo[0], bare[0]))
        print(f"{b:5} pair {r:2} {ids:8} EO {eo[0]:.2f} µs {eo[1]:8.0f}/s  bare {bare[0]:.2f} µs {bare[1]:8.0f}/s  CPU ratio {eo[0]/bare[0]:.2f}  rate ratio {eo[1]/bare[1]:.2f}")
print()
for (b, ids), v in sorted(rows.items()):
    cpu = [x[0] for x in v]; rate = [x[1] for x in v]; eo = [x[2] for x in v]
    print(f"{b:5} {ids:8} n={len(v)}  CPU/record EO/bare median {statistics.median(cpu):.2f} worst {max(cpu):.2f}  "
          f"EO µs median {statistics.median(eo):.2f}  rate EO/bare median {statistics.median(rate):.2f} worst {min(rate):.2f}")

# Paired: head's EO CPU per record over base's, per pair (same pair = same few minutes of the machine).
print()
for ids in ('derived', 'hdr'):
    pr = []
    for r in sorted({k[1] for k in runs}):
        h, b = runs.get(('head', r), {}).get(('connectd', ids)), runs.get(('base', r), {}).get(('connectd', ids))
        if h and b:
            pr.append(h[0] / b[0])
    if pr:
        print(f"{ids:8} EO CPU per record, head/base per pair: " + ' '.join(f'{x:.2f}' for x in pr) +
              f"  median {statistics.median(pr):.2f} worst {max(pr):.2f}")
