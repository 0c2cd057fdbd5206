package pipeline

import (
	"runtime"
	"testing"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// BenchmarkProcessIdentity is the record processor of an identity pipeline
// (derived event IDs, no transforms) over batches of 1000 records, with
// time, bytes and allocations also reported per record. What is left per
// record is the event ID string itself; the output slice is per batch.
func BenchmarkProcessIdentity(b *testing.B) {
	const batch = 1000
	cfg, err := config.Parse("bench.yaml", []byte(`kafka:
  brokers: ["localhost:9092"]
connectors:
  - name: c
    event_id: {from: derived}
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out}
`))
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewProcessor(cfg.Connectors[0])
	if err != nil {
		b.Fatal(err)
	}
	in := make([]*connector.Record, batch)
	for i := range in {
		in[i] = &connector.Record{Key: []byte("k"), Value: []byte(`{"a":1}`), Origin: connector.Origin{Topic: "orders", Partition: 7, Offset: 123456789 + int64(i)}}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	for b.Loop() {
		out, err := p.Process(in)
		if err != nil || len(out) != batch {
			b.Fatal(err, len(out))
		}
	}
	runtime.ReadMemStats(&after)
	n := float64(b.N) * batch
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/record")
}
