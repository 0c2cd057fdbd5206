package kafka

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

func TestOriginRoundTrip(t *testing.T) {
	for _, o := range []connector.Origin{
		{Topic: "orders", Partition: 3, Offset: 42},
		{Topic: "generator:a/b", Partition: 0, Offset: 0},
	} {
		got, err := ParseOrigin(o.String())
		if err != nil || got != o {
			t.Errorf("ParseOrigin(%q) = %v, %v; want %v", o.String(), got, err, o)
		}
	}
	for _, bad := range []string{"", "x", "a/1", "a/x/1", "a/1/y", "/1/2"} {
		if _, err := ParseOrigin(bad); err == nil {
			t.Errorf("ParseOrigin(%q) accepted", bad)
		}
	}
}

func TestToKgoHeadersAndTopic(t *testing.T) {
	r := &connector.Record{
		Key: []byte("k"), Value: []byte("v"), EventID: "id-1",
		Headers: []connector.Header{{Key: "a", Value: []byte("1")}, {Key: HeaderEventID, Value: []byte("stale")}},
		Origin:  connector.Origin{Topic: "in", Partition: 1, Offset: 7},
	}
	kr := ToKgo(r, "out")
	if kr.Topic != "out" {
		t.Fatalf("topic %q", kr.Topic)
	}
	got := map[string]string{}
	for _, h := range kr.Headers {
		if _, dup := got[h.Key]; dup {
			t.Fatalf("header %q twice", h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	if got["a"] != "1" || got[HeaderEventID] != "id-1" || got[HeaderOrigin] != "in/1/7" {
		t.Fatalf("headers %v", got)
	}
	r.Topic = "routed"
	if ToKgo(r, "out").Topic != "routed" {
		t.Fatal("route ignored")
	}
}

// benchRecord is the record the conversion benchmarks convert: 100 bytes
// of value, one header of its own, an event ID that is not its origin (so
// the output carries both headers).
func benchRecord() *connector.Record {
	return &connector.Record{
		Key: []byte("k-42"), Value: make([]byte, 100), EventID: "order-123456789",
		Headers: []connector.Header{{Key: "trace", Value: []byte("abc")}},
		Origin:  connector.Origin{Topic: "orders", Partition: 7, Offset: 123456789},
	}
}

// BenchmarkToKgo converts one record for producing per op: its headers
// plus the event-id and connectd-origin headers every output carries.
func BenchmarkToKgo(b *testing.B) {
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if out := ToKgo(r, "out"); len(out.Headers) != 3 {
			b.Fatal(out.Headers)
		}
	}
}

// BenchmarkConvert is BenchmarkToKgo through a Converter, as the write
// paths convert: the allocations are per chunk, not per record.
func BenchmarkConvert(b *testing.B) {
	r := benchRecord()
	var c Converter
	b.ReportAllocs()
	for b.Loop() {
		if out := c.Convert(r, "out"); len(out.Headers) != 3 {
			b.Fatal(out.Headers)
		}
	}
}

// BenchmarkConvertRecycled is BenchmarkConvert as a batch producer runs
// it: the Converter is recycled after every batch of 10,000 records, once
// they are all acknowledged, so their memory is reused, not allocated.
func BenchmarkConvertRecycled(b *testing.B) {
	r := benchRecord()
	var c Converter
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if out := c.Convert(r, "out"); len(out.Headers) != 3 {
			b.Fatal(out.Headers)
		}
		if n++; n == 10000 {
			c.Recycle()
			n = 0
		}
	}
}

// After Recycle a Converter reuses the records and header bytes it handed
// out, and converts into them what ToKgo gives; after Forget it never
// writes to those handed out since the last Recycle again, while the
// ones recycled before stay reusable.
func TestConverterRecycleAndForget(t *testing.T) {
	rec := func(i int) *connector.Record {
		return &connector.Record{
			Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i)), EventID: fmt.Sprint("id-", i),
			Origin: connector.Origin{Topic: "in", Partition: 1, Offset: int64(i)},
		}
	}
	var c Converter
	convert := func(from, n int) map[*kgo.Record]bool {
		seen := map[*kgo.Record]bool{}
		var got []*kgo.Record
		for i := from; i < from+n; i++ {
			k := c.Convert(rec(i), "out")
			seen[k] = true
			got = append(got, k)
		}
		for i, k := range got {
			if want := ToKgo(rec(from+i), "out"); !reflect.DeepEqual(k, want) {
				t.Fatalf("record %d: %+v, want %+v", from+i, k, want)
			}
		}
		return seen
	}
	const n = 3 * chunkRecords // whole chunks: the second batch takes exactly the first one's records
	first := convert(0, n)
	c.Recycle()
	second := convert(n, n)
	for k := range second {
		if !first[k] {
			t.Fatal("a recycled Converter allocated a record instead of reusing one")
		}
	}
	c.Forget() // the second batch's records may still be in flight
	third := convert(2*n, 2)
	for k := range third {
		if second[k] {
			t.Fatal("a record handed out before Forget was written again")
		}
	}
	// The third batch waited for its promises: its chunks, and nothing of
	// the second's, are reused.
	c.Recycle()
	fourth := convert(3*n, 2)
	for k := range fourth {
		if second[k] || !third[k] {
			t.Fatal("after Forget and Recycle, a record was not reused from the recycled chunk")
		}
	}
}

