#!/bin/bash
# Latency A/B at commit.interval 10 ms: base (da10d40, output produced on the loop) vs head (bcce334+, output producer), alternating order.
cd /work/main
for r in $(seq ${FROM:-1} ${TO:-20}); do
  if [ $((r % 2)) -eq 1 ]; then order="base head"; else order="head base"; fi
  for b in $order; do
    /tmp/connectd-bench -connectd /tmp/connectd-$b -only '^connectd kafka EO 10ms 100B 12p$' \
      -records 1000000 -rounds 1 -latency-rounds 1 -crash=false -micro=false -profile=false -no-peers \
      -suffix ab-$b-$r -out /tmp/ab5/out -work /tmp/ab5/work > /tmp/ab5/$b-$r.log 2>&1
    echo "$(date +%T) $b $r exit $?" >> /tmp/ab5/progress
  done
done
echo done >> /tmp/ab5/progress
