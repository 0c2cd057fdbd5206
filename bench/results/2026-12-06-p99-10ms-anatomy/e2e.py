import glob, re
def parse(f):
    m = {}
    for line in open(f):
        if line.startswith('#'): continue
        k, _, v = line.rpartition(' ')
        try: m[k] = float(v)
        except: pass
    return m
def hist(a, b, name):
    rows = []
    for k in b:
        if k.startswith(name + '_bucket'):
            le = re.search(r'le="([^"]+)"', k).group(1)
            rows.append((float('inf') if le == '+Inf' else float(le), b[k] - a.get(k, 0)))
    rows.sort()
    tot = rows[-1][1]
    out = []
    for le, c in rows:
        out.append(f'{le*1000:g}ms:{c/tot*100:.1f}%')
    return tot, ' '.join(out)
import sys
WORK = sys.argv[1] if len(sys.argv) > 1 else '.'
for d in sorted(glob.glob(WORK + '/*eo*.latency.metrics'), key=lambda f: __import__('os').path.getmtime(f)):
    a = parse(d.replace('.latency.', '.drain.')); b = parse(d)
    print('==', d.split('/')[-1])
    print('  e2e   ', *hist(a, b, 'connectd_end_to_end_latency_seconds'))
    print('  commit', *hist(a, b, 'connectd_commit_duration_seconds'))
