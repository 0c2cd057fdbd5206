package batch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
)

// The input: events records (e2e.InputRecords: key k-(i%97), value
// {"i":i,"amount":i%1000}, event ID in-i) on a topic of partitions
// partitions, then one sentinel per partition. Record i has event time
// eventBase + i*tickMs (eventTimeBase), so each partition's event times
// rise with its offsets and no record is late.
const (
	events     = 100_000
	partitions = 6
	tickMs     = 10
	windowMs   = 5_000
	// sentinelI is the sentinels' i: their event time, a minute past the
	// last event's, is past every event's window, so the stream's
	// watermark closes all of those windows, as the end of a bounded run
	// does.
	sentinelI = events + 60_000/tickMs
	// sentinelKeyPrefix starts the sentinels' keys, end-p<partition>.
	sentinelKeyPrefix = "end-p"
)

// produceInput writes the input (acknowledged, idempotent producer) and
// returns the end offset of every partition: where both runs end.
func produceInput(t *testing.T, brokers []string, topic string) connector.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := testenv.KafkaClient(t, brokers, kgo.DefaultProduceTopic(topic), kgo.UnknownTopicRetries(-1))
	if err := cl.ProduceSync(ctx, e2e.InputRecords(0, events)...).FirstErr(); err != nil {
		t.Fatalf("produce the input: %v", err)
	}
	// Each sentinel goes to the partition its key names: a producer of
	// its own partitions them by hand.
	manual := testenv.KafkaClient(t, brokers, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var sentinels []*kgo.Record
	for p := range partitions {
		id := fmt.Sprintf("%s%d", sentinelKeyPrefix, p)
		sentinels = append(sentinels, &kgo.Record{Key: []byte(id), Value: fmt.Appendf(nil, `{"i":%d,"amount":0}`, sentinelI),
			Partition: int32(p), Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}})
	}
	if err := manual.ProduceSync(ctx, sentinels...).FirstErr(); err != nil {
		t.Fatalf("produce the sentinels: %v", err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	stops := connector.Checkpoint{}
	ends.Each(func(o kadm.ListedOffset) {
		stops[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	var total int64
	for _, o := range stops {
		total += o
	}
	if len(stops) != partitions || total != events+partitions {
		t.Fatalf("input %s: end offsets %v, want %d partitions holding %d records", topic, stops, partitions, events+partitions)
	}
	return stops
}

// eventTimeBase is the event time of record 0: half an hour ago, on a
// window boundary. A window's result is stamped with the window's end,
// and Kafka deletes a segment whose newest timestamp is older than
// retention.ms (7 days by default) at its next retention check: results
// stamped in 1970 (event times i*tickMs) vanished from the output topic
// while the test ran. Nor may a timestamp lie more than an hour ahead
// (log.message.timestamp.after.max.ms, Kafka 4's default), so the
// sentinels' windows end in the past too.
func eventTimeBase() int64 {
	return time.Now().Add(-30*time.Minute).UnixMilli() / windowMs * windowMs
}

// inputWindows is the number of (key, window) pairs of the events: the
// windows the stream emits, all closed by the sentinels.
func inputWindows() int {
	seen := map[[2]int]bool{}
	for i := range events {
		seen[[2]int{i % 97, i * tickMs / windowMs}] = true
	}
	return len(seen)
}

// isSentinel reports whether a record key is a sentinel's.
func isSentinel(key string) bool { return strings.HasPrefix(key, sentinelKeyPrefix) }
