package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// uncheckedPartitions finds the partitions of the input topics that hold
// committed records but are absent from cp. Everything else the checker
// does starts from cp, so without this a connector that never commits one
// partition (never reads it, or loses its checkpoint) would pass: none of
// that partition's input is expected, none of its output compared.
//
// The partitions come from the broker's metadata, not from the connector.
// A partition counts only if a read_committed reader finds a data record
// in it below its last stable offset: one that is empty, or holds nothing
// but aborted transactions, gives a connector nothing to commit. A
// partition that is in cp, at any offset, is not reported: a checkpoint
// behind the input is lag, which verify does not judge.
//
// It returns the count and up to maxSamples "topic/partition: offsets F to
// L", F the log start and L the last offset below the last stable offset.
func uncheckedPartitions(ctx context.Context, base []kgo.Opt, topics []string, cp connector.Checkpoint) (int, []string, error) {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return 0, nil, fmt.Errorf("input log start offsets: %w", err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return 0, nil, fmt.Errorf("input last stable offsets: %w", err)
	}
	bound := connector.Checkpoint{}
	var failed error
	stable.Each(func(lo kadm.ListedOffset) {
		tp := connector.TopicPartition{Topic: lo.Topic, Partition: lo.Partition}
		if _, ok := cp[tp]; ok {
			return
		}
		if errors.Is(lo.Err, kerr.UnknownTopicOrPartition) {
			return // an input topic not created yet holds nothing
		}
		if lo.Err != nil {
			failed = fmt.Errorf("input %s: %w", tp, lo.Err)
			return
		}
		if s, ok := starts.Lookup(lo.Topic, lo.Partition); ok && s.Err == nil && s.Offset >= lo.Offset {
			return // nothing readable: empty, or all of it deleted
		}
		bound[tp] = lo.Offset
	})
	if failed != nil {
		return 0, nil, failed
	}
	// One data record is enough to know a partition holds input: reading
	// stops there, so a live check of a connector that has not reached a
	// large backlog yet does not read all of it.
	found := map[connector.TopicPartition]bool{}
	if err := readBelowUntil(ctx, base, bound, func(r *kgo.Record) bool {
		found[connector.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = true
		return true
	}); err != nil {
		return 0, nil, fmt.Errorf("reading input partitions without a checkpoint: %w", err)
	}
	var samples []string
	for _, tp := range bound.Partitions() {
		if found[tp] {
			samples = append(samples, fmt.Sprintf("%s: offsets %d to %d", tp, starts[tp.Topic][tp.Partition].Offset, bound[tp]-1))
		}
	}
	return len(samples), samples[:min(len(samples), maxSamples)], nil
}

// checkPartitions adds the unchecked input partitions of a Kafka source to
// rep; a generator source has none (its one sequence is the checkpoint).
func checkPartitions(ctx context.Context, o Options, base []kgo.Opt, cp connector.Checkpoint, rep *Report) error {
	if o.Spec.KafkaSrc == nil {
		return nil
	}
	n, ids, err := uncheckedPartitions(ctx, base, o.Spec.KafkaSrc.Topics, cp)
	if err != nil {
		return err
	}
	rep.UncheckedPartitions, rep.UncheckedPartitionIDs = n, ids
	return nil
}
