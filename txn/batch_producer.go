package txn

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// batchProducer is the produce half every protocol writing to Kafka shares
// (KafkaGroupTxn, OffsetsTopicTxn, KafkaAtLeastOnce): a batch's records
// are converted and produced asynchronously, their results gathered by an
// aborting promise, so the first failure cancels every record of the batch
// still buffered, and checked once, at commit (wait). Whether the records
// are in a transaction is the protocol's business: the same calls serve a
// transactional client, a group transact session and an idempotent
// producer.
type batchProducer struct {
	topic   string              // the sink's default output topic
	conv    sinkkafka.Converter // output records, carved from chunks
	cl      *kgo.Client         // the batch's client, flushed at wait
	promise *kgo.FirstErrPromise
	// settled says the batch's promises have all been called (wait
	// returned), so the next begin need not wait for them.
	settled bool
	// async produces the open batch's records off the connector's loop
	// (outputProducer), for protocols that start it; nil otherwise.
	async *outputProducer
}

// produceFunc is kgo.Client.Produce or kgo.GroupTransactSession.Produce.
type produceFunc func(context.Context, *kgo.Record, func(*kgo.Record, error))

// begin starts a batch produced through cl, once the previous batch has
// settled (settle).
func (b *batchProducer) begin(cl *kgo.Client) {
	b.settle()
	b.cl, b.promise, b.settled = cl, kgo.AbortingFirstErrPromise(cl), false
}

// settleWait bounds how long begin waits for an aborted batch's promises.
// Every abort path aborts the buffered records (or closes the client)
// before the next batch begins, so they are all called by then but for
// the aborting promise's own AbortBufferedRecords, which has nothing left
// to do; a variable for the tests.
var settleWait = 10 * time.Second

// settle waits until every promise of the previous batch has been called.
// A batch that commits has waited for them (wait); one that aborted has
// not, and its first failure made the AbortingFirstErrPromise start
// AbortBufferedRecords on a goroutine of its own. Left running, that call
// could fail the next batch's first records (ErrAborting: CI run 70's
// TestOutputProducerCommitsWhatWasWritten), an abort for nothing. Once the
// promises are called, the previous batch's output records are reused
// (Converter.Recycle). If they are not within settleWait, a producer may
// still hold its records, so they are left to the garbage collector
// (Converter.Forget), and the next batch begins anyway: at worst the late
// abort fails it and it aborts in turn, the ordinary way.
func (b *batchProducer) settle() {
	p := b.promise
	if p == nil || b.settled {
		return // no batch yet, or wait has settled it
	}
	done := make(chan struct{})
	go func() {
		_ = p.Err()
		close(done)
	}()
	select {
	case <-done:
		b.conv.Recycle()
	case <-time.After(settleWait):
		b.conv.Forget()
	}
}

// write produces recs, converted to the output topic.
func (b *batchProducer) write(ctx context.Context, produce produceFunc, recs []*connector.Record) {
	for _, r := range recs {
		produce(ctx, b.conv.Convert(r, b.topic), b.promise.Promise())
	}
}

// startAsync starts the batch's output producer (outputProducer): queue
// then hands records to it, produced with produce on ctx. The caller has
// stopped the previous batch's (stopAsync) before it began this batch.
func (b *batchProducer) startAsync(ctx context.Context, produce produceFunc) {
	b.async = startOutput(ctx, b, produce)
}

// queue hands recs to the output producer started by startAsync.
func (b *batchProducer) queue(ctx context.Context, recs []*connector.Record) error {
	return b.async.write(ctx, recs)
}

// finishAsync ends the batch's queued writes with last, produced after
// them (the two-phase decision record).
func (b *batchProducer) finishAsync(last *kgo.Record) {
	b.async.finish(last)
}

// drainAsync waits until the output producer has handed every queued
// record to the client (see outputProducer.wait), before wait flushes
// them. The returned func releases the batch's context: call it once the
// transaction (or the checkpoint) has ended, not before.
func (b *batchProducer) drainAsync(ctx context.Context) (release func()) {
	o := b.async
	if o == nil {
		return func() {}
	}
	b.async = nil
	o.wait(ctx)
	return o.release
}

// stopAsync stops the output producer, if any, without producing what it
// still holds: the batch is being aborted or abandoned.
func (b *batchProducer) stopAsync() {
	if b.async != nil {
		b.async.stop()
		b.async = nil
	}
}

// add produces records of the batch that are not output (a checkpoint, a
// two-phase decision), checked at wait like the output.
func (b *batchProducer) add(ctx context.Context, produce produceFunc, recs ...*kgo.Record) {
	for _, r := range recs {
		produce(ctx, r, b.promise.Promise())
	}
}

// wait sends what still lingers in the producer, waits for every record of
// the batch and returns the first failure. Without the flush the batch's
// last records would sit out the linger before they are sent, and the
// commit with them: up to 10 ms per commit with franz-go's default. A
// flush cut short by ctx only stops hurrying: the promise still waits for
// every record's own outcome (acknowledged, failed, or aborted by the
// first failure).
//
// The flush was reverted once (851cf29): test/clustered's member restarted
// after a SIGKILL then held no partition. That was the test's race, not
// the flush's: with faster commits the other members copied the test's
// last records before the rejoined member's partitions arrived; every
// offset was committed (the test now feeds until that member commits).
//
// Once the promise has waited, every record of the batch is done with:
// acknowledged, failed or aborted, its promise called. franz-go reads a
// record until then and never after, so the Converter reuses the batch's
// records for the next one (nothing converts between here and the next
// begin: the output producer was drained before wait).
func (b *batchProducer) wait(ctx context.Context) error {
	_ = b.cl.Flush(ctx)
	err := b.promise.Err()
	b.conv.Recycle()
	b.settled = true
	return err
}

// endResult is the outcome of a transaction ended with
// TransactionEndTry(produceErr == nil): an error of the EndTxn itself
// first (fenced, abortable or unknown, classifyKafka), else the failed
// produce, after which the transaction was aborted (Abortable; a fenced
// produce stays Fenced).
func endResult(endErr, produceErr error) error {
	if endErr != nil {
		return classifyKafka("end transaction", endErr)
	}
	if produceErr != nil {
		return classifyKafka("produce", asAbortable(produceErr))
	}
	return nil
}

// newTransactionalClient starts a transactional client and bumps its
// transactional ID's epoch before anything else (bumpEpoch): the session
// every protocol that owns a plain transactional producer replaces after
// fencing or an unknown outcome.
func newTransactionalClient(ctx context.Context, opts []kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, connector.NewCommitError(connector.Fatal, "new producer", err)
	}
	if err := bumpEpoch(ctx, cl); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}
