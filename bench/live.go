package bench

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produced is one live record the harness wrote: where it landed and its
// payload stamp, to time when it becomes visible in a polled sink.
type produced struct {
	partition int32
	offset    int64
	ts        time.Time
}

// liveProducer writes records to topic at a fixed rate, in small bursts
// every tick (a 10 ms tick keeps the pacing error far below the latencies
// measured), stamping each with the time it was handed to the client.
type liveProducer struct {
	mu   sync.Mutex
	recs []produced
	errs int
	n    int64
}

// produceAt produces rate records/s to topic for d and waits until all are
// acknowledged; seq numbers continue from first. With hdr every record
// carries an event-id header (Input.EventIDHeader).
func (k *kafkaEnv) produceAt(ctx context.Context, topic string, rate int, d time.Duration, size int, first int64, hdr bool) *liveProducer {
	lp := &liveProducer{}
	const tick = 10 * time.Millisecond
	start := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	total := int64(float64(rate) * d.Seconds())
	i := int64(0)
	var buf []byte
	for i < total && ctx.Err() == nil {
		// Catch up to where the schedule says we should be: a late tick
		// (a busy machine) sends a bigger burst rather than a lower rate.
		due := min(int64(time.Since(start).Seconds()*float64(rate))+1, total)
		for ; i < due; i++ {
			ts := time.Now()
			buf = appendPayload(buf[:0], first+i, size, ts)
			r := &kgo.Record{Topic: topic, Key: recordKey(first + i), Value: append([]byte(nil), buf...)}
			if hdr {
				r.Headers = eventIDHeader(topic, first+i)
			}
			k.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				lp.mu.Lock()
				defer lp.mu.Unlock()
				if err != nil {
					lp.errs++
					return
				}
				lp.recs = append(lp.recs, produced{partition: r.Partition, offset: r.Offset, ts: ts})
			})
		}
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	_ = k.cl.Flush(ctx)
	lp.n = i
	return lp
}

// since returns the acknowledged records stamped at or after t.
func (lp *liveProducer) since(t time.Time) []produced {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	var out []produced
	for _, r := range lp.recs {
		if !r.ts.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// byPartition groups records per partition, in offset order.
func byPartition(recs []produced) map[int32][]produced {
	out := map[int32][]produced{}
	for _, r := range recs {
		out[r.partition] = append(out[r.partition], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b produced) int { return int(a.offset - b.offset) })
	}
	return out
}

// snapshot is one poll of a sink's frontier: the next offset visible per
// partition.
type snapshot struct {
	at       time.Time
	frontier map[int32]int64
}

// frontierLatencies times records by a polled frontier (next visible
// offset per partition; polls in time order): a record at offset o became
// visible at the first poll whose frontier for its partition exceeds o.
// Sinks that keep the checkpoint with the data (PostgreSQL and Redis
// exactly_once) make this exact up to the poll interval; for the others
// the frontier is the group's offsets, committed right after the data, so
// it errs late by that commit. It returns the latencies and how many
// records were never seen visible.
func frontierLatencies(recs map[int32][]produced, polls []snapshot) (lat []time.Duration, unseen int) {
	for p, rs := range recs {
		j := 0 // polls are in time order and frontiers only grow
		for _, r := range rs {
			for j < len(polls) && polls[j].frontier[p] <= r.offset {
				j++
			}
			if j == len(polls) {
				unseen++
				continue
			}
			lat = append(lat, polls[j].at.Sub(r.ts))
		}
	}
	return lat, unseen
}
