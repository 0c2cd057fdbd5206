package verify

import (
	"context"
	"fmt"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/txn"
)

// runFanout checks a connector with several sinks: each sink on its own,
// as if it were the connector's only sink, against the same input. Output
// IDs are qualified with their destination (topic or table), so the
// reports add up. For a two-phase connector it also counts the
// connector's prepared transactions still in doubt in each PostgreSQL
// sink (Prepared): on a quiet pipeline there must be none.
//
// The checkpoint is the group's, read per sink: on a running pipeline a
// batch the Kafka transaction committed may be still in phase two in
// PostgreSQL (missing there for a moment); on a quiet one every sink must
// match exactly.
func runFanout(ctx context.Context, o Options) (Report, error) {
	var total Report
	for i, f := range o.Spec.Sinks {
		sub := o
		sub.Spec = o.Spec.Sink(i)
		rep, err := Run(ctx, sub)
		if err != nil {
			return Report{}, fmt.Errorf("sinks[%d] (%s): %w", i, f.Name, err)
		}
		if f.Participant != nil && sub.Spec.TwoPhase {
			n, err := countPrepared(ctx, f, o.Spec.Conf.Name)
			if err != nil {
				return Report{}, fmt.Errorf("sinks[%d] (%s): %w", i, f.Name, err)
			}
			rep.Prepared = n
		}
		rep.Sink = fmt.Sprintf("sinks[%d] %s", i, f.Name)
		total = total.add(rep)
		total.Sinks = append(total.Sinks, rep)
	}
	return total, nil
}

// countPrepared counts the connector's prepared transactions in the
// participant sink f, through the participant's own listing.
func countPrepared(ctx context.Context, f pipeline.SinkInstance, connectorName string) (int, error) {
	p := f.Participant(f.Config, component.SinkEnv{Connector: connectorName})
	defer p.Close()
	gids, err := p.Prepared(ctx, txn.GIDPrefix(connectorName))
	return len(gids), err
}

// add sums two reports, keeping at most maxSamples IDs per list.
func (r Report) add(o Report) Report {
	r.Expected += o.Expected
	r.Actual += o.Actual
	r.Duplicates += o.Duplicates
	r.Missing += o.Missing
	r.Unexpected += o.Unexpected
	r.ApplyCountViolations += o.ApplyCountViolations
	r.Prepared += o.Prepared
	r.UncheckedPartitions += o.UncheckedPartitions
	r.BeyondCheckpoint += o.BeyondCheckpoint
	r.Windows += o.Windows
	r.Late += o.Late
	r.ValueMismatches += o.ValueMismatches
	r.ValueMismatchIDs = appendSamples(r.ValueMismatchIDs, o.ValueMismatchIDs)
	r.IdleLogViolations += o.IdleLogViolations
	r.IdleLogViolationIDs = appendSamples(r.IdleLogViolationIDs, o.IdleLogViolationIDs)
	r.DuplicateIDs = appendSamples(r.DuplicateIDs, o.DuplicateIDs)
	r.MissingIDs = appendSamples(r.MissingIDs, o.MissingIDs)
	r.UnexpectedIDs = appendSamples(r.UnexpectedIDs, o.UnexpectedIDs)
	r.UncheckedPartitionIDs = appendSamples(r.UncheckedPartitionIDs, o.UncheckedPartitionIDs)
	return r
}

func appendSamples(to, from []string) []string {
	for _, id := range from {
		if len(to) == maxSamples {
			break
		}
		to = append(to, id)
	}
	return to
}
