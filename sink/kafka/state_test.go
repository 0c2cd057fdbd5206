package kafka

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// stateRec is a state record of input partition topic/partition; a nil
// value deletes key.
func stateRec(ns, topic string, partition int32, key string, value []byte) *connector.Record {
	return &connector.Record{
		Kind:   connector.StateRecord,
		Topic:  ns,
		Key:    []byte(key),
		Value:  value,
		Origin: connector.Origin{Topic: topic, Partition: partition, Offset: 99},
	}
}

func TestStateRecordConversion(t *testing.T) {
	ts := time.UnixMilli(1700000000000)
	r := stateRec("conn", "orders", 7, "w/1000/cust-1", []byte(`{"n":3}`))
	r.Timestamp = ts
	r.EventID = "ignored"
	r.Headers = []connector.Header{{Key: "h", Value: []byte("v")}}
	kr := ToKgo(r, "out")
	if kr.Topic != "conn-state" || string(kr.Key) != "orders/7/w/1000/cust-1" || string(kr.Value) != `{"n":3}` {
		t.Fatalf("state record %s %q=%q, want conn-state %q=%q", kr.Topic, kr.Key, kr.Value, "orders/7/w/1000/cust-1", `{"n":3}`)
	}
	if kr.Partition != 7 || !isStateRecord(kr) || len(kr.Headers) != 0 || !kr.Timestamp.Equal(ts) {
		t.Fatalf("state record partition %d, marked %v, headers %v, timestamp %v", kr.Partition, isStateRecord(kr), kr.Headers, kr.Timestamp)
	}
	if cap(kr.Key) != len(kr.Key) {
		t.Errorf("key capacity %d beyond its length %d: an append could overwrite the next record's bytes", cap(kr.Key), len(kr.Key))
	}
	if kr := ToKgo(stateRec("conn", "orders", 7, "k", nil), "out"); kr.Value != nil {
		t.Errorf("tombstone converted to value %q, want nil", kr.Value)
	}
	if kr := ToKgo(stateRec("", "orders", 7, "k", nil), "out"); kr.Topic != "" {
		t.Errorf("state record without namespace goes to %q, want no topic (the produce fails)", kr.Topic)
	}
	if kr := ToKgo(&connector.Record{Key: []byte("k"), Origin: connector.Origin{Partition: 3}}, "out"); isStateRecord(kr) || kr.Partition != 0 {
		t.Errorf("data record marked as state (%v) or given partition %d", isStateRecord(kr), kr.Partition)
	}
}

// A Converter gives what ToKgo gives for state records mixed with data
// records, across chunk boundaries and namespaces.
func TestConverterStateMatchesToKgo(t *testing.T) {
	var c Converter
	var in []*connector.Record
	for i := range 3 * chunkRecords {
		var r *connector.Record
		switch i % 3 {
		case 0:
			r = stateRec("a", "in", int32(i), strings.Repeat("k", i%50), []byte("v"))
		case 1:
			r = stateRec("b", "in", int32(i), "k", nil)
		default:
			r = &connector.Record{Key: []byte("d"), EventID: "in/0/1", Origin: connector.Origin{Topic: "in", Offset: 1}}
		}
		in = append(in, r)
	}
	got := make([]*kgo.Record, len(in))
	for i, r := range in {
		got[i] = c.Convert(r, "out")
	}
	for i, r := range in {
		if want := ToKgo(r, "out"); !reflect.DeepEqual(got[i], want) {
			t.Fatalf("record %d: Convert gave %+v, ToKgo %+v", i, got[i], want)
		}
	}
}

