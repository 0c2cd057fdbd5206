package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
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
type KafkaGroupTxn struct {
	opts     []kgo.Opt
	topic    string
	conv     sinkkafka.Converter // output records, carved from chunks
	log      *slog.Logger
	sess     atomic.Pointer[kgo.GroupTransactSession]
	promise  *kgo.FirstErrPromise
	onFenced func()
}

// NewKafkaGroupTxn returns the protocol. opts must include the consumer
// options of the source, a transactional ID unique to this instance, and
// the transaction timeout; topic is the sink's default output topic.
func NewKafkaGroupTxn(opts []kgo.Opt, topic string, log *slog.Logger, onFenced func()) *KafkaGroupTxn {
	if onFenced == nil {
		onFenced = func() {}
	}
	return &KafkaGroupTxn{opts: opts, topic: topic, log: log, onFenced: onFenced}
}

var _ connector.Protocol = (*KafkaGroupTxn)(nil)

// Client is the current session's client, for the source to poll.
func (k *KafkaGroupTxn) Client() *kgo.Client {
	if s := k.sess.Load(); s != nil {
		return s.Client()
	}
	return nil
}

// Begin starts a transaction on the current session.
func (k *KafkaGroupTxn) Begin(context.Context) error {
	s := k.sess.Load()
	if s == nil {
		return connector.NewCommitError(connector.CommitUnknown, "begin", errors.New("no session"))
	}
	k.promise = kgo.AbortingFirstErrPromise(s.Client())
	return classifyKafka("begin", s.Begin())
}

// Write produces recs into the open transaction. Results are checked at
// Commit: the first failure aborts every buffered record.
func (k *KafkaGroupTxn) Write(ctx context.Context, recs []*connector.Record) error {
	s := k.sess.Load()
	for _, r := range recs {
		s.Produce(ctx, k.conv.Convert(r, k.topic), k.promise.Promise())
	}
	return nil
}

// produce adds one more record to the open transaction, checked at Commit
// like the batch's own (the two-phase decision record).
func (k *KafkaGroupTxn) produce(ctx context.Context, r *kgo.Record) {
	k.sess.Load().Produce(ctx, r, k.promise.Promise())
}

// Commit ends the transaction: commit only if every produce succeeded. The
// checkpoint committed is the session's consumed offsets, which are exactly
// cp: the source polls through this session and nothing else.
func (k *KafkaGroupTxn) Commit(ctx context.Context, _ connector.Checkpoint) error {
	s := k.sess.Load()
	produceErr := k.promise.Err() // waits for every produce of the batch
	// Let a rebalance held back since the last poll proceed now: End is
	// built for it (a revoke or a lost session during End makes it abort,
	// and KIP-447 keeps a new owner from reading our pending offsets). Kept
	// held, a member expelled from the group would wait in End for a
	// heartbeat the group cannot serve until the commit timed out.
	s.AllowRebalance()
	committed, err := s.End(ctx, kgo.TransactionEndTry(produceErr == nil))
	switch {
	case err != nil:
		return classifyKafka("end transaction", err)
	case produceErr != nil:
		// End aborted; a fenced produce is still fencing.
		return classifyKafka("produce", asAbortable(produceErr))
	case !committed:
		return connector.NewCommitError(connector.Abortable, "end transaction",
			errors.New("aborted: partitions were revoked or lost, or the offset commit was rejected, during the batch"))
	}
	return nil
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
// rewound to the committed offsets.
func (k *KafkaGroupTxn) Recover(ctx context.Context, cause error) error {
	if s := k.sess.Load(); s != nil && !needsNewSession(cause) {
		if cause == nil {
			return nil
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
			return classifyKafka("rewind to the committed offsets", err)
		}
		return nil
	}
	if connector.KindOf(cause) == connector.Fenced && cause != nil {
		k.onFenced()
	}
	if old := k.sess.Swap(nil); old != nil {
		k.log.Info("closing the transactional session to start a new one", "cause", cause)
		old.CloseAllowingRebalance()
	}
	s, err := kgo.NewGroupTransactSession(k.opts...)
	if err != nil {
		return connector.NewCommitError(connector.Fatal, "new session", fmt.Errorf("kafka client: %w", err))
	}
	k.sess.Store(s)
	// Loading the producer ID now bumps the epoch: a transaction that a
	// previous session with our transactional ID left open is ended on the
	// broker before this session reads anything, and a zombie still
	// holding the old epoch is fenced at once.
	if _, _, err := s.Client().ProducerID(ctx); err != nil {
		return classifyKafka("init producer id", err)
	}
	return nil
}

// Close leaves the group (letting a rebalance held back by
// BlockRebalanceOnPoll proceed, or closing could wait for it). A
// transaction still open is aborted by the broker
// at transaction.timeout or by the next session's InitProducerID, whichever
// comes first; nothing of it is ever visible.
func (k *KafkaGroupTxn) Close() {
	if s := k.sess.Swap(nil); s != nil {
		closeGroupClient(s.Client(), k.log)
	}
}
