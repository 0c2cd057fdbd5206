package process_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/test/testenv"
)

// deleteStateTopicAtEnd deletes the compacted state topic the connector
// creates (sinkkafka.StateTopic of its group) when the test ends, after its processes have
// stopped: testenv deletes only the topics it made, and the shared broker
// kept every run's.
func (p *pipe) deleteStateTopicAtEnd() {
	state := sinkkafka.StateTopic(p.group)
	p.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := p.adm.DeleteTopics(ctx, state)
		if err == nil {
			err = resp.Error()
		}
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			p.t.Errorf("delete the state topic %s: %v", state, err)
		}
	})
}

// keepForever sets retention.ms=-1 on topics and waits until the broker
// describes it. A window result carries its window's end as its
// timestamp, and the windows here are in January 1970 (event time
// value.i*windowTick ms): under the broker's default 7-day time retention,
// its periodic check (every 5 minutes) deletes every closed segment of
// such a topic. A check that fell between the first segment roll and the
// read took 28,158 windows out of TestWindowedRebalance/kafka's output in
// a CI run (the broker's log: "Deleting segment ... due to log retention
// time 604800000ms breach", log start offsets raised on all 6 partitions).
func (p *pipe) keepForever(topics ...string) {
	p.t.Helper()
	forever := "-1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := p.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &forever}}, topics...)
	if err == nil {
		for _, r := range resps {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		p.t.Fatalf("retention.ms=-1 on %v: %v", topics, err)
	}
	// The controller has the change; the broker applies it from the
	// metadata log, asynchronously.
	waitFor(p.t, 30*time.Second, fmt.Sprintf("the broker to describe %v with retention.ms=-1", topics), func() bool {
		rcs, err := p.adm.DescribeTopicConfigs(ctx, topics...)
		if err != nil || len(rcs) != len(topics) {
			return false
		}
		for _, rc := range rcs {
			kept := false
			for _, c := range rc.Configs {
				kept = kept || c.Key == "retention.ms" && c.MaybeValue() == forever
			}
			if rc.Err != nil || !kept {
				return false
			}
		}
		return true
	})
}

// readCommitted calls fn with every committed data record of topic, read
// with read_committed once the writers have stopped, and fails the test
// if it cannot (see readCommittedLog).
func readCommitted(t *testing.T, p *pipe, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit(t, 3*time.Minute))
	defer cancel()
	if err := readCommittedLog(ctx, p.brokers, p.adm, topic, fn); err != nil {
		t.Fatal(err)
	}
}

// readCommittedLog reads topic from offset 0 to its end. Its writers have
// stopped, but a transaction they left open (a SIGKILLed producer's, until
// the broker times it out or its transactional ID is initialised again)
// holds the last stable offset below the high watermark, and a commit the
// coordinator has decided may not have its markers written yet; so it
// waits until the two meet on every partition, then reads until each
// partition's position reaches that end. Control records are kept (and not
// passed to fn) so that a partition ending in a commit or abort marker,
// which has no data record, is seen to reach its end. It returns an error
// naming the partitions and producers if a transaction stays open, if the
// read does not reach the end before ctx is done, and if the log does not
// start at offset 0 before and after the read (the broker deleted records:
// what was read is not the whole output).
func readCommittedLog(ctx context.Context, brokers []string, adm *kadm.Client, topic string, fn func(*kgo.Record)) error {
	var ends, lastHW, lastLSO map[int32]int64
	for {
		hw, lso, err := endOffsets(ctx, adm, topic)
		if err == nil {
			if len(hw) > 0 && equalOffsets(hw, lso) {
				ends = hw
				break
			}
			lastHW, lastLSO = hw, lso
		}
		if ctx.Err() != nil {
			if lastHW == nil {
				return fmt.Errorf("reading %s: end offsets: %v", topic, err)
			}
			return fmt.Errorf("reading %s: a transaction stayed open: high watermarks %v, last stable offsets %v; producers: %s",
				topic, lastHW, lastLSO, producers(adm, topic))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := startsAtZero(ctx, adm, topic); err != nil {
		return err
	}
	parts := map[int32]kgo.Offset{}
	next := map[int32]int64{}
	for part, end := range ends {
		if end > 0 {
			parts[part] = kgo.NewOffset().At(0)
			next[part] = 0
		}
	}
	if len(parts) > 0 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
		if err != nil {
			return err
		}
		defer cl.Close()
		for !reached(next, ends) {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return fmt.Errorf("reading %s: positions %v short of the ends %v: %v", topic, next, ends, ctx.Err())
			}
			if err := fs.Err(); err != nil {
				return fmt.Errorf("reading %s at %v: %v", topic, next, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				next[r.Partition] = r.Offset + 1
				if !r.Attrs.IsControl() {
					fn(r)
				}
			})
		}
	}
	return startsAtZero(ctx, adm, topic)
}

