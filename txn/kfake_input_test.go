package txn

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// kfakeInput starts a one-broker kfake cluster whose topic has two
// partitions holding n records, alternately, and returns it with its seed
// option and a client on it (both closed when the test ends).
func kfakeInput(t *testing.T, topic string, n int) (*kfake.Cluster, kgo.Opt, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	prod, err := kgo.NewClient(seeds, kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	for i := range n {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Partition: int32(i % 2), Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return c, seeds, prod
}

// pollBatch polls client() until it has n records, returns them (event ID
// = origin) and advances cp past them.
func pollBatch(ctx context.Context, t *testing.T, client func() *kgo.Client, n int, cp connector.Checkpoint) []*connector.Record {
	t.Helper()
	var recs []*connector.Record
	for len(recs) < n {
		fs := client().PollRecords(ctx, n-len(recs))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			o := connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			recs = append(recs, &connector.Record{Value: r.Value, Origin: o, EventID: o.String()})
			cp.Advance(o)
		})
	}
	return recs
}

// commitBatch runs one batch of recs through p up to cp.
func commitBatch(ctx context.Context, t *testing.T, p connector.Protocol, recs []*connector.Record, cp connector.Checkpoint) error {
	t.Helper()
	if err := p.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	return p.Commit(ctx, cp)
}
