#!/usr/bin/env python3
"""Summarizes one A/B directory of this folder: per binary, the median,
worst and range of every scenario's records/s, and the per-round ratios
the issue 17 targets use (each ratio paired within one run of one binary).

    python3 summarize.py eo
"""
import glob
import re
import statistics as st
import sys

ROW = re.compile(r'\| (connectd|bare) (\w+) (EO|ALO) (\d+ms) 100B 12p \| (\d+) ')


def load(d):
    res = {}
    for f in glob.glob(d + '/*.md'):
        m = re.search(r'(base|async)-(\d+)\.md$', f)
        if not m:
            continue
        run = {}
        for line in open(f):
            mm = ROW.match(line)
            if mm:
                cells = [c.strip() for c in line.split('|')]
                name = ' '.join(mm.group(1, 2, 3, 4))
                run[name] = {'rps': int(mm.group(5)), 'cpu': float(cells[7]), 'p99': cells[5]}
        res.setdefault(m.group(1), {})[int(m.group(2))] = run
    return res


def main(d):
    res = load(d)
    for arm in ('base', 'async'):
        runs = res.get(arm, {})
        rounds = sorted(runs)
        print(f'{arm}: {len(rounds)} runs')
        names = sorted({n for r in rounds for n in runs[r]})
        for n in names:
            v = [runs[r][n]['rps'] for r in rounds if n in runs[r]]
            c = [runs[r][n]['cpu'] for r in rounds if n in runs[r]]
            p = [runs[r][n]['p99'] for r in rounds if n in runs[r]]
            print(f'  {n:28s} median {st.median(v):>8,.0f}  worst {min(v):>8,}  best {max(v):>8,}'
                  f'  CPU s median {st.median(c):.2f}  p99 {" ".join(p)}')
        for a, b in (('connectd kafka EO 100ms', 'bare kafka ALO 100ms'),
                     ('connectd kafka EO 100ms', 'connectd kafka ALO 100ms'),
                     ('connectd twophase EO 100ms', 'connectd postgres EO 100ms')):
            v = [runs[r][a]['rps'] / runs[r][b]['rps'] for r in rounds if a in runs[r] and b in runs[r]]
            if v:
                print(f'  {a} / {b}: median {st.median(v):.2f}, worst {min(v):.2f}'
                      f'  [{" ".join(f"{x:.2f}" for x in v)}]')
        a, b = 'connectd kafka EO 100ms', 'bare kafka ALO 100ms'
        v = [runs[r][a]['cpu'] / runs[r][b]['cpu'] for r in rounds if a in runs[r] and b in runs[r]]
        if v:
            print(f'  CPU per record, {a} / {b}: median {st.median(v):.2f}, worst {max(v):.2f}'
                  f'  [{" ".join(f"{x:.2f}" for x in v)}]')


if __name__ == '__main__':
    main(sys.argv[1])
