package txn

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// outputProducer converts and produces one batch's records on a goroutine
// of its own: into the batch's open Kafka transaction (KafkaGroupTxn, so
// Kafka → Kafka exactly_once and the two-phase fan-out), or with the
// idempotent producer (KafkaAtLeastOnce, its at_least_once baseline).
//
// Why: converting and producing the output is CPU work that, done in
// Write, stood in the connector's loop between polls. Off the loop, it
// runs while the loop reads and transforms the next records and, in a
// two-phase batch, while the participants prepare (mostly waiting for
// their database); only what is left of it when the commit starts is
// waited for.
//
// It changes nothing of what is atomic: every record it produces is in
// the batch's transaction (or, at least once, acknowledged before the
// checkpoint is stored), and its results are checked at Commit as before
// (batchProducer.wait: the first failure aborts the batch). Nothing may
// produce into a transaction while it ends, so every path that ends one
// (Commit, Abort, Recover, Close) first waits for the goroutine (wait) or
// stops it (stop).
type outputProducer struct {
	in     chan []*connector.Record
	done   chan struct{}
	cancel context.CancelFunc
	closed bool
	// last is set before in is closed and produced after everything
	// queued (the two-phase decision record).
	last *kgo.Record
}

// outputQueue is how many Write calls may wait for the goroutine before
// Write waits itself: franz-go's own buffer (MaxBufferedRecords) is what
// bounds the memory, this only keeps the loop from waiting on each call.
const outputQueue = 64

// startOutput starts the goroutine of a batch: records queued are
// produced through out with produce (the session's), on ctx (the batch's
// write context) until stop cancels it.
func startOutput(ctx context.Context, out *batchProducer, produce produceFunc) *outputProducer {
	ctx, cancel := context.WithCancel(ctx)
	o := &outputProducer{in: make(chan []*connector.Record, outputQueue), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(o.done)
		for recs := range o.in {
			out.write(ctx, produce, recs)
		}
		if o.last != nil {
			out.add(ctx, produce, o.last)
		}
	}()
	return o
}

// write queues a copy of recs (the caller may reuse the slice; the
// records themselves must not change until the batch ends).
func (o *outputProducer) write(ctx context.Context, recs []*connector.Record) error {
	if len(recs) == 0 {
		return nil
	}
	select {
	case o.in <- append([]*connector.Record(nil), recs...):
		return nil
	case <-ctx.Done():
		return connector.NewCommitError(connector.Abortable, "produce", context.Cause(ctx))
	}
}

// finish ends the batch's writes; last, if not nil, is produced after
// everything queued.
func (o *outputProducer) finish(last *kgo.Record) {
	if !o.closed {
		o.last, o.closed = last, true
		close(o.in)
	}
}

// wait waits until everything queued was handed to the producer (not
// acknowledged: batchProducer.wait waits for that). If ctx ends first, the
// produces still waiting for buffer room are cancelled (they fail, so the
// transaction can only abort) and wait returns once the goroutine has.
func (o *outputProducer) wait(ctx context.Context) {
	o.finish(nil)
	select {
	case <-o.done:
	case <-ctx.Done():
		o.cancel()
		<-o.done
	}
}

// release frees the batch's context once its transaction has ended. Not
// before: franz-go fails a record whose context ends while it is still
// buffered, so releasing right after wait would abort a batch that was
// fine.
func (o *outputProducer) release() { o.cancel() }

// stop ends the goroutine without waiting for what is still queued to be
// produced usefully (it fails on the cancelled context): the batch is
// being aborted.
func (o *outputProducer) stop() {
	o.finish(nil)
	o.cancel()
	<-o.done
}