// newCluster starts a kfake cluster with the given topics (3 partitions).
func newCluster(t *testing.T, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// txnProducer is a transactional producer configured as the sink's
// (ProducerOptions).
func txnProducer(t *testing.T, seeds []string, id string) *kgo.Client {
	return newClient(t, seeds, append(ProducerOptions(100*time.Millisecond), kgo.TransactionalID(id))...)
}

// produceTxn writes recs through a Converter in one transaction of cl and
// commits or aborts it.
func produceTxn(ctx context.Context, t *testing.T, cl *kgo.Client, commit bool, recs ...*connector.Record) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var conv Converter
	promise := kgo.AbortingFirstErrPromise(cl)
	for _, r := range recs {
		cl.Produce(ctx, conv.Convert(r, "out"), promise.Promise())
	}
	if err := promise.Err(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

// readAll returns every record of topic with read_committed, markers
// included, as they are at the time of the call.
func readAll(ctx context.Context, t *testing.T, seeds []string, topic string) []*kgo.Record {
	t.Helper()
	cl := newClient(t, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Offset > 0 {
			remaining[lo.Partition] = lo.Offset
		}
	})
	var out []*kgo.Record
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if r.Offset >= remaining[r.Partition]-1 {
				delete(remaining, r.Partition)
			}
		})
	}
	return out
}

// State records land in partition Origin.Partition mod n of the state
// topic, in the batch's transaction; data records keep the default key
// hashing, also in a topic whose name ends like a state topic.
func TestPartitionerPlacesStateRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, "out", "x-state", "conn-state")
	prod := txnProducer(t, c.ListenAddrs(), "p")
	var recs []*connector.Record
	for p := range int32(8) {
		recs = append(recs, stateRec("conn", "in", p, "k", []byte("v")))
	}
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for _, k := range keys {
		recs = append(recs, &connector.Record{Key: []byte(k), Value: []byte("d")},
			&connector.Record{Key: []byte(k), Value: []byte("d"), Topic: "x-state"})
	}
	produceTxn(ctx, t, prod, true, recs...)

	state := readAll(ctx, t, c.ListenAddrs(), "conn-state")
	seen := 0
	for _, r := range state {
		if r.Attrs.IsControl() {
			continue
		}
		seen++
		parts := strings.Split(string(r.Key), "/")
		p, err := strconv.Atoi(parts[1])
		if len(parts) != 3 || parts[0] != "in" || parts[2] != "k" || err != nil {
			t.Fatalf("state key %q, want in/<partition>/k", r.Key)
		}
		if want := int32(p % 3); r.Partition != want {
			t.Errorf("state record of input partition %d in state partition %d, want %d", p, r.Partition, want)
		}
	}
	if seen != 8 {
		t.Fatalf("%d state records committed, want 8", seen)
	}
	hash := kgo.StickyKeyPartitioner(nil)
	for _, topic := range []string{"out", "x-state"} {
		n := 0
		for _, r := range readAll(ctx, t, c.ListenAddrs(), topic) {
			if r.Attrs.IsControl() {
				continue
			}
			n++
			if want := int32(hash.ForTopic(topic).Partition(r, 3)); r.Partition != want {
				t.Errorf("%s: data record %q in partition %d, want the key hash's %d", topic, r.Key, r.Partition, want)
			}
		}
		if n != len(keys) {
			t.Errorf("%s: %d data records, want %d", topic, n, len(keys))
		}
	}
}

func TestEnsureStateTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t)
	adm := kadm.NewClient(newClient(t, c.ListenAddrs()))

	n, err := EnsureStateTopic(ctx, adm, "conn-state", 4)
	if err != nil || n != 4 {
		t.Fatalf("EnsureStateTopic = %d, %v; want 4 partitions", n, err)
	}
	policy := func(topic string) string {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, cfg := range rcs[0].Configs {
			if cfg.Key == "cleanup.policy" {
				return cfg.MaybeValue()
			}
		}
		return ""
	}
	if p := policy("conn-state"); p != "compact" {
		t.Fatalf("state topic created with cleanup.policy=%q, want compact", p)
	}
	// Idempotent, and the partition count is the topic's, not the request's.
	if n, err := EnsureStateTopic(ctx, adm, "conn-state", 8); err != nil || n != 4 {
		t.Fatalf("EnsureStateTopic of an existing topic = %d, %v; want its 4 partitions", n, err)
	}

	for _, cfg := range []map[string]*string{nil, {"cleanup.policy": kadm.StringPtr("compact,delete")}} {
		topic := "plain-state"
		if cfg != nil {
			topic = "both-state"
		}
		if _, err := adm.CreateTopic(ctx, 2, -1, cfg, topic); err != nil {
			t.Fatal(err)
		}
		_, err := EnsureStateTopic(ctx, adm, topic, 2)
		if err == nil || !strings.Contains(err.Error(), topic) || !strings.Contains(err.Error(), "cleanup.policy") {
			t.Errorf("EnsureStateTopic of %s (cleanup.policy=%s): %v, want an error naming the topic and its policy", topic, policy(topic), err)
		}
	}
}

