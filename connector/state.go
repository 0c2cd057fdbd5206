package connector

import (
	"context"
	"time"
)

// StateStore reads back the state a stateful stage committed through a
// sink (StateRecord). Each sink that can hold state provides one.
type StateStore interface {
	// LoadState returns every committed state entry of input partition tp
	// in namespace ns, keyed by state key: exactly the state that belongs
	// to tp's committed checkpoint, because both commit atomically. A
	// Kafka store reads with read_committed isolation up to the last
	// stable offset.
	LoadState(ctx context.Context, ns string, tp TopicPartition) (map[string][]byte, error)
	// Close releases the store's connections.
	Close()
}

// Stateful is implemented by processors with state across batches (the
// window stage). The coordinator drives it so that the in-memory state is
// always the state of the last committed checkpoint plus the open batch:
//
//   - Prepare runs before the batch's records are processed: it loads the
//     committed state of partitions not in memory. An error aborts the
//     batch (abortable: nothing was written).
//   - Flush runs once per batch after the last Process and before Commit:
//     it returns the records the batch's state changes produce (results of
//     windows that closed, state records for every changed entry, state
//     deletions), written in the batch's atomic commit.
//   - Committed runs after the commit succeeded.
//   - Discard runs after every batch that did not commit (abort, fencing,
//     unknown outcome), at recovery, and when the source's partition
//     assignment changed: the in-memory state is dropped and reloaded
//     from the sink before those partitions' next records. State is never
//     carried over from memory into a batch whose input is re-read.
type Stateful interface {
	Prepare(ctx context.Context, recs []*Record) error
	Flush() ([]*Record, error)
	Committed()
	Discard()
}

// AssignmentTracker is implemented by sources whose partitions can move
// between members (consumer groups). Assignment changes whenever the
// partitions this source reads may have changed (a new client, a new group
// generation); the coordinator then discards a stateful processor's state.
type AssignmentTracker interface {
	Assignment() any
}

// IdleAdvancer is implemented by stateful processors whose watermarks also
// advance without input of their own: the window stage's idle_timeout, and
// the end of a bounded run's input. The coordinator calls AdvanceIdle once
// per batch that read records (or input transaction markers, which also
// commit offsets), after the last Process and before Flush; assigned, if
// not nil, returns the partitions the source holds now for sure, in the
// group generation the batch was read in (CurrentAssigner; asked only when
// idleness is on). The checkpoint entries it returns (partitions whose
// state changes without new input, at their committed offsets) are added
// to the batch's checkpoint, so the commit fences their writes like any
// partition's. A batch that read nothing does not call it: with a Kafka
// sink, the offsets a batch commits are what carries the group generation
// that fences a member which lost its partitions.
type IdleAdvancer interface {
	AdvanceIdle(ctx context.Context, now time.Time, assigned func() map[TopicPartition]int64) (Checkpoint, error)
}

// CurrentAssigner is implemented by Assigners whose Assigned can lag a
// rebalance (a consumer group's, which keeps showing its previous answer
// until the coordinator answers about the new generation). AssignedNow
// returns only what the source holds in its current group generation, nil
// while that is not known. The coordinator gives it to IdleAdvancer: an
// idle advance writes a partition's state and results with no record of
// it in the batch, and only the generation the batch commits in says that
// no other member holds the partition meanwhile.
type CurrentAssigner interface {
	AssignedNow() map[TopicPartition]int64
}

// ResultsDue is implemented by stateful processors whose open batch can
// hold results that are due: a window the batch's records closed. The
// coordinator then ends the batch as soon as every partition concerned is
// caught up (its last read offset at the high watermark the source last
// saw), rather than at the commit interval, so a window's result is
// visible one commit after the record that closed it. Under a backlog the
// partitions are not caught up and batches run their usual course.
type ResultsDue interface {
	DuePartitions() []TopicPartition
}
