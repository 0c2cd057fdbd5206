package kafka

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// The restore target of DESIGN.md's event time section: 1,000,000 open
// keys of one input partition restored from the real broker, beside the
// state of another input partition that shares the state partition (read
// and left out). The time is logged, not asserted.
func TestLoadStateMillionKeysKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ns := testenv.UniqueName(t, "st", "-", 100)
	topic := StateTopic(ns)
	adm := kadm.NewClient(testenv.KafkaClient(t, brokers))
	if _, err := EnsureStateTopic(ctx, adm, topic, 4); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(ctx, topic); err != nil {
			t.Logf("delete %s: %v", topic, err)
		}
	})

	const keys, others, perTxn = 1_000_000, 100_000, 100_000
	value := func(i int) []byte { return fmt.Appendf(nil, `{"count":%d,"sum":%d.25,"max":%d}`, i%1000, i, i%977) }
	prod := testenv.KafkaClient(t, brokers, append(ProducerOptions(),
		kgo.TransactionalID(testenv.UniqueTransactionalID(t)), kgo.ProducerBatchMaxBytes(1<<20))...)
	began := time.Now()
	var conv Converter
	var bytes int
	for start := 0; start < keys; start += perTxn {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		promise := kgo.AbortingFirstErrPromise(prod)
		for i := start; i < start+perTxn; i++ {
			r := stateRec(ns, "in", 0, "w/1700000000000/key-"+strconv.Itoa(i), value(i))
			bytes += len(r.Key) + len(r.Value)
			prod.Produce(ctx, conv.Convert(r, "out"), promise.Promise())
			if i%(keys/others) == 0 { // input partition 4: also state partition 0
				prod.Produce(ctx, conv.Convert(stateRec(ns, "in", 4, "w/1/k"+strconv.Itoa(i), value(i)), "out"), promise.Promise())
			}
		}
		if err := promise.Err(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d state keys (%.1f MB of keys and values) and %d of another input partition in %d transactions in %v",
		keys, float64(bytes)/1e6, others, keys/perTxn, time.Since(began).Round(time.Millisecond))

	store, err := NewStateStore([]kgo.Opt{kgo.SeedBrokers(brokers...)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	began = time.Now()
	state, err := store.LoadState(ctx, ns, connector.TopicPartition{Topic: "in", Partition: 0})
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	if len(state) != keys {
		t.Fatalf("restored %d keys, want %d", len(state), keys)
	}
	for _, i := range []int{0, 1, keys / 2, keys - 1} {
		if got := state["w/1700000000000/key-"+strconv.Itoa(i)]; string(got) != string(value(i)) {
			t.Fatalf("key %d restored as %q, want %q", i, got, value(i))
		}
	}
	t.Logf("restored %d keys of input partition in/0 from %s (%d records read) in %v", len(state), topic, keys+others, took.Round(time.Millisecond))
}
