package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// KafkaAtLeastOnce writes a batch to Kafka with an idempotent producer (acks=all)
// and, once every record is acknowledged, stores the checkpoint: in the
// consumer group for a Kafka source, or in the offsets topic otherwise.
//
//   - Nothing is atomic: a failure after some records were acknowledged and
//     before the checkpoint was stored makes the batch be read and written
//     again. Those are the duplicates at-least-once allows, and what the
//     benchmark and fault suites count.
//   - Nothing is lost: the checkpoint is stored only after every record of
//     the batch was acknowledged.
//   - A stop while a join is in flight (GroupRebalance, group checkpoints
//     only): the connector does not commit the offsets; the records already
//     acknowledged are written again by the partitions' next owner.
type KafkaAtLeastOnce struct {
	opts  []kgo.Opt
	out   batchProducer
	store *OffsetsTopic // nil: the checkpoint is the consumer group's offsets
	log   *slog.Logger
	cl    *kgo.Client
	watch *rebalanceWatch // the client's group; nil with store
}

// NewKafkaAtLeastOnce returns the protocol. With store nil, opts must include the
// source's consumer-group options: one client consumes and produces.
func NewKafkaAtLeastOnce(opts []kgo.Opt, topic string, store *OffsetsTopic, log *slog.Logger) *KafkaAtLeastOnce {
	return &KafkaAtLeastOnce{opts: opts, out: batchProducer{topic: topic}, store: store, log: log}
}

var (
	_ connector.Protocol       = (*KafkaAtLeastOnce)(nil)
	_ connector.GroupCommitter = (*KafkaAtLeastOnce)(nil)
)

// Client is the protocol's client, for a Kafka source to poll.
func (a *KafkaAtLeastOnce) Client() *kgo.Client { return a.cl }

// Begin starts collecting produce results, and the batch's output
// producer on ctx (the connector's write context).
func (a *KafkaAtLeastOnce) Begin(ctx context.Context) error {
	a.out.stopAsync()
	a.out.begin(a.cl)
	a.out.startAsync(ctx, a.cl.Produce)
	return nil
}

// Write queues recs to be produced off the connector's loop
// (outputProducer).
func (a *KafkaAtLeastOnce) Write(ctx context.Context, recs []*connector.Record) error {
	return a.out.queue(ctx, recs)
}

// Commit waits for every record, then stores cp.
func (a *KafkaAtLeastOnce) Commit(ctx context.Context, cp connector.Checkpoint) error {
	// Every queued record handed to the client before wait flushes; the
	// batch's context is released when Commit returns.
	defer a.out.drainAsync(ctx)()
	if err := a.out.wait(ctx); err != nil {
		return connector.NewCommitError(connector.Abortable, "produce", err)
	}
	if a.store != nil {
		return a.storeInTopic(ctx, cp)
	}
	return a.commitGroup(ctx, cp)
}

func (a *KafkaAtLeastOnce) storeInTopic(ctx context.Context, cp connector.Checkpoint) error {
	if err := a.cl.ProduceSync(ctx, a.store.Records(cp)...).FirstErr(); err != nil {
		return connector.NewCommitError(connector.Abortable, "store checkpoint", err)
	}
	return nil
}

func (a *KafkaAtLeastOnce) commitGroup(ctx context.Context, cp connector.Checkpoint) error {
	if err := commitGroupSync(ctx, a.cl, cp); err != nil {
		return connector.NewCommitError(connector.Abortable, "commit offsets", err)
	}
	return nil
}

// commitGroupSync commits cp as cl's group offsets and returns the
// request's error, else every refused partition's (offsetCommitErr).
func commitGroupSync(ctx context.Context, cl *kgo.Client, cp connector.Checkpoint) error {
	var commitErr error
	cl.CommitOffsetsSync(ctx, groupOffsets(cp), func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = offsetCommitErr(resp, err)
	})
	return commitErr
}

// offsetCommitErr is an offset commit's outcome as one error: the
// request's own error, else every partition the broker refused, each
// named (nil if it took them all).
func offsetCommitErr(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil || resp == nil {
		return err
	}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
			}
		}
	}
	return errors.Join(errs...)
}

// GroupRebalance implements connector.GroupCommitter: franz-go holds the
// group offsets commit while this member's join and sync are in flight.
func (a *KafkaAtLeastOnce) GroupRebalance() <-chan struct{} {
	return a.watch.inJoin()
}

// Abort drops buffered records; acknowledged ones stay written.
func (a *KafkaAtLeastOnce) Abort(ctx context.Context) error {
	a.out.stopAsync()
	return a.cl.AbortBufferedRecords(ctx)
}

// Recover creates the client on first use, then returns the last stored
// checkpoint (the coordinator seeks the source there). With the
// checkpoint in the consumer group it returns nil, and a
// failure replaces the client: the new member fetches the committed offsets
// from the coordinator, the store of truth, and partitions never committed
// restart at the reset offset. (Rewinding the old client in place would need
// the start position of never-committed partitions, which kgo does not
// expose; getting it wrong would skip the failed batch, i.e. lose it.)
func (a *KafkaAtLeastOnce) Recover(ctx context.Context, cause error) (connector.Checkpoint, error) {
	a.out.stopAsync()
	if a.cl != nil && cause != nil && a.store == nil {
		a.log.Info("replacing the consumer to rewind to the committed offsets", "cause", cause)
		a.cl.CloseAllowingRebalance()
		a.cl = nil
	}
	if a.cl == nil {
		opts, w := a.opts, (*rebalanceWatch)(nil)
		if a.store == nil {
			w = newRebalanceWatch(a.log)
			opts = slices.Concat(opts, w.opts())
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, connector.NewCommitError(connector.Fatal, "new client", err)
		}
		a.cl, a.watch = cl, w
	}
	if a.store == nil {
		return nil, nil // the new member fetches the group's offsets
	}
	return a.store.checkpoint(ctx)
}

// Close flushes nothing further and closes the client (leaving the group).
func (a *KafkaAtLeastOnce) Close() {
	a.out.stopAsync()
	if a.cl != nil {
		closeGroupClient(a.cl, a.log)
		a.cl = nil
	}
}

// groupOffsets is cp in the shape kgo commits.
func groupOffsets(cp connector.Checkpoint) map[string]map[int32]kgo.EpochOffset {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for tp, next := range cp {
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
	}
	return offsets
}
