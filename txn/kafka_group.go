package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// KafkaGroupTxn is the Kafka → Kafka exactly-once protocol (consume-
// transform-produce). One kgo.GroupTransactSession consumes the input with
// read_committed and produces the output in a transaction; End commits the
// consumed offsets inside that transaction with the group's generation
// (KIP-447), so output and checkpoint are one atomic unit.
//
//   - Atomic: every output record of the batch and the group offsets after
//     the batch. Consumers of the output with read_committed see all or none.
//   - Abort: any produce error (AbortingFirstErrPromise), a revoked or lost
//     partition during the batch, or a failed offset commit makes End abort;
//     the session then rewinds the consumer to the committed offsets and the
//     batch is re-read, never retried from memory.
//   - Fencing: ProducerFenced / InvalidProducerEpoch mean a newer producer
//     with our transactional ID exists; a stale group generation makes the
//     offset commit fail. Either way nothing of the batch becomes visible;
//     Recover closes the session and joins again with a new one.
//   - Unknown outcome (an EndTxn that timed out): never assumed. Recover
//     closes the session and starts a new one; its InitProducerID bumps the
//     epoch, which completes or aborts the old transaction on the broker,
//     and the new consumer resumes from the committed offsets (fetched with
//     RequireStable, so a pending transaction is waited for), which say
//     whether the batch committed.
//   - Rebalances: a batch open when the group starts a rebalance holds it
//     back (BlockRebalanceOnPoll) and commits with KIP-447 despite it (see
//     Commit); the rebalance proceeds after the commit. A batch that meets
//     this member's JoinGroup in flight (GroupRebalance) waits for the join
//     and sync to complete before it commits, with the new generation;
//     End aborts if the session saw a partition of the batch revoked, and
//     a commit that wins that race is still safe (KIP-447: the next
//     owner's offset fetch waits for our transaction to end). A stop
//     during such a join aborts the batch: Abort only ends the transaction
//     (EndTxn) and waits for no other member; nothing of the batch is
//     visible and the partitions' next owner reads it again from the
//     committed offsets. Close leaves without waiting for the rebalance
//     either (closeUnblockingJoin).
type KafkaGroupTxn struct {
	opts     []kgo.Opt
	out      batchProducer
	log      *slog.Logger
	sess     atomic.Pointer[kgo.GroupTransactSession]
	watch    atomic.Pointer[rebalanceWatch] // the current session's
	onFenced func()
}

// NewKafkaGroupTxn returns the protocol. opts must include the consumer
// options of the source, a transactional ID unique to this instance, and
// the transaction timeout; topic is the sink's default output topic.
func NewKafkaGroupTxn(opts []kgo.Opt, topic string, log *slog.Logger, onFenced func()) *KafkaGroupTxn {
	if onFenced == nil {
		onFenced = func() {}
	}
	return &KafkaGroupTxn{opts: opts, out: batchProducer{topic: topic}, log: log, onFenced: onFenced}
}

var (
	_ connector.Protocol       = (*KafkaGroupTxn)(nil)
	_ connector.GroupCommitter = (*KafkaGroupTxn)(nil)
)

// Client is the current session's client, for the source to poll.
func (k *KafkaGroupTxn) Client() *kgo.Client {
	if s := k.sess.Load(); s != nil {
		return s.Client()
	}
	return nil
}

// Begin starts a transaction on the current session and the batch's
// output producer, on ctx (the connector's write context).
func (k *KafkaGroupTxn) Begin(ctx context.Context) error {
	k.out.stopAsync()
	s := k.sess.Load()
	if s == nil {
		return connector.NewCommitError(connector.CommitUnknown, "begin", errors.New("no session"))
	}
	k.out.begin(s.Client())
	if err := s.Begin(); err != nil {
		return classifyKafka("begin", err)
	}
	k.out.startAsync(ctx, s.Produce)
	return nil
}

// Write queues recs to be produced into the open transaction off the
// connector's loop (outputProducer). Results are checked at Commit: the
// first failure aborts every buffered record.
func (k *KafkaGroupTxn) Write(ctx context.Context, recs []*connector.Record) error {
	return k.out.queue(ctx, recs)
}

// finishWith ends the batch's writes with one more record, produced after
// the output and checked at Commit like it (the two-phase decision
// record, handed over before the participants prepare).
func (k *KafkaGroupTxn) finishWith(r *kgo.Record) {
	k.out.finishAsync(r)
}

// Commit ends the transaction: commit only if every produce succeeded. The
// checkpoint committed is the session's consumed offsets, which are cp for
// every partition the batch read: the source polls through this session
// and nothing else. cp can also hold partitions the batch did not read but
// changed (a window stage's idle advance: their state and results are in
// this transaction, at their unchanged offsets); withIdleOffsets adds them
// to the TxnOffsetCommit.
func (k *KafkaGroupTxn) Commit(ctx context.Context, cp connector.Checkpoint) error {
	s := k.sess.Load()
	ctx = withIdleOffsets(ctx, cp)
	// Every queued record handed to the producer before the flush; the
	// batch's context is released only once the transaction has ended.
	defer k.out.drainAsync(ctx)()
	produceErr := k.out.wait(ctx)
	// The gate stays closed during End, for heldGrace even if the group
	// manager comes to wait at it. End forces a heartbeat after committing
	// the offsets. A manager that meets a rebalance waits at the gate with
	// its heartbeat loop still running, which answers
	// REBALANCE_IN_PROGRESS, and with KIP-447 End commits anyway (the next
	// owner's offset fetch waits for our transaction). Let through, the
	// manager would leave the heartbeat loop for a JoinGroup that waits
	// for every member of the group, and End with it. A manager that waits
	// at the gate after a group error (this member was removed from the
	// group) has no heartbeat loop left, and End would wait for a
	// heartbeat nobody serves until the commit timed out: after heldGrace
	// it is let through, reports the partitions lost, and End aborts.
	stopAllowing := k.watch.Load().allowWhileHeld(s.AllowRebalance, heldGrace)
	committed, err := s.End(ctx, kgo.TransactionEndTry(produceErr == nil))
	stopAllowing()
	if err != nil || produceErr != nil {
		return endResult(err, produceErr)
	}
	if !committed {
		return connector.NewCommitError(connector.Abortable, "end transaction",
			errors.New("aborted: partitions were revoked or lost, or the offset commit was rejected, during the batch"))
	}
	return nil
}

