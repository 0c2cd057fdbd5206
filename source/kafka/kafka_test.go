package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      Config
		want    Config
		wantErr string // prefix; "" means valid
	}{
		{
			name: "defaults",
			in:   Config{Topics: []string{"in"}},
			want: Config{Topics: []string{"in"}, Group: "connectd-c", StartOffset: "earliest", SessionTimeout: 45 * time.Second,
				FetchMaxBytes: DefaultFetchMaxBytes, FetchMaxPartitionBytes: DefaultFetchMaxPartitionBytes},
		},
		{
			name: "explicit values kept",
			in: Config{Topics: []string{"a", "b"}, Group: "g", StartOffset: "latest", SessionTimeout: 10 * time.Second,
				FetchMaxBytes: 1 << 20, FetchMaxPartitionBytes: 64 << 10},
			want: Config{Topics: []string{"a", "b"}, Group: "g", StartOffset: "latest", SessionTimeout: 10 * time.Second,
				FetchMaxBytes: 1 << 20, FetchMaxPartitionBytes: 64 << 10},
		},
		{name: "no topics", in: Config{}, wantErr: "topics: "},
		{name: "empty topic list", in: Config{Topics: []string{}}, wantErr: "topics: "},
		{name: "bad start offset", in: Config{Topics: []string{"in"}, StartOffset: "beginning"}, wantErr: `start_offset: "beginning"`},
		{name: "negative session timeout", in: Config{Topics: []string{"in"}, SessionTimeout: -time.Second}, wantErr: "session_timeout: "},
		{name: "negative fetch bound", in: Config{Topics: []string{"in"}, FetchMaxBytes: -1}, wantErr: "fetch_max_bytes: -1 "},
		{name: "partition bound past int32", in: Config{Topics: []string{"in"}, FetchMaxPartitionBytes: 1 << 31}, wantErr: "fetch_max_partition_bytes: 2147483648 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			err := c.Validate("c")
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if fmt.Sprint(c) != fmt.Sprint(tt.want) {
				t.Errorf("after Validate %+v, want %+v", c, tt.want)
			}
		})
	}
}

func TestFromKgo(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	tests := []struct {
		name string
		in   *kgo.Record
		want connector.Record
	}{
		{
			name: "full",
			in: &kgo.Record{
				Topic: "orders", Partition: 3, Offset: 42, Timestamp: ts,
				Key: []byte("k"), Value: []byte("v"),
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e1")}, {Key: "x", Value: nil}},
			},
			want: connector.Record{
				Key: []byte("k"), Value: []byte("v"), Timestamp: ts,
				Headers: []connector.Header{{Key: "event-id", Value: []byte("e1")}, {Key: "x"}},
				Origin:  connector.Origin{Topic: "orders", Partition: 3, Offset: 42},
			},
		},
		{
			name: "tombstone without headers",
			in:   &kgo.Record{Topic: "t", Partition: 0, Offset: 0, Key: []byte("k")},
			want: connector.Record{Key: []byte("k"), Origin: connector.Origin{Topic: "t"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromKgo(tt.in)
			if string(got.Key) != string(tt.want.Key) || (got.Value == nil) != (tt.want.Value == nil) || string(got.Value) != string(tt.want.Value) {
				t.Errorf("key/value %q/%q, want %q/%q", got.Key, got.Value, tt.want.Key, tt.want.Value)
			}
			if !got.Timestamp.Equal(tt.want.Timestamp) || got.Origin != tt.want.Origin {
				t.Errorf("timestamp %v origin %s, want %v %s", got.Timestamp, got.Origin, tt.want.Timestamp, tt.want.Origin)
			}
			if got.EventID != "" || got.Topic != "" {
				t.Errorf("event ID %q topic %q set by the conversion", got.EventID, got.Topic)
			}
			if len(got.Headers) != len(tt.want.Headers) {
				t.Fatalf("headers %v, want %v", got.Headers, tt.want.Headers)
			}
			for i, h := range tt.want.Headers {
				if got.Headers[i].Key != h.Key || string(got.Headers[i].Value) != string(h.Value) {
					t.Errorf("header %d: %s=%q, want %s=%q", i, got.Headers[i].Key, got.Headers[i].Value, h.Key, h.Value)
				}
			}
			// Headers are the record's own slice: editing them leaves the
			// kgo record alone.
			if len(got.Headers) > 0 {
				got.SetHeader("event-id", []byte("changed"))
				if tt.in.Headers[0].Key != "event-id" || string(tt.in.Headers[0].Value) != "e1" {
					t.Errorf("kgo record headers changed: %v", tt.in.Headers)
				}
			}
		})
	}
}

// The records of one poll share a header slab, but each has its own:
// setting or adding a header on one leaves the others as they were read,
// across slab boundaries and for records with more headers than the
// slab has room for.
func TestHeaderSlabKeepsRecordsApart(t *testing.T) {
	const n = 50
	var hs headerSlab
	recs := make([]connector.Record, n)
	for i := range recs {
		r := &kgo.Record{Topic: "t", Offset: int64(i)}
		for j := range 1 + i%3 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: fmt.Sprint("h", j), Value: []byte(fmt.Sprint(i))})
		}
		hs.fromKgo(&recs[i], r, 2) // a small guess: many slabs
	}
	for i := range recs {
		recs[i].SetHeader("added", []byte("x"))
		recs[i].SetHeader("h0", []byte("changed"))
	}
	for i, r := range recs {
		if len(r.Headers) != 2+i%3 {
			t.Fatalf("record %d: %d headers, want %d: %v", i, len(r.Headers), 2+i%3, r.Headers)
		}
		for j, h := range r.Headers[:i%3] { // h0 was removed and added again, last
			if h.Key != fmt.Sprint("h", j+1) || string(h.Value) != fmt.Sprint(i) {
				t.Fatalf("record %d header %d: %s=%q, want h%d=%d", i, j+1, h.Key, h.Value, j+1, i)
			}
		}
		if v, _ := r.Header("h0"); string(v) != "changed" {
			t.Fatalf("record %d: h0=%q", i, v)
		}
	}
}

