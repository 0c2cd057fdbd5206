#!/bin/bash
# CPU A/B, Kafka -> Kafka exactly_once and the bare loop, derived and header IDs:
# base 7b16d98 vs head (batched latency histogram + event ID chunks), alternating order.
cd /work/main
for r in $(seq ${FROM:-1} ${TO:-5}); do
  if [ $((r % 2)) -eq 1 ]; then order="base head"; else order="head base"; fi
  for b in $order; do
    /tmp/connectd-bench -connectd /tmp/connectd-$b -only '^(connectd kafka EO|bare kafka ALO) 100ms 100B 12p( hdr)?$' \
      -records 1000000 -rounds 1 -latency-rounds 0 -crash=false -micro=false -profile=false -no-peers \
      -suffix ab-$b-$r -out /tmp/ab6/out -work /tmp/ab6/work > /tmp/ab6/$b-$r.log 2>&1
    echo "$(date +%T) $b $r exit $? load $(cut -d' ' -f1 /proc/loadavg)" >> /tmp/ab6/progress
  done
done
echo done >> /tmp/ab6/progress