// LoadState returns exactly the committed state of one input partition:
// an aborted transaction's writes are not seen, later writes win,
// tombstones delete, the state of other input partitions and topics in the
// same state partition is left out, and the read ends although the
// partition ends in a transaction marker, which is no record.
func TestLoadStateCommitted(t *testing.T) {
	c := newCluster(t, "out")
	testLoadStateCommitted(t, c.ListenAddrs(), "conn", "out", "p")
}

// testLoadStateCommitted is TestLoadStateCommitted on the cluster at
// seeds, with namespace ns (whose state topic it creates), the existing
// output topic out and a transactional ID of its own.
func testLoadStateCommitted(t *testing.T, seeds []string, ns, out, txnID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, seeds))
	if _, err := EnsureStateTopic(ctx, adm, StateTopic(ns), 2); err != nil {
		t.Fatal(err)
	}
	prod := txnProducer(t, seeds, txnID)
	data := &connector.Record{Key: []byte("d"), Value: []byte("out"), EventID: "e", Topic: out}
	// in/0, in/2 and in/10 share state partition 0 with other/0; in/1
	// is in partition 1.
	produceTxn(ctx, t, prod, true, data,
		stateRec(ns, "in", 0, "a", []byte("a1")),
		stateRec(ns, "in", 0, "b", []byte("b1")),
		stateRec(ns, "in", 0, "e", []byte{}),
		stateRec(ns, "in", 2, "a", []byte("in2")),
		stateRec(ns, "in", 10, "a", []byte("in10")),
		stateRec(ns, "other", 0, "a", []byte("other")),
		stateRec(ns, "in", 1, "a", []byte("in1")),
	)
	produceTxn(ctx, t, prod, false, data,
		stateRec(ns, "in", 0, "a", []byte("aborted")),
		stateRec(ns, "in", 0, "c", []byte("aborted")),
		stateRec(ns, "in", 0, "b", nil),
		stateRec(ns, "in", 2, "a", nil),
	)
	produceTxn(ctx, t, prod, true, data,
		stateRec(ns, "in", 0, "b", nil),
		stateRec(ns, "in", 0, "a", []byte("a2")),
		stateRec(ns, "in", 0, "d", []byte("d1")),
		stateRec(ns, "in", 0, "d", nil),
		stateRec(ns, "in", 0, "nokey", nil),
	)
	recs := readAll(ctx, t, seeds, StateTopic(ns))
	if last := recs[len(recs)-1]; !last.Attrs.IsControl() {
		t.Fatalf("the state topic ends in record %q at %d, want a transaction marker: the test would not show that LoadState stops on one", last.Key, last.Offset)
	}

	store, err := NewStateStore([]kgo.Opt{kgo.SeedBrokers(seeds...)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, tt := range []struct {
		topic     string
		partition int32
		want      map[string][]byte
	}{
		{"in", 0, map[string][]byte{"a": []byte("a2"), "e": {}}},
		{"in", 1, map[string][]byte{"a": []byte("in1")}},
		{"in", 2, map[string][]byte{"a": []byte("in2")}},
		{"in", 10, map[string][]byte{"a": []byte("in10")}},
		{"other", 0, map[string][]byte{"a": []byte("other")}},
		{"in", 4, map[string][]byte{}},
		{"in", 3, map[string][]byte{}},
	} {
		got, err := store.LoadState(ctx, ns, connector.TopicPartition{Topic: tt.topic, Partition: tt.partition})
		if err != nil {
			t.Fatalf("LoadState(%s/%d): %v", tt.topic, tt.partition, err)
		}
		if !maps.EqualFunc(got, tt.want, func(a, b []byte) bool { return string(a) == string(b) && (a == nil) == (b == nil) }) {
			t.Errorf("LoadState(%s/%d) = %q, want %q", tt.topic, tt.partition, got, tt.want)
		}
	}
	if _, err := store.LoadState(ctx, ns+"-nobody", connector.TopicPartition{Topic: "in"}); err == nil || !strings.Contains(err.Error(), ns+"-nobody-state") {
		t.Errorf("LoadState of a namespace without state topic: %v, want an error naming the topic", err)
	}
}

// A transaction open when LoadState begins (another input partition's,
// sharing the state partition) holds the last stable offset below state
// this input partition committed after it began: LoadState waits for it to
// end instead of stopping there and missing that state.
func TestLoadStateWaitsForOpenTransaction(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(map[bool]string{true: "other commits", false: "other aborts"}[commit], func(t *testing.T) {
			c := newCluster(t, "out")
			testLoadStateWaits(t, c.ListenAddrs(), "conn", "out", "tx", commit)
		})
	}
}

