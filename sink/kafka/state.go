package kafka

import (
	"context"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// StateTopicSuffix ends the name of every state topic (see StateTopic).
const StateTopicSuffix = "-state"

// StateTopic is the compacted topic that holds the state records of
// namespace ns (a connector.StateRecord's Topic).
func StateTopic(ns string) string { return ns + StateTopicSuffix }

// A state record of input partition (T, P) with state key K is produced
// with the Kafka key "T/P/K": Kafka topic names cannot contain '/', so the
// prefix "T/P/" names exactly one input partition, and the state of the
// input partitions that share a state partition can be told apart.
func appendStateKey(dst []byte, o connector.Origin, key []byte) []byte {
	dst = appendStatePrefix(dst, o.Topic, o.Partition)
	return append(dst, key...)
}

func appendStatePrefix(dst []byte, topic string, partition int32) []byte {
	dst = append(dst, topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(partition), 10)
	return append(dst, '/')
}

// stateKeyBytes bounds the bytes of a state record's Kafka key.
func stateKeyBytes(r *connector.Record) int {
	return len(r.Origin.Topic) + len(r.Key) + 13 // two slashes, at most 11 digits and a sign
}

// stateRecordMark is the Context of every state record the sink produces:
// the state partitioner (Partitioner) recognises state records by it. The
// producer's cancellation still comes from the context passed to Produce
// (franz-go only adds a record's own context when it can be cancelled,
// which this one cannot).
var stateRecordMark = context.WithValue(context.Background(), stateRecordKey{}, true)

type stateRecordKey struct{}

// fillState makes out the record to produce for state record r: topic
// StateTopic(r.Topic) (given as topic, so a Converter can reuse the
// string), key in buf (which has room for stateKeyBytes(r)), r's value
// (nil stays nil: a tombstone) and, for the partitioner, the input
// partition in Partition. It returns the bytes of buf it used.
//
// An empty namespace leaves the topic empty, which the producer refuses:
// the batch fails instead of writing state where no one reads it.
func (out *outRecord) fillState(r *connector.Record, topic string, buf []byte) int {
	if r.Topic == "" {
		topic = ""
	}
	buf = appendStateKey(buf, r.Origin, r.Key)
	out.record = kgo.Record{
		Topic:     topic,
		Key:       buf[:len(buf):len(buf)],
		Value:     r.Value,
		Timestamp: r.Timestamp,
		Partition: r.Origin.Partition,
		Context:   stateRecordMark,
	}
	return len(buf)
}

// stateTopic returns StateTopic(ns), reusing the last one built: every
// state record of a connector has the same namespace, and building the
// name per record would cost an allocation each.
func (c *Converter) stateTopic(ns string) string {
	if ns != c.stateNS || c.stateName == "" {
		c.stateNS, c.stateName = ns, StateTopic(ns)
	}
	return c.stateName
}

// Partitioner returns the record partitioner of every producer that may
// write state records: a state record goes to partition
// Origin.Partition mod n of its state topic (n = that topic's partition
// count, from the producer's metadata), so all the state of one input
// partition is in one state partition and StateStore reads only that one.
// Every other record is partitioned by base, unchanged: base's partitioner
// is used as is for every topic whose name does not end in
// StateTopicSuffix, and for records of such a topic that are not state
// records. A nil base is franz-go's default partitioner
// (kgo.UniformBytesPartitioner(64 KiB, adaptive, keys hashed, murmur2)),
// which is also what a producer without this option uses.
//
// The state topic's partition count must not change once state is
// written: the state of an input partition would then be looked for in
// another partition.
func Partitioner(base kgo.Partitioner) kgo.Partitioner {
	if base == nil {
		base = kgo.UniformBytesPartitioner(64<<10, true, true, nil)
	}
	return statePartitioner{base}
}

type statePartitioner struct{ base kgo.Partitioner }

func (p statePartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	base := p.base.ForTopic(topic)
	if !strings.HasSuffix(topic, StateTopicSuffix) {
		return base
	}
	return stateTopicPartitioner{base}
}

// stateTopicPartitioner partitions the records of one state topic. It
// implements kgo's optional partitioner interfaces and forwards them to
// base (franz-go's default partitioner only works through
// PartitionByBackup), so a record that is not a state record is
// partitioned exactly as base would.
type stateTopicPartitioner struct{ base kgo.TopicPartitioner }

var (
	_ kgo.TopicBackupPartitioner     = stateTopicPartitioner{}
	_ kgo.TopicPartitionerOnNewBatch = stateTopicPartitioner{}
)

func isStateRecord(r *kgo.Record) bool { return r.Context == stateRecordMark }

// RequiresConsistency is true for state records: the partition must be the
// one StateStore reads, even while it is unavailable (the produce then
// fails, and so does the batch). With it true, n counts every partition
// and index i is partition i.
func (p stateTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return isStateRecord(r) || p.base.RequiresConsistency(r)
}

// Partition returns, for a state record, its input partition mod n.
func (p stateTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if isStateRecord(r) {
		return statePartition(r.Partition, n)
	}
	return p.base.Partition(r, n)
}

// PartitionByBackup is Partition for producers that prefer it (all of
// them, when base implements it).
func (p stateTopicPartitioner) PartitionByBackup(r *kgo.Record, n int, backup kgo.TopicBackupIter) int {
	if isStateRecord(r) {
		return statePartition(r.Partition, n)
	}
	if b, ok := p.base.(kgo.TopicBackupPartitioner); ok {
		return b.PartitionByBackup(r, n, backup)
	}
	return p.base.Partition(r, n)
}

// OnNewBatch tells base that a new batch starts.
func (p stateTopicPartitioner) OnNewBatch() {
	if b, ok := p.base.(kgo.TopicPartitionerOnNewBatch); ok {
		b.OnNewBatch()
	}
}

// statePartition is the state partition of input partition p among n.
func statePartition(p int32, n int) int {
	i := int(p) % n
	if i < 0 {
		i += n
	}
	return i
}