// A Converter gives what ToKgo gives, across chunk boundaries and for
// records with more headers than fit inline or IDs longer than a chunk,
// and never writes over a record it handed out earlier.
func TestConverterMatchesToKgo(t *testing.T) {
	var c Converter
	var recs []*connector.Record
	for i := range 3 * chunkRecords {
		r := &connector.Record{
			Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i)),
			EventID: fmt.Sprint("id-", i),
			Origin:  connector.Origin{Topic: "in", Partition: int32(i % 7), Offset: int64(i) * 1_000_003},
		}
		switch i % 50 {
		case 7:
			r.Headers = []connector.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "c", Value: []byte("3")}}
		case 11:
			r.EventID = string(make([]byte, chunkBytes+5))
		case 13:
			r.Topic = "routed"
		case 17, 18:
			r.EventID = r.Origin.String() // derived: no origin header
		}
		recs = append(recs, r)
	}
	var got []*kgo.Record
	for _, r := range recs {
		got = append(got, c.Convert(r, "out"))
	}
	for i, r := range recs {
		if want := ToKgo(r, "out"); !reflect.DeepEqual(got[i], want) {
			t.Fatalf("record %d: Convert gave %+v, ToKgo %+v", i, got[i], want)
		}
	}
}

// A derived event ID is the origin: the record carries it once, as
// event-id, and OriginOf reads the origin back from it.
func TestDerivedEventIDIsNotRepeated(t *testing.T) {
	o := connector.Origin{Topic: "in", Partition: 1, Offset: 7}
	r := &connector.Record{Value: []byte("v"), EventID: o.String(), Origin: o}
	var c Converter
	for _, kr := range []*kgo.Record{ToKgo(r, "out"), c.Convert(r, "out")} {
		if len(kr.Headers) != 1 || kr.Headers[0].Key != HeaderEventID || string(kr.Headers[0].Value) != "in/1/7" {
			t.Fatalf("headers %+v, want only event-id in/1/7", kr.Headers)
		}
		got, err := OriginOf(string(kr.Headers[0].Value), "")
		if err != nil || got != o {
			t.Fatalf("OriginOf = %v, %v; want %v", got, err, o)
		}
	}
	// Another ID keeps its origin header, which OriginOf prefers.
	if got, err := OriginOf("id-1", "in/1/7"); err != nil || got != o {
		t.Fatalf("OriginOf with a header = %v, %v; want %v", got, err, o)
	}
}

// A produce that fails with CONCURRENT_TRANSACTIONS (transaction.version 2,
// markers of the previous transaction still being written) waits for the
// next metadata refresh: the producer must not space refreshes by
// franz-go's 5 s, which stalled a whole commit 5 s (issue 17's bimodal
// rounds; the benchmark reproduction is in README "Benchmarks").
func TestProducerMetadataMinAge(t *testing.T) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, ProducerOptions(100*time.Millisecond)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, _ := cl.OptValue(kgo.MetadataMinAge).(time.Duration)
	if got != ProducerMetadataMinAge || got > 100*time.Millisecond {
		t.Fatalf("producer MetadataMinAge = %v, want %v (≤ 100 ms)", got, ProducerMetadataMinAge)
	}
}

// TestLinger: a producer lingers franz-go's 10 ms at most, and at most a
// fifth of the commit interval, so a short interval's output is sent while
// the batch is read, not at its commit.
func TestLinger(t *testing.T) {
	for _, tt := range []struct{ interval, want time.Duration }{
		{10 * time.Millisecond, 2 * time.Millisecond},
		{25 * time.Millisecond, 5 * time.Millisecond},
		{100 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, 10 * time.Millisecond},
		{0, 0},
	} {
		if got := Linger(tt.interval); got != tt.want {
			t.Errorf("Linger(%v) = %v, want %v", tt.interval, got, tt.want)
		}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, ProducerOptions(10*time.Millisecond)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got, _ := cl.OptValue(kgo.ProducerLinger).(time.Duration); got != 2*time.Millisecond {
		t.Fatalf("the producer of a connector committing every 10ms lingers %v, want 2ms", got)
	}
}