// firstFetch closes its channel when its client first writes a fetch
// request.
type firstFetch struct {
	once sync.Once
	ch   chan struct{}
}

func (f *firstFetch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == int16(kmsg.Fetch) {
		f.once.Do(func() { close(f.ch) })
	}
}

// testLoadStateWaits is TestLoadStateWaitsForOpenTransaction on the
// cluster at seeds, with namespace ns (whose state topic it creates), the
// existing output topic out and transactional IDs starting with txnID; the
// open transaction ends in a commit or an abort.
func testLoadStateWaits(t *testing.T, seeds []string, ns, out, txnID string, commit bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, seeds))
	if _, err := EnsureStateTopic(ctx, adm, StateTopic(ns), 1); err != nil {
		t.Fatal(err)
	}
	a, b := txnProducer(t, seeds, txnID+"-a"), txnProducer(t, seeds, txnID+"-b")
	produceTxn(ctx, t, a, true, stateRec(ns, "in", 0, "k", []byte("v1")))
	// b's transaction opens, then a commits behind it.
	if err := b.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var conv Converter
	if err := b.ProduceSync(ctx, conv.Convert(stateRec(ns, "in", 1, "k", []byte("b")), out)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceTxn(ctx, t, a, true, stateRec(ns, "in", 0, "k", []byte("v2")))

	fetching := &firstFetch{ch: make(chan struct{})}
	store, err := NewStateStore([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.WithHooks(fetching)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	type result struct {
		state map[string][]byte
		err   error
	}
	done := make(chan result, 1)
	go func() {
		s, err := store.LoadState(ctx, ns, connector.TopicPartition{Topic: "in", Partition: 0})
		done <- result{s, err}
	}()
	var res result
	select {
	case <-fetching.ch:
		// LoadState has listed its end and reads: end b's transaction.
		if err := b.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		res = <-done
	case res = <-done:
		t.Errorf("LoadState returned before reading while a transaction was open")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := string(res.state["k"]); got != "v2" || len(res.state) != 1 {
		t.Errorf("LoadState = %q, want k=v2 (committed behind the open transaction)", res.state)
	}
}

// BenchmarkStateFold folds one state record per op into a partition's
// state, a third of them another input partition's (skipped) and a tenth
// tombstones: the allocations per op are the map's (a key string per new
// key, its growth), the values going into shared slabs.
func BenchmarkStateFold(b *testing.B) {
	const n = 1 << 16
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range n {
		switch {
		case i%3 == 2:
			keys[i] = fmt.Appendf(nil, "in/10/w/1700000000000/key-%d", i)
		default:
			keys[i] = fmt.Appendf(nil, "in/0/w/1700000000000/key-%d", i%(n/2))
		}
		if i%10 != 9 {
			values[i] = fmt.Appendf(nil, `{"count":%d,"sum":%d.25}`, i%1000, i)
		}
	}
	b.ReportAllocs()
	var f stateFold
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			f = stateFold{prefix: []byte("in/0/"), state: map[string][]byte{}}
		}
		f.apply(keys[i%n], values[i%n])
	}
}
