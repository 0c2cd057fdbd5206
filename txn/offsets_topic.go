package txn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// LoadTimeout bounds one reading of the offsets topic to its end.
const LoadTimeout = 90 * time.Second

// DefaultOffsetsTopic is the compacted topic where connectors whose source
// is not a Kafka consumer group keep their checkpoints (as Kafka Connect's
// offset.storage.topic does for source connectors).
const DefaultOffsetsTopic = "_connectd-offsets"

// OffsetsTopic stores checkpoints as records in a compacted topic: key
// ["<connector>",{"topic":T,"partition":P}], value {"offset":N}. The latest
// committed record per key is the checkpoint. Written inside a Kafka
// transaction, a checkpoint record is atomic with the batch's output.
type OffsetsTopic struct {
	Topic     string
	Connector string
	Brokers   []string
	// Opts are extra client options (e.g. for tests); may be nil.
	Opts []kgo.Opt
}

type offsetsKeyPart struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type offsetsValue struct {
	Offset int64 `json:"offset"`
}

// Records returns the records that store cp.
func (o *OffsetsTopic) Records(cp connector.Checkpoint) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(cp))
	for _, tp := range cp.Partitions() {
		key, _ := json.Marshal([]any{o.Connector, offsetsKeyPart{tp.Topic, tp.Partition}})
		val, _ := json.Marshal(offsetsValue{cp[tp]})
		recs = append(recs, &kgo.Record{Topic: o.Topic, Key: key, Value: val})
	}
	return recs
}

// Ensure creates the compacted topic if it does not exist.
func (o *OffsetsTopic) Ensure(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.Opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, o.Topic)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return nil
	}
	return err
}

// Load reads the topic with read_committed from its start to the high
// watermark seen when it starts, and returns this connector's checkpoint.
// Records of aborted transactions are never seen, so a checkpoint whose
// batch aborted is never loaded. Control records are kept so that reading
// can tell it reached the end even when the log ends in a transaction
// marker.
//
// Reading knows it reached the end when it sees a record at or past that
// high watermark minus one. A read_committed fetch stops at the last stable
// offset, so every transaction open at the start (another instance's
// included) must end first: at the latest at its transaction.timeout. That
// wait is the point: a record committed after an open transaction's first
// offset is invisible until that transaction ends, and stopping earlier
// would read a committed checkpoint or decision as absent. Load never
// returns a checkpoint it has not read to the end; it gives up after
// LoadTimeout and the caller retries.
func (o *OffsetsTopic) Load(ctx context.Context) (connector.Checkpoint, error) {
	cp := connector.Checkpoint{}
	if err := o.scan(ctx, func(r *kgo.Record) { o.apply(cp, r) }); err != nil {
		return nil, err
	}
	return cp, nil
}

// checkpoint is what a protocol's Recover returns for a checkpoint in the
// offsets topic: the topic created if missing, then Load. Both failures
// are abortable: the connector retries the recovery, nothing was written.
// A checkpoint never written is empty, not nil: the source still seeks
// (every partition from its start).
func (o *OffsetsTopic) checkpoint(ctx context.Context) (connector.Checkpoint, error) {
	if err := o.Ensure(ctx); err != nil {
		return nil, connector.NewCommitError(connector.Abortable, "create offsets topic", err)
	}
	cp, err := o.Load(ctx)
	if err != nil {
		return nil, connector.NewCommitError(connector.Abortable, "load checkpoint", err)
	}
	return cp, nil
}

// scan reads the topic with read_committed from its start to its last
// stable offset (see Load), calling fn with every committed data record in
// order.
func (o *OffsetsTopic) scan(ctx context.Context, fn func(*kgo.Record)) error {
	ctx, cancel := context.WithTimeout(ctx, LoadTimeout)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	}, o.Opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Read to the high watermark, not to the last stable offset: a
	// transaction still open when we start (another instance's, writing
	// its own decision or checkpoint) holds the last stable offset below
	// records already committed after it. Stopping there would miss them:
	// a committed two-phase decision read as absent rolls back a batch
	// the Kafka side committed. Reading to the high watermark waits for
	// every transaction open at the start to end.
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, o.Topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil // nothing was ever committed
	}
	if err != nil {
		return fmt.Errorf("offsets topic %s: list end offsets: %w", o.Topic, err)
	}
	remaining := map[int32]int64{} // partition -> end offset still to reach
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Offset > 0 {
			remaining[lo.Partition] = lo.Offset
		}
	})
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("offsets topic %s: reading to the end: %w", o.Topic, err)
		}
		for _, fe := range fetches.Errors() {
			return fmt.Errorf("offsets topic %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if end, ok := remaining[r.Partition]; ok && r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}

// apply folds one offsets record into cp if it belongs to this connector.
// Records of other connectors and malformed records are skipped: the topic
// is shared and only our own keys are our business.
func (o *OffsetsTopic) apply(cp connector.Checkpoint, r *kgo.Record) {
	var key []json.RawMessage
	if json.Unmarshal(r.Key, &key) != nil || len(key) != 2 {
		return
	}
	var name string
	if json.Unmarshal(key[0], &name) != nil || name != o.Connector {
		return
	}
	var part offsetsKeyPart
	if json.Unmarshal(key[1], &part) != nil {
		return
	}
	tp := connector.TopicPartition{Topic: part.Topic, Partition: part.Partition}
	if r.Value == nil { // a tombstone resets the partition
		delete(cp, tp)
		return
	}
	var v offsetsValue
	if json.Unmarshal(r.Value, &v) == nil {
		cp[tp] = v.Offset
	}
}