// A slab is sized for the records still to come, but never past
// maxSlabHeaders: a record with headers followed by many without would
// otherwise hold room for headers nobody has.
func TestHeaderSlabIsBounded(t *testing.T) {
	var hs headerSlab
	var rec connector.Record
	hs.fromKgo(&rec, &kgo.Record{Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e1")}}}, 1_000_000)
	if c := cap(hs.free); c != maxSlabHeaders {
		t.Fatalf("slab for 1,000,000 records to come: room for %d headers, want %d", c, maxSlabHeaders)
	}
	hs = headerSlab{}
	big := make([]kgo.RecordHeader, maxSlabHeaders+1)
	hs.fromKgo(&rec, &kgo.Record{Headers: big}, 10)
	if len(rec.Headers) != len(big) {
		t.Fatalf("a record with more headers than a slab holds: %d headers, want %d", len(rec.Headers), len(big))
	}
}

func TestClientOptionsAccepted(t *testing.T) {
	for _, start := range []string{"earliest", "latest"} {
		c := Config{Topics: []string{"in"}}
		c.StartOffset = start
		if err := c.Validate("c"); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(c.ClientOptions(""), kgo.SeedBrokers("127.0.0.1:1"))...)
		if err != nil {
			t.Fatalf("%s: options rejected: %v", start, err)
		}
		cl.Close()
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// produce writes n records per partition to topic (partitions 0 and 1), each
// with an event-id header, and returns them per partition.
func produce(t *testing.T, ctx context.Context, brokers []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range n {
			recs = append(recs, &kgo.Record{
				Topic: topic, Partition: p,
				Key:     fmt.Appendf(nil, "k%d", i),
				Value:   fmt.Appendf(nil, "v%d-%d", p, i),
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "e%d-%d", p, i)}},
			})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func TestSourcePollsGroupClient(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := c.ListenAddrs()
	const perPartition = 5
	produce(t, ctx, brokers, "in", perPartition)

	conf := Config{Topics: []string{"in"}}
	if err := conf.Validate("src-test"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(conf.ClientOptions(""), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		t.Fatal(err)
	}
	// With BlockRebalanceOnPoll, leaving the group at Close waits for the
	// last poll's rebalance block to be released.
	defer cl.CloseAllowingRebalance()
	src := New(func() *kgo.Client { return cl }, quietLogger())

	seen := map[connector.Origin]*connector.Record{}
	for len(seen) < 2*perPartition {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		recs, err := src.Poll(pctx, 3)
		pcancel()
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if len(recs) > 3 {
			t.Errorf("Poll(max 3) returned %d records", len(recs))
		}
		for _, r := range recs {
			if _, dup := seen[r.Origin]; dup {
				t.Errorf("%s polled twice", r.Origin)
			}
			seen[r.Origin] = r
		}
		src.AllowRebalance()
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d records polled", len(seen), 2*perPartition)
		}
	}
	for p := range int32(2) {
		for i := range int64(perPartition) {
			o := connector.Origin{Topic: "in", Partition: p, Offset: i}
			r, ok := seen[o]
			if !ok {
				t.Errorf("%s not polled", o)
				continue
			}
			if want := fmt.Sprintf("v%d-%d", p, i); string(r.Value) != want {
				t.Errorf("%s: value %q, want %q", o, r.Value, want)
			}
			if id, _ := r.Header("event-id"); string(id) != fmt.Sprintf("e%d-%d", p, i) {
				t.Errorf("%s: event-id header %q", o, id)
			}
		}
	}
	hwms := src.HighWatermarks()
	for p := range int32(2) {
		tp := connector.TopicPartition{Topic: "in", Partition: p}
		if hwms[tp] != perPartition {
			t.Errorf("high watermark of %s = %d, want %d (all: %v)", tp, hwms[tp], perPartition, hwms)
		}
	}
	// The returned map is a copy.
	hwms[connector.TopicPartition{Topic: "x"}] = 1
	if len(src.HighWatermarks()) != 2 {
		t.Error("HighWatermarks returned the source's own map")
	}

	// Nothing left: a Poll with a deadline returns nothing and no error.
	pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	recs, err := src.Poll(pctx, 10)
	pcancel()
	src.AllowRebalance()
	if err != nil || len(recs) != 0 {
		t.Errorf("Poll with nothing to read = %d records, %v; want none and nil", len(recs), err)
	}
}

func TestSourceWithoutClient(t *testing.T) {
	src := New(func() *kgo.Client { return nil }, quietLogger())
	if _, err := src.Poll(context.Background(), 1); err == nil {
		t.Error("Poll without a client returned no error")
	}
	src.AllowRebalance() // must not panic
	src.Seek(connector.Checkpoint{{Topic: "in"}: 3})
	src.Close()
	if len(src.HighWatermarks()) != 0 {
		t.Error("high watermarks before any poll")
	}
}

func TestSourceClosedClient(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumeTopics("in"))
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	src := New(func() *kgo.Client { return cl }, quietLogger())
	if _, err := src.Poll(context.Background(), 1); err != kgo.ErrClientClosed {
		t.Errorf("Poll on a closed client = %v, want kgo.ErrClientClosed", err)
	}
}

// BenchmarkFromKgo converts one consumed record (one header) per op.
func BenchmarkFromKgo(b *testing.B) {
	r := &kgo.Record{
		Topic: "orders", Partition: 7, Offset: 123456789, Timestamp: time.UnixMilli(1700000000000),
		Key: []byte("k-42"), Value: make([]byte, 100),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if rec := FromKgo(r); rec.Origin.Offset != r.Offset {
			b.Fatal(rec.Origin)
		}
	}
}

// TestForTasks: a connector's tasks share its fetch bound, each keeping
// at least one partition's share.
func TestForTasks(t *testing.T) {
	for _, tc := range []struct {
		total, partition, tasks, want int
	}{
		{total: 2 << 20, partition: 512 << 10, tasks: 1, want: 2 << 20},
		{total: 2 << 20, partition: 512 << 10, tasks: 2, want: 1 << 20},
		{total: 2 << 20, partition: 512 << 10, tasks: 3, want: (2 << 20) / 3},
		{total: 2 << 20, partition: 512 << 10, tasks: 8, want: 512 << 10},
		{total: 100, partition: 512 << 10, tasks: 4, want: 100},
	} {
		c := Config{FetchMaxBytes: tc.total, FetchMaxPartitionBytes: tc.partition}
		got := c.ForTasks(tc.tasks)
		if got.FetchMaxBytes != tc.want || got.FetchMaxPartitionBytes != tc.partition {
			t.Errorf("total %d, partition %d, %d tasks: got fetch bounds %d/%d, want %d/%d",
				tc.total, tc.partition, tc.tasks, got.FetchMaxBytes, got.FetchMaxPartitionBytes, tc.want, tc.partition)
		}
		if c.FetchMaxBytes != tc.total {
			t.Errorf("ForTasks changed its receiver: %d", c.FetchMaxBytes)
		}
	}
}
