package metrics

import (
	"testing"
	"time"
)

// BenchmarkCommittedLatency is the commit loop's per-batch call into the
// metrics: one commit duration and the end-to-end latency of each of a
// batch's 10,000 records, spread from 1 ms to a minute as a backlog's are.
// It reports ns per record.
func BenchmarkCommittedLatency(b *testing.B) {
	m := New(fakeSource{})
	obs := m.Observer("copy")
	now := time.Now()
	ts := make([]time.Time, 10000)
	for i := range ts {
		ts[i] = now.Add(-time.Duration(1+i*i%60000) * time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		obs.Committed(20*time.Millisecond, now, ts)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ts)), "ns/record")
}
