package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	prod := testenv.KafkaClient(t, brokers, append(ProducerOptions(100*time.Millisecond),
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

// EnsureStateTopic against the real broker: creates the topic compacted,
// is idempotent, and refuses an existing topic that deletes by retention.
func TestEnsureStateTopicKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(testenv.KafkaClient(t, brokers))
	topic := StateTopic(testenv.UniqueName(t, "st", "-", 100))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(ctx, topic); err != nil {
			t.Logf("delete %s: %v", topic, err)
		}
	})
	if n, err := EnsureStateTopic(ctx, adm, topic, 3); err != nil || n != 3 {
		t.Fatalf("EnsureStateTopic = %d, %v; want 3 partitions", n, err)
	}
	// A topic just created can be described before its config reached
	// the broker that answers (KRaft propagates metadata
	// asynchronously): ask until the policy shows, for a few seconds.
	policy := ""
	for deadline := time.Now().Add(10 * time.Second); policy == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			continue
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" {
				policy = c.MaybeValue()
			}
		}
	}
	if policy != "compact" {
		t.Fatalf("%s created with cleanup.policy=%q, want compact", topic, policy)
	}
	if n, err := EnsureStateTopic(ctx, adm, topic, 6); err != nil || n != 3 {
		t.Fatalf("EnsureStateTopic of the existing topic = %d, %v; want its 3 partitions", n, err)
	}
	plain := testenv.KafkaTopic(t, brokers, 1) // cleanup.policy=delete, the broker's default
	if _, err := EnsureStateTopic(ctx, adm, plain, 1); err == nil || !strings.Contains(err.Error(), plain) {
		t.Fatalf("EnsureStateTopic of %s (cleanup.policy=delete): %v, want an error naming it", plain, err)
	}
}

// TestLoadStateCommitted and TestLoadStateWaitsForOpenTransaction against
// the real broker, whose aborted-transaction index and last stable offset
// kfake only imitates.
func TestLoadStateCommittedKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	for name, run := range map[string]func(t *testing.T, ns, out, txnID string){
		"committed only": func(t *testing.T, ns, out, txnID string) {
			testLoadStateCommitted(t, brokers, ns, out, txnID)
		},
		"open transaction commits": func(t *testing.T, ns, out, txnID string) {
			testLoadStateWaits(t, brokers, ns, out, txnID, true)
		},
		"open transaction aborts": func(t *testing.T, ns, out, txnID string) {
			testLoadStateWaits(t, brokers, ns, out, txnID, false)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ns := testenv.UniqueName(t, "st", "-", 100)
			adm := kadm.NewClient(testenv.KafkaClient(t, brokers))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := adm.DeleteTopic(ctx, StateTopic(ns)); err != nil {
					t.Logf("delete %s: %v", StateTopic(ns), err)
				}
			})
			run(t, ns, testenv.KafkaTopic(t, brokers, 1), testenv.UniqueTransactionalID(t))
		})
	}
}
