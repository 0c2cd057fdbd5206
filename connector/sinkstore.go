package connector

import "context"

// The contract between the commit protocols (package txn) and the sinks that
// are not Kafka: a sink that keeps its checkpoint beside its output
// (SinkStore, CheckpointAdmin), a two-phase commit participant
// (Participant), and a plain writer (SinkWriter). It lives here, below both,
// so that a sink registers itself (package component) without importing the
// protocols; package sink/sinktest holds a store to it.

// SinkStore is a sink that keeps its data and the input checkpoint in one
// atomic unit (a PostgreSQL transaction, a Redis script), so the sink, not
// the consumer group, is the truth about what was applied.
//
// Ownership of a partition is a claim epoch that the store itself issues:
// every Claim raises the partition's epoch in the store, and every Commit
// compares it. The consumer group's generation cannot serve: a static
// member (group.instance.id) that restarts keeps the generation, so a
// frozen zombie and its heir would hold the same one, and a group deleted
// and created again starts over at generation 1. An epoch that only the
// store raises has neither flaw: whoever claimed last owns the partition,
// and a commit by anyone who claimed before (a zombie: paused past its
// session timeout, then resumed) is refused.
type SinkStore interface {
	// Claim takes ownership of tps for group: it raises each partition's
	// claim epoch in the store, atomically with reading its checkpoint, and
	// returns both. A claim always succeeds against other claimants (the
	// latest claim wins); it fails only when the store cannot be reached
	// or written.
	Claim(ctx context.Context, group string, tps []TopicPartition) (Claims, error)
	// Commit writes recs and moves each partition of to from from[tp] (absent
	// means no stored checkpoint) to to[tp], as one atomic unit, only if every
	// partition's claim epoch is still epochs[tp] and its stored checkpoint
	// equals from[tp]. Otherwise nothing is written and the error is a Fenced
	// *CommitError. Other failures must be classified: Abortable
	// when nothing was applied (a serialization failure, a connection lost
	// before the commit was sent), CommitUnknown when it may have been (a
	// connection lost during COMMIT).
	Commit(ctx context.Context, group string, epochs map[TopicPartition]int64, recs []*Record, from, to Checkpoint) error
	// Close releases the store's connections.
	Close()
}

// PartitionClaim is one partition's claim as the store issued it.
type PartitionClaim struct {
	// Epoch is the claim epoch, higher than any earlier claim's.
	Epoch int64
	// Next is the stored checkpoint, or NoCheckpoint.
	Next int64
}

// NoCheckpoint is a claimed partition's Next when nothing was committed
// for it (or its offsets were reset).
const NoCheckpoint = -1

// Claims are the result of one Claim, per partition.
type Claims map[TopicPartition]PartitionClaim

// Checkpoint returns the partitions that have a stored checkpoint.
func (c Claims) Checkpoint() Checkpoint {
	cp := Checkpoint{}
	for tp, pc := range c {
		if pc.Next >= 0 {
			cp[tp] = pc.Next
		}
	}
	return cp
}

// CheckpointAdmin is implemented by sink stores whose checkpoints the admin
// API reads and changes (Kafka Connect's KIP-875 offsets endpoints). Changes
// are made only while the connector is STOPPED. A store keeps the partitions'
// claim epochs when it changes offsets, so a zombie of an earlier claim
// stays fenced.
type CheckpointAdmin interface {
	Checkpoints(ctx context.Context, group string) (Checkpoint, error)
	// SetCheckpoints sets the given partitions' next offsets.
	SetCheckpoints(ctx context.Context, group string, cp Checkpoint) error
	// ResetCheckpoints forgets every partition's offset: the connector
	// starts over at the source's start offset (a Kappa-style replay).
	ResetCheckpoints(ctx context.Context, group string) error
}

// Participant is a sink that can take part in a two-phase commit: it can
// make a batch durable without making it visible (prepare), then make it
// visible or discard it by its global ID alone, from any process.
type Participant interface {
	// Name names the participant in logs and errors ("postgres events").
	Name() string
	// Check verifies, before the first batch, that the participant can
	// prepare at all (e.g. PostgreSQL's max_prepared_transactions > 0).
	Check(ctx context.Context) error
	// Prepare writes recs in a new local transaction and prepares it as
	// gid: durable across crashes of either side, invisible, holding its
	// locks, until CommitPrepared or RollbackPrepared of gid. On error
	// nothing is prepared, or what is (an unknown outcome) is found and
	// rolled back by recovery, since no decision names it.
	Prepare(ctx context.Context, gid string, recs []*Record) error
	// CommitPrepared commits gid. A gid that does not exist is success:
	// only a committed decision leads here, and nobody rolls back a gid a
	// committed decision names, so someone else committed it.
	CommitPrepared(ctx context.Context, gid string) error
	// RollbackPrepared rolls gid back; a gid that does not exist is
	// success (by the same argument, someone else rolled it back).
	RollbackPrepared(ctx context.Context, gid string) error
	// Prepared lists the prepared transactions whose gid starts with
	// prefix.
	Prepared(ctx context.Context, prefix string) ([]string, error)
	Close()
}

// SinkWriter writes a batch to a sink that holds no checkpoint: the
// at-least-once path, and the baseline the benchmark compares against.
type SinkWriter interface {
	// WriteBatch writes recs; on error some of them may have been written.
	WriteBatch(ctx context.Context, recs []*Record) error
	Close()
}