// endOffsets lists topic's high watermarks and last stable offsets.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (hw, lso map[int32]int64, err error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		los, err := f(ctx, topic)
		if err != nil {
			return nil, err
		}
		m := map[int32]int64{}
		los.Each(func(lo kadm.ListedOffset) {
			if lo.Err != nil {
				err = errors.Join(err, fmt.Errorf("partition %d: %w", lo.Partition, lo.Err))
			}
			m[lo.Partition] = lo.Offset
		})
		return m, err
	}
	if hw, err = list(adm.ListEndOffsets); err != nil {
		return nil, nil, err
	}
	lso, err = list(adm.ListCommittedOffsets)
	return hw, lso, err
}

func equalOffsets(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for part, o := range a {
		if b[part] != o {
			return false
		}
	}
	return true
}

func reached(next, ends map[int32]int64) bool {
	for part, o := range next {
		if o < ends[part] {
			return false
		}
	}
	return true
}

// startsAtZero fails unless every partition of topic still starts at
// offset 0: the tests' topics are new, so anything else is records the
// broker deleted (retention, see keepForever).
func startsAtZero(ctx context.Context, adm *kadm.Client, topic string) error {
	los, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("reading %s: start offsets: %v", topic, err)
	}
	var moved []string
	los.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil || lo.Offset != 0 {
			moved = append(moved, fmt.Sprintf("partition %d at %d (%v)", lo.Partition, lo.Offset, lo.Err))
		}
	})
	if len(moved) > 0 {
		slices.Sort(moved)
		return fmt.Errorf("reading %s: the log no longer starts at offset 0, the broker deleted records (retention?): %s", topic, strings.Join(moved, ", "))
	}
	return nil
}

// producers describes the producers of topic's partitions with a
// transaction open, for an error message.
func producers(adm *kadm.Client, topic string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: nil})
	if err != nil {
		return err.Error()
	}
	var open []string
	for _, d := range ds.SortedProducers() {
		if d.CurrentTxnStartOffset >= 0 {
			open = append(open, fmt.Sprintf("partition %d: producer %d epoch %d, transaction from offset %d", d.Partition, d.ProducerID, d.ProducerEpoch, d.CurrentTxnStartOffset))
		}
	}
	if len(open) == 0 {
		return "none with a transaction open"
	}
	return strings.Join(open, "; ")
}

// TestReadCommittedLog: the reader of the tests' output topics reads every
// committed record of a topic whose partitions end in a commit marker and
// in an aborted transaction (no data record at the end of either), reports
// a transaction left open instead of reading short of it, and reports
// records deleted from the start of the log.
func TestReadCommittedLog(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	txnProducer := func(label string) *kgo.Client {
		return testenv.KafkaClient(t, p.brokers, kgo.TransactionalID(p.instanceID(label)),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(p.out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit(t, 2*time.Minute))
	defer cancel()
	begin := func(cl *kgo.Client) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	// produce writes value to each of parts in cl's open transaction.
	produce := func(cl *kgo.Client, value string, parts ...int32) {
		t.Helper()
		for _, part := range parts {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := func(cl *kgo.Client, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	read := func(within time.Duration) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		n := 0
		err := readCommittedLog(ctx, p.brokers, p.adm, p.out, func(r *kgo.Record) {
			if r.Partition > 1 || r.Value[0] == 'x' {
				t.Errorf("read %q from partition %d", r.Value, r.Partition)
			}
			n++
		})
		return n, err
	}

	a := txnProducer("ra")
	begin(a)
	for i := range 10 {
		produce(a, fmt.Sprint(i), 0, 1)
	}
	end(a, kgo.TryCommit) // partition 1 ends in this commit marker
	begin(a)
	produce(a, "x", 0)
	end(a, kgo.TryAbort) // partition 0 in an aborted transaction
	if n, err := read(time.Minute); err != nil || n != 20 {
		t.Fatalf("read %d records (%v), want the 20 committed", n, err)
	}

	b := txnProducer("rb")
	begin(b)
	produce(b, "x", 1) // and left open
	n, err := read(3 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "transaction stayed open") || !strings.Contains(err.Error(), "partition 1: producer") {
		t.Fatalf("read %d records with a transaction open on partition 1: %v, want an error naming it", n, err)
	}
	t.Log(err)
	end(b, kgo.TryAbort)
	if n, err := read(time.Minute); err != nil || n != 20 {
		t.Fatalf("read %d records (%v) once the open transaction aborted, want 20", n, err)
	}

	if _, err := p.adm.DeleteRecords(ctx, kadm.Offsets{p.out: {0: {Topic: p.out, Partition: 0, At: 5}}}); err != nil {
		t.Fatal(err)
	}
	n, err = read(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "partition 0 at 5") {
		t.Fatalf("read %d records from a log whose first 5 records were deleted: %v, want an error naming partition 0", n, err)
	}
	t.Log(err)
}
