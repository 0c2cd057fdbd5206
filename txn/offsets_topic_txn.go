package txn

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// OffsetsTopicTxn is the exactly-once protocol for a source that is not a Kafka
// consumer group (the generator) writing to Kafka. The checkpoint is a
// record in a compacted offsets topic produced in the same transaction as
// the batch's output.
//
//   - Atomic: the output records and the checkpoint record.
//   - Abort: a failed produce aborts the transaction; Recover re-reads the
//     checkpoint from the offsets topic (read_committed) and returns it for
//     the coordinator to seek the source there, so the batch is
//     regenerated, not retried from memory.
//   - Fencing: a newer producer with our transactional ID makes ours fail
//     with ProducerFenced; Recover replaces the client.
//   - Unknown outcome: Recover replaces the client and loads its producer ID
//     at once; the epoch bump ends the old transaction on the broker before
//     the checkpoint is re-read, and the re-read checkpoint says whether the
//     batch committed.
type OffsetsTopicTxn struct {
	opts  []kgo.Opt
	out   batchProducer
	store *OffsetsTopic
	log   *slog.Logger
	cl    *kgo.Client
}

// NewOffsetsTopicTxn returns the protocol; opts must carry the seed brokers, a
// transactional ID unique to this instance and the transaction timeout.
func NewOffsetsTopicTxn(opts []kgo.Opt, topic string, store *OffsetsTopic, log *slog.Logger) *OffsetsTopicTxn {
	return &OffsetsTopicTxn{opts: opts, out: batchProducer{topic: topic}, store: store, log: log}
}

var _ connector.Protocol = (*OffsetsTopicTxn)(nil)

// Begin starts a transaction.
func (p *OffsetsTopicTxn) Begin(context.Context) error {
	p.out.begin(p.cl)
	return classifyKafka("begin", p.cl.BeginTransaction())
}

// Write produces recs into the open transaction.
func (p *OffsetsTopicTxn) Write(ctx context.Context, recs []*connector.Record) error {
	p.out.write(ctx, p.cl.Produce, recs)
	return nil
}

// Commit adds the checkpoint record and commits, if every produce succeeded.
func (p *OffsetsTopicTxn) Commit(ctx context.Context, cp connector.Checkpoint) error {
	p.out.add(ctx, p.cl.Produce, p.store.Records(cp)...)
	produceErr := p.out.wait(ctx)
	return endResult(p.cl.EndTransaction(ctx, kgo.TransactionEndTry(produceErr == nil)), produceErr)
}

// Abort drops buffered records and aborts the transaction.
func (p *OffsetsTopicTxn) Abort(ctx context.Context) error {
	if err := p.cl.AbortBufferedRecords(ctx); err != nil {
		return classifyKafka("abort", err)
	}
	return classifyKafka("abort", p.cl.EndTransaction(ctx, kgo.TryAbort))
}

// Recover (re)creates the producer when needed, then returns the
// checkpoint stored in the offsets topic.
func (p *OffsetsTopicTxn) Recover(ctx context.Context, cause error) (connector.Checkpoint, error) {
	if p.cl == nil || needsNewSession(cause) {
		if p.cl != nil {
			p.log.Info("replacing the transactional producer", "cause", cause)
			p.cl.Close()
			p.cl = nil
		}
		// The epoch is bumped before the checkpoint is read.
		cl, err := newTransactionalClient(ctx, p.opts)
		if err != nil {
			return nil, err
		}
		p.cl = cl
	}
	return p.store.checkpoint(ctx)
}

// Close closes the producer; an open transaction is aborted by the broker.
func (p *OffsetsTopicTxn) Close() {
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
}
