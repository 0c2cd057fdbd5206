package connector

import "context"

// Protocol is how a connector's batches become durable: the write side plus
// the place its checkpoint lives (a Kafka transaction, a database row, ...).
// Implementations live in package txn and state, each, what is atomic.
//
// The coordinator calls, per batch: Begin, Write (one or more times), then
// Commit or Abort. It never retries a batch from memory: after any failure
// it calls Recover and re-reads from the source.
type Protocol interface {
	// Begin opens a batch.
	Begin(ctx context.Context) error
	// Write adds records to the open batch. With exactly_once they become
	// visible only if Commit succeeds.
	Write(ctx context.Context, recs []*Record) error
	// Commit makes the batch's output and cp (the input checkpoint after
	// the batch) durable. A failure is a *CommitError; whatever its kind,
	// the batch must be treated as not committed and re-read after Recover.
	Commit(ctx context.Context, cp Checkpoint) error
	// Abort discards the open batch. Abort of a batch with nothing written
	// is cheap.
	Abort(ctx context.Context) error
	// Recover re-reads the last durably committed checkpoint from where it
	// is stored and returns it; the coordinator seeks the source there,
	// so the next batch is re-read, never retried from memory. A protocol
	// whose source resumes by itself (a Kafka consumer group, whose new
	// or rewound member fetches the committed offsets) returns nil. cause
	// is the error that led here (nil at start): after Fenced or
	// CommitUnknown the protocol also re-establishes its session, which
	// aborts anything still open, before it reads the checkpoint.
	Recover(ctx context.Context, cause error) (Checkpoint, error)
	// Close releases the protocol's resources. The open batch, if any, is
	// aborted (by the broker's or database's own rules if not by us).
	Close()
}

// Processor turns polled records into the records to write: it derives
// event IDs, runs the transforms, and routes records that fail to the
// dead-letter queue or returns a *RecordError, per the connector's
// errors.tolerance. It must be deterministic.
type Processor interface {
	Process(in []*Record) (out []*Record, err error)
}

// Lagger is implemented by sources that know their partitions' high
// watermarks, for lag in the connector's status.
type Lagger interface {
	HighWatermarks() map[TopicPartition]int64
}
