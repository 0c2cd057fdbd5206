package txn

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

func TestOffsetsTopicRecords(t *testing.T) {
	o := &OffsetsTopic{Topic: "_offsets", Connector: "gen"}
	cp := connector.Checkpoint{{Topic: "b", Partition: 0}: 7, {Topic: "a", Partition: 3}: 12}
	recs := o.Records(cp)
	want := []struct{ key, value string }{
		{`["gen",{"topic":"a","partition":3}]`, `{"offset":12}`},
		{`["gen",{"topic":"b","partition":0}]`, `{"offset":7}`},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		if recs[i].Topic != "_offsets" || string(recs[i].Key) != w.key || string(recs[i].Value) != w.value {
			t.Errorf("record %d: %s %s=%s, want _offsets %s=%s", i, recs[i].Topic, recs[i].Key, recs[i].Value, w.key, w.value)
		}
	}
	if got := o.Records(connector.Checkpoint{}); len(got) != 0 {
		t.Errorf("empty checkpoint gives %d records", len(got))
	}
}

func TestOffsetsTopicApply(t *testing.T) {
	o := &OffsetsTopic{Topic: "_offsets", Connector: "gen"}
	other := &OffsetsTopic{Topic: "_offsets", Connector: "other"}
	a0 := connector.TopicPartition{Topic: "a", Partition: 0}
	a1 := connector.TopicPartition{Topic: "a", Partition: 1}
	own := func(cp connector.Checkpoint) []*kgo.Record { return o.Records(cp) }
	key := func(name, topic string, p int32) []byte {
		k, _ := json.Marshal([]any{name, offsetsKeyPart{topic, p}})
		return k
	}
	tests := []struct {
		name string
		recs []*kgo.Record
		want connector.Checkpoint
	}{
		{"round trip", own(connector.Checkpoint{a0: 5, a1: 9}), connector.Checkpoint{a0: 5, a1: 9}},
		{"latest wins", append(own(connector.Checkpoint{a0: 5}), own(connector.Checkpoint{a0: 8})...), connector.Checkpoint{a0: 8}},
		{"another connector's records are ignored", append(other.Records(connector.Checkpoint{a0: 100}), own(connector.Checkpoint{a1: 2})...), connector.Checkpoint{a1: 2}},
		{"tombstone deletes", append(own(connector.Checkpoint{a0: 5, a1: 3}), &kgo.Record{Key: key("gen", "a", 0)}), connector.Checkpoint{a1: 3}},
		{"another connector's tombstone is ignored", append(own(connector.Checkpoint{a0: 5}), &kgo.Record{Key: key("other", "a", 0)}), connector.Checkpoint{a0: 5}},
		{"malformed records are skipped", append(own(connector.Checkpoint{a0: 5}),
			&kgo.Record{Key: []byte(`not json`), Value: []byte(`{"offset":1}`)},
			&kgo.Record{Key: []byte(`["gen"]`), Value: []byte(`{"offset":1}`)},
			&kgo.Record{Key: []byte(`["gen",{"topic":"a","partition":0},"x"]`), Value: []byte(`{"offset":1}`)},
			&kgo.Record{Key: []byte(`[7,{"topic":"a","partition":0}]`), Value: []byte(`{"offset":1}`)},
			&kgo.Record{Key: []byte(`["gen","a/0"]`), Value: []byte(`{"offset":1}`)},
			&kgo.Record{Key: key("gen", "a", 0), Value: []byte(`garbage`)},
		), connector.Checkpoint{a0: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := connector.Checkpoint{}
			for _, r := range tt.recs {
				o.apply(cp, r)
			}
			if len(cp) != len(tt.want) {
				t.Fatalf("got %v, want %v", cp, tt.want)
			}
			for tp, off := range tt.want {
				if got, ok := cp[tp]; !ok || got != off {
					t.Errorf("%s: got %d (%v), want %d", tp, got, ok, off)
				}
			}
		})
	}
}

// newKfake starts a one-broker kfake cluster closed at the end of the test.
func newKfake(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// writeTxn produces recs in one transaction that commits or aborts.
func writeTxn(t *testing.T, ctx context.Context, brokers []string, txnID string, commit bool, recs []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(txnID))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction: %v", err)
	}
}

func TestOffsetsTopicLoadMissingTopic(t *testing.T) {
	c := newKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := &OffsetsTopic{Topic: "_offsets", Connector: "gen", Brokers: c.ListenAddrs()}
	cp, err := o.Load(ctx)
	if err != nil {
		t.Fatalf("Load of a missing topic: %v", err)
	}
	if len(cp) != 0 {
		t.Errorf("checkpoint %v, want empty", cp)
	}
}

func TestOffsetsTopicEnsureAndLoad(t *testing.T) {
	c := newKfake(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := c.ListenAddrs()
	o := &OffsetsTopic{Topic: "_offsets", Connector: "gen", Brokers: brokers}
	other := &OffsetsTopic{Topic: "_offsets", Connector: "other", Brokers: brokers}
	if err := o.Ensure(ctx); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if err := o.Ensure(ctx); err != nil {
		t.Fatalf("Ensure of an existing topic: %v", err)
	}

	cp, err := o.Load(ctx)
	if err != nil || len(cp) != 0 {
		t.Fatalf("Load of an empty topic = %v, %v; want an empty checkpoint", cp, err)
	}

	g0 := connector.TopicPartition{Topic: "generator:gen", Partition: 0}
	g1 := connector.TopicPartition{Topic: "generator:gen", Partition: 1}
	writeTxn(t, ctx, brokers, "w", true, o.Records(connector.Checkpoint{g0: 10, g1: 4}))
	writeTxn(t, ctx, brokers, "w", true, o.Records(connector.Checkpoint{g0: 20}))                // latest wins
	writeTxn(t, ctx, brokers, "w", false, o.Records(connector.Checkpoint{g0: 99, g1: 99}))       // aborted: never loaded
	writeTxn(t, ctx, brokers, "w2", true, other.Records(connector.Checkpoint{g0: 500, g1: 500})) // not ours

	cp, err = o.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := connector.Checkpoint{g0: 20, g1: 4}
	if len(cp) != len(want) || cp[g0] != 20 || cp[g1] != 4 {
		t.Errorf("loaded %v, want %v", cp, want)
	}
	cpOther, err := other.Load(ctx)
	if err != nil || len(cpOther) != 2 || cpOther[g0] != 500 {
		t.Errorf("other connector loaded %v, %v", cpOther, err)
	}

	// The log now ends in an abort marker: Load still reaches the end.
	writeTxn(t, ctx, brokers, "w", false, o.Records(connector.Checkpoint{g1: 77}))
	cp, err = o.Load(ctx)
	if err != nil || cp[g0] != 20 || cp[g1] != 4 {
		t.Errorf("Load after a trailing abort = %v, %v; want %v", cp, err, want)
	}
}
