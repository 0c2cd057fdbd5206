import glob, re, os
def parse(f):
    m = {}
    for line in open(f):
        if line.startswith('#'): continue
        k, _, v = line.rpartition(' ')
        try: m[k] = float(v)
        except: pass
    return m
import sys
WORK = sys.argv[1] if len(sys.argv) > 1 else '.'
for d in sorted(glob.glob(WORK + '/*eo*.latency.metrics'), key=os.path.getmtime):
    a = parse(d.replace('.latency.', '.drain.')); b = parse(d)
    print('==', d.split('/')[-1])
    kinds = {}
    for k in b:
        m = re.match(r'connectd_kafka_request_seconds_bucket\{.*request="(\w+)".*le="([^"]+)"', k)
        if m:
            kinds.setdefault(m.group(1), []).append((float('inf') if m.group(2)=='+Inf' else float(m.group(2)), b[k]-a.get(k,0)))
    for kind, rows in kinds.items():
        rows.sort(); tot = rows[-1][1]
        if tot == 0: continue
        print(f'  {kind:16s} n={tot:5.0f}', ' '.join(f'>{le*1000:g}ms:{tot-c:.0f}' for le, c in rows if tot - c > 0 and le > 0.002))
