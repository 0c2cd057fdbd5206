package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// runProbe checks a connector whose only sink registered a Probe (package
// component), for sinks that verify knows nothing else about.
//
//   - exactly_once: the checkpoint and the output are read by the probe in
//     one consistent view (the sink commits them together); nothing is
//     filtered.
//   - at_least_once: the checkpoint is the group's committed offsets, read
//     first; output is written before offsets are committed, so everything
//     below it is in the view read afterwards, and output of later batches
//     is left out by its origin (with Options.Stopped counted as
//     unexpected).
//
// Expected output is recomputed from the Kafka input below the checkpoint,
// each record routed by the sink's own rule (Probe.Route).
func runProbe(ctx context.Context, o Options, base []kgo.Opt, sink component.Sink, cfg component.Config) (Report, error) {
	spec := o.Spec
	if spec.KafkaSrc == nil {
		return Report{}, fmt.Errorf("a %s sink needs a kafka source", sink.Name)
	}
	probe, err := sink.Probe(cfg, component.SinkEnv{Connector: spec.Conf.Name, DLQTopic: spec.DLQTopic()})
	if err != nil {
		return Report{}, fmt.Errorf("%s sink: %w", sink.Name, err)
	}
	defer probe.Close()
	exactlyOnce := spec.Conf.Guarantee != config.AtLeastOnce && !spec.TwoPhase
	var cp connector.Checkpoint
	if !exactlyOnce {
		if cp, err = checkpoint(ctx, o, base); err != nil {
			return Report{}, err
		}
	}
	snap, err := probe.Snapshot(ctx, spec.KafkaSrc.Group, exactlyOnce, cp, o.Stopped)
	if err != nil {
		return Report{}, fmt.Errorf("reading the %s sink: %w", sink.Name, err)
	}
	if exactlyOnce {
		if snap.Checkpoint == nil {
			return Report{}, errors.New("the probe returned no checkpoint")
		}
		cp = snap.Checkpoint
	}
	dlqTopic := spec.DLQTopic()
	expected, _, err := expectedOutputs(ctx, o, base, cp, func(r *connector.Record) string {
		return probe.Route(r, dlqTopic)
	})
	if err != nil {
		return Report{}, err
	}
	rep := Compare(expected, snap.IDs)
	rep.addBeyond(snap.Beyond)
	rep.ApplyCountViolations = snap.ApplyCountViolations
	if ac, ok := probe.(component.ApplyCounter); ok {
		n, err := ac.ApplyCountViolations(ctx, expected)
		if err != nil {
			return Report{}, err
		}
		rep.ApplyCountViolations += n
	}
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}
