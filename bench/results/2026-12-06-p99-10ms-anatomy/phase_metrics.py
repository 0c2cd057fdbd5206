"""Prints, for each exactly_once run in a connectd-bench work directory, the
latency phase's own metrics: <run>.latency.metrics minus <run>.drain.metrics.

  python3 phase_metrics.py WORKDIR

e2e/commit: the share of records (connectd_end_to_end_latency_seconds) and
of commits (connectd_commit_duration_seconds) at or under each bucket bound.
Requests: per kind, how many took longer than each bound above 2 ms
(connectd_kafka_request_seconds)."""
import glob
import os
import re
import sys


def parse(path):
    m = {}
    for line in open(path):
        if line.startswith('#'):
            continue
        k, _, v = line.rpartition(' ')
        try:
            m[k] = float(v)
        except ValueError:
            pass
    return m


def bound(le):
    return float('inf') if le == '+Inf' else float(le)


def shares(a, b, name):
    rows = sorted((bound(re.search(r'le="([^"]+)"', k).group(1)), b[k] - a.get(k, 0))
                  for k in b if k.startswith(name + '_bucket'))
    tot = rows[-1][1]
    return f'n={tot:.0f} ' + ' '.join(f'{le * 1000:g}ms:{c / tot * 100:.1f}%' for le, c in rows if c < tot or le < 1)


def slow_requests(a, b):
    kinds = {}
    for k in b:
        m = re.match(r'connectd_kafka_request_seconds_bucket\{.*request="(\w+)".*le="([^"]+)"', k)
        if m:
            kinds.setdefault(m.group(1), []).append((bound(m.group(2)), b[k] - a.get(k, 0)))
    for kind, rows in sorted(kinds.items()):
        rows.sort()
        tot = rows[-1][1]
        if tot:
            yield f'{kind:16s} n={tot:5.0f} ' + ' '.join(
                f'>{le * 1000:g}ms:{tot - c:.0f}' for le, c in rows if tot - c > 0 and le > 0.002)


work = sys.argv[1] if len(sys.argv) > 1 else '.'
for path in sorted(glob.glob(os.path.join(work, '*eo*.latency.metrics')), key=os.path.getmtime):
    a, b = parse(path.replace('.latency.', '.drain.')), parse(path)
    print('==', os.path.basename(path))
    print('  e2e    ', shares(a, b, 'connectd_end_to_end_latency_seconds'))
    print('  commit ', shares(a, b, 'connectd_commit_duration_seconds'))
    for line in slow_requests(a, b):
        print('  ' + line)
