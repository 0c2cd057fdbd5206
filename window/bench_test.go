package window

import (
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

// The window stage's hot paths on issue 15's workload (the one the bench
// harness's windowed scenarios run): tumbling 1-minute windows, count() and
// sum(value.amount), 10,000 keys spread over 12 input partitions by a key
// hash, event time (the record timestamp) advancing one minute every
// 50,000 records, 100-byte JSON values, a Flush every 5,000 records (a
// 100 ms batch at 50,000 records/s). Every tenth flush then closes a
// window of every key: 10,000 results and as many state deletions.
//
// Each op is one record, so allocs/op is allocations per record; the
// benchmarks also report allocs/record, B/record and ns/record by name (the
// harness's microbenchmark table reads those). BenchmarkOperatorAdd times
// Add alone, BenchmarkFlush the Flush (and Committed) of each batch, spread
// over the batch's records.

const (
	benchKeys       = 10000
	benchPartitions = 12
	benchBatch      = 5000
	benchPerWindow  = 50000
)

// benchInput generates the workload's records into a reused batch.
type benchInput struct {
	keys    [][]byte
	part    []int32
	vals    [][]byte
	recs    []connector.Record
	ptrs    []*connector.Record
	offsets [benchPartitions]int64
	next    int64
}

func newBenchInput() *benchInput {
	in := &benchInput{recs: make([]connector.Record, benchBatch), ptrs: make([]*connector.Record, benchBatch)}
	for k := range benchKeys {
		key := []byte(fmt.Sprintf("k-%d", k))
		h := fnv.New32a()
		h.Write(key)
		in.keys = append(in.keys, key)
		in.part = append(in.part, int32(h.Sum32()%benchPartitions))
	}
	for a := range 1000 {
		v := fmt.Sprintf(`{"ts":1796371557789123,"i":%d,"amount":%d,"pad":"`, 1000000+a, a)
		in.vals = append(in.vals, []byte(v+strings.Repeat("x", 100-2-len(v))+`"}`))
	}
	for i := range in.recs {
		in.ptrs[i] = &in.recs[i]
	}
	return in
}

// fill writes the next n (≤ benchBatch) records into the batch.
func (in *benchInput) fill(n int) []*connector.Record {
	for j := range n {
		i := in.next
		in.next++
		k := i % benchKeys
		p := in.part[k]
		in.recs[j] = connector.Record{Key: in.keys[k], Value: in.vals[i%1000], Timestamp: time.UnixMilli(i * 60000 / benchPerWindow),
			Origin: connector.Origin{Topic: "in", Partition: p, Offset: in.offsets[p]}}
		in.offsets[p]++
	}
	return in.ptrs[:n]
}

func newBenchOperator(b *testing.B) *Operator {
	var c Config
	c.Type = "window"
	c.Window.Type = Tumbling
	c.Window.Size = time.Minute
	c.Late = LateDrop
	c.Aggregate = map[string]string{"n": "count()", "total": "sum(value.amount)"}
	spec, err := Compile(c)
	if err != nil {
		b.Fatal(err)
	}
	return New(spec, "bench", "bench-group", nil)
}

// benchStage feeds b.N records through a fresh operator in batches,
// timing and counting the allocations of Add (timeAdd) or of Flush.
func benchStage(b *testing.B, timeAdd bool) {
	op, in := newBenchOperator(b), newBenchInput()
	var before, after runtime.MemStats
	var mallocs, bytes uint64
	var emitted, late uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(benchBatch, b.N-done)
		batch := in.fill(n)
		if timeAdd {
			runtime.ReadMemStats(&before)
			b.StartTimer()
		}
		for _, r := range batch {
			l, err := op.Add(r)
			if err != nil {
				b.Fatal(err)
			}
			if l != nil {
				late++
			}
		}
		if timeAdd {
			b.StopTimer()
			runtime.ReadMemStats(&after)
		} else {
			runtime.ReadMemStats(&before)
			b.StartTimer()
		}
		out, err := op.Flush()
		if err != nil {
			b.Fatal(err)
		}
		op.Committed()
		if !timeAdd {
			b.StopTimer()
			runtime.ReadMemStats(&after)
		}
		mallocs += after.Mallocs - before.Mallocs
		bytes += after.TotalAlloc - before.TotalAlloc
		for _, r := range out {
			if r.Kind == connector.DataRecord {
				emitted++
			}
		}
		done += n
	}
	if late > 0 {
		b.Fatalf("%d late records: the workload is in event-time order", late)
	}
	// Every window of a partition whose watermark passed its end was
	// emitted: at least all but the last window per key.
	if full := int64(b.N) / benchPerWindow; full > 1 && int64(emitted) < (full-1)*benchKeys {
		b.Fatalf("%d results for %d records, want at least %d", emitted, b.N, (full-1)*benchKeys)
	}
	b.ReportMetric(float64(mallocs)/float64(b.N), "allocs/record")
	b.ReportMetric(float64(bytes)/float64(b.N), "B/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
	b.ReportMetric(float64(op.Stats.OpenWindows.Load()), "open-windows")
}

// BenchmarkOperatorAdd: Add per record (expressions, event time, key,
// the window's accumulator, the dirty set).
func BenchmarkOperatorAdd(b *testing.B) { benchStage(b, true) }

// BenchmarkFlush: Flush per batch of 5,000 records, per record (the
// batch's state records, and every tenth batch the closed windows'
// results and deletions).
func BenchmarkFlush(b *testing.B) { benchStage(b, false) }