// withIdleOffsets makes the transaction's offset commit carry every
// partition of cp, also those the session consumed nothing of (franz-go
// commits only consumed offsets), at cp's offset, which for such a
// partition is its committed one, unchanged. Why it matters: an idle
// advance writes a partition's window state and results in this
// transaction. With the partition's offset in the transaction too, (1)
// the coordinator fences the commit with the group generation for that
// partition as for the others: a member that lost it meanwhile aborts
// instead of writing state its new owner is using; and (2) the new
// owner's stable offset fetch (KIP-447) waits for this transaction to end
// before it reads the partition's checkpoint and state, so it loads the
// advanced state, never the one before it. The metadata of an added
// partition is the request's own (the member ID franz-go writes).
func withIdleOffsets(ctx context.Context, cp connector.Checkpoint) context.Context {
	return kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		in := map[connector.TopicPartition]bool{}
		var meta *string
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				in[connector.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = true
				meta = p.Metadata
			}
		}
		for _, tp := range cp.Partitions() {
			next := cp[tp]
			if in[tp] || next < 0 {
				continue
			}
			i := slices.IndexFunc(req.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) bool { return t.Topic == tp.Topic })
			if i < 0 {
				t := kmsg.NewTxnOffsetCommitRequestTopic()
				t.Topic = tp.Topic
				req.Topics = append(req.Topics, t)
				i = len(req.Topics) - 1
			}
			p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = tp.Partition, next, -1, meta
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
		}
		return nil
	})
}

// GroupRebalance implements connector.GroupCommitter: End commits the
// consumed offsets with the group generation, and franz-go holds that
// commit while this member's join and sync are in flight (after which it
// fails, with the old generation).
func (k *KafkaGroupTxn) GroupRebalance() <-chan struct{} {
	return k.watch.Load().inJoin()
}

// asAbortable keeps fencing errors as they are (classifyKafka makes them
// Fenced) and marks everything else abortable: End already aborted.
func asAbortable(err error) error {
	if isFenced(err) {
		return err
	}
	return connector.NewCommitError(connector.Abortable, "produce", err)
}

// Abort aborts the open transaction and rewinds the consumer.
func (k *KafkaGroupTxn) Abort(ctx context.Context) error {
	k.out.stopAsync()
	s := k.sess.Load()
	if s == nil {
		return nil
	}
	s.AllowRebalance()
	_, err := s.End(ctx, kgo.TryAbort)
	return classifyKafka("abort", err)
}

// Recover starts the first session, or replaces the session after fencing
// or an unknown outcome. After a known abort the session is kept and
// rewound to the committed offsets. It returns no checkpoint: the
// session's consumer resumes from the group's committed offsets itself.
func (k *KafkaGroupTxn) Recover(ctx context.Context, cause error) (connector.Checkpoint, error) {
	k.out.stopAsync()
	if s := k.sess.Load(); s != nil && !needsNewSession(cause) {
		if cause == nil {
			return nil, nil
		}
		// Rewind even if End already did: a batch can fail before its
		// transaction begins (TwoPhase resolves in-doubt transactions in
		// Begin, after the first poll of the batch), and then no End ran
		// and the consumer stands past records nothing committed. Kept
		// so, the next batch would commit offsets past them: lost in
		// every sink. End's abort path resets the consumer to the
		// committed offsets; with no transaction open it sends nothing,
		// and with one open (an Abort that failed) it aborts it first.
		if _, err := s.End(ctx, kgo.TryAbort); err != nil {
			return nil, classifyKafka("rewind to the committed offsets", err)
		}
		return nil, nil
	}
	if connector.KindOf(cause) == connector.Fenced && cause != nil {
		k.onFenced()
	}
	if old := k.sess.Swap(nil); old != nil {
		k.log.Info("closing the transactional session to start a new one", "cause", cause)
		old.CloseAllowingRebalance()
	}
	w := newRebalanceWatch(k.log)
	s, err := kgo.NewGroupTransactSession(slices.Concat(k.opts, w.opts())...)
	if err != nil {
		return nil, connector.NewCommitError(connector.Fatal, "new session", fmt.Errorf("kafka client: %w", err))
	}
	k.watch.Store(w)
	k.sess.Store(s)
	// Before this session reads anything (bumpEpoch).
	return nil, bumpEpoch(ctx, s.Client())
}

// Close leaves the group (letting a rebalance held back by
// BlockRebalanceOnPoll proceed, or closing could wait for it). A
// transaction still open is aborted by the broker
// at transaction.timeout or by the next session's InitProducerID, whichever
// comes first; nothing of it is ever visible.
func (k *KafkaGroupTxn) Close() {
	k.out.stopAsync()
	if s := k.sess.Swap(nil); s != nil {
		closeGroupClient(s.Client(), k.log)
	}
}
