package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// abortTransaction writes records from..to-1, keyed so every partition
// gets some, in a transaction that it aborts.
func abortTransaction(t *testing.T, c *kfake.Cluster, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("in"), kgo.TransactionalID("aborter"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k-%d", i), Value: fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "aborted-%d", i)}}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// TestBoundedStopInsideAbortedTransaction: an explicit stop (or a time's)
// can fall inside an aborted transaction, whose records read_committed
// never returns. Here each partition starts with one, so no record below
// the stops is readable and no batch would ever commit: the first record
// past a stop proves the input below it is read, and the connector
// finishes with its checkpoint at the stops instead of running for ever
// (without the source's stop marker this test times out).
func TestBoundedStopInsideAbortedTransaction(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	abortTransaction(t, c, 0, 1000)
	produce(t, c, 1000, 3000)
	after := ends(t, c, "in")
	stops := connector.Checkpoint{}
	var offsets []string
	for tp, o := range after {
		if o < 3 {
			t.Fatalf("partition %d holds %d offsets: too few aborted records", tp.Partition, o)
		}
		stops[tp] = 1 // inside the aborted transaction that opens the partition
		offsets = append(offsets, fmt.Sprintf(`"%d": 1`, tp.Partition))
	}
	cfg, err := config.Parse("aborted.yaml", []byte(`kafka:
  brokers: [`+strings.Join(c.ListenAddrs(), ",")+`]
connectors:
  - name: job
    source: {type: kafka, topics: [in], group: job}
    sink: {type: kafka, topic: job-out}
    bounded: {offsets: {in: {`+strings.Join(offsets, ", ")+`}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg)
	eventually(t, "job FINISHED", func() bool { return state(d, "job") == connector.Finished })
	if !checkpointIs(d, "job", stops) {
		cp, err := d.Offsets(context.Background(), "job")
		t.Fatalf("checkpoint %v (%v), want the stops %v", cp, err, stops)
	}
	if n := recordsIn(d, "job"); n != 0 {
		t.Fatalf("%d records in, want none: every record below the stops was aborted", n)
	}
}
