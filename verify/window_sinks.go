package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/window"
)

// runWindowed checks a connector with a window stage against the batch
// oracle: its results are recomputed from the input below the checkpoint
// (recomputeWindowed) and compared, ID and value, with what the sink holds,
// read the way the connector's other checks read it (the checkpoint and
// the sink in one snapshot where the sink allows, else the group's
// offsets first). A sink other than Kafka is read through its registered
// WindowProbe (package component).
func runWindowed(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	if o.Spec.KafkaSrc == nil {
		return Report{}, errors.New("a window stage needs a kafka source")
	}
	if s := o.Spec.Sinks; len(s) == 1 && s[0].Probe != nil {
		return runWindowProbe(ctx, o, base, s[0].Sink, s[0].Config)
	}
	return runKafkaWindowed(ctx, o, base)
}

// runWindowProbe reads the sink's results through its WindowProbe. With
// exactly_once the probe reads the checkpoint with them; with
// at_least_once the group's offsets are read first.
func runWindowProbe(ctx context.Context, o Options, base []kgo.Opt, sink component.Sink, cfg component.Config) (Report, error) {
	spec := o.Spec
	dlqTopic := spec.DLQTopic()
	p, err := sink.Probe(cfg, component.SinkEnv{Connector: spec.Conf.Name, DLQTopic: dlqTopic})
	if err != nil {
		return Report{}, fmt.Errorf("%s sink: %w", sink.Name, err)
	}
	defer p.Close()
	probe, ok := p.(component.WindowProbe)
	if !ok {
		return Report{}, fmt.Errorf("verify cannot read window results from a %s sink (it registers no WindowProbe)", sink.Name)
	}
	exactlyOnce := spec.Conf.Guarantee != config.AtLeastOnce && !spec.TwoPhase
	var cp connector.Checkpoint
	if !exactlyOnce {
		if cp, err = checkpoint(ctx, o, base); err != nil {
			return Report{}, err
		}
	}
	snap, err := probe.Windows(ctx, spec.KafkaSrc.Group, exactlyOnce, cp, o.Stopped)
	if err != nil {
		return Report{}, fmt.Errorf("reading the %s sink: %w", sink.Name, err)
	}
	if exactlyOnce {
		cp = snap.Checkpoint
	}
	exp, err := recomputeWindowed(ctx, o, base, cp, snap.State)
	if err != nil {
		return Report{}, err
	}
	resultDest := func(r *connector.Record) string { return probe.Route(r, dlqTopic) }
	rep := exp.compare(snap.Outputs, windowCheck{cp: cp, stopped: o.Stopped, laterVisible: snap.LaterVisible,
		resultDest: resultDest,
		letterDest: func(*connector.Record) string { return snap.Letters },
	})
	rep.ApplyCountViolations = snap.ApplyCountViolations
	if ac, ok := probe.(component.ApplyCounter); ok && exp.spec.Emit == window.EmitFinal {
		// Each final result applied once, by the sink's own counters
		// (updates apply a window's result once per update).
		var ids []string
		for _, res := range exp.results {
			if res.closed {
				ids = append(ids, qualify(resultDest(res.record), res.record.EventID))
			}
		}
		n, err := ac.ApplyCountViolations(ctx, ids)
		if err != nil {
			return Report{}, err
		}
		rep.ApplyCountViolations += n
	}
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}

// runKafkaWindowed: results and dead letters are read from their topics
// with read_committed up to the last stable offsets, as for any Kafka
// sink; each result is compared with its key, value and timestamp.
func runKafkaWindowed(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	cp, err := checkpoint(ctx, o, base)
	if err != nil {
		return Report{}, err
	}
	state, err := sinkkafka.NewStateStore(base)
	if err != nil {
		return Report{}, err
	}
	defer state.Close()
	exp, err := recomputeWindowed(ctx, o, base, cp, state)
	if err != nil {
		return Report{}, err
	}
	sinkTopic := o.Spec.KafkaSink.Topic
	topics := map[string]bool{sinkTopic: true}
	if dlq := o.Spec.DLQTopic(); dlq != "" {
		topics[dlq] = true
	}
	if q := o.Spec.Conf.DeadLetterQueue; q != nil {
		topics[q.Topic] = true // late records, whatever errors.tolerance says
	}
	for _, r := range exp.letters {
		topics[r.Topic] = true
	}
	bound, err := stableBound(ctx, base, keys(topics))
	if err != nil {
		return Report{}, err
	}
	var actual []windowOutput
	err = readBelow(ctx, base, bound, func(r *kgo.Record) {
		out := windowOutput{Dest: r.Topic}
		var origin string
		for _, h := range r.Headers {
			switch h.Key {
			case sinkkafka.HeaderEventID:
				out.ID = string(h.Value)
			case sinkkafka.HeaderOrigin:
				origin = string(h.Value)
			}
		}
		if at, err := sinkkafka.OriginOf(out.ID, origin); err == nil {
			if o.foreign != nil && o.foreign(at) {
				return // the other stage's dead letter (runStages)
			}
			out.Origin = &at
		}
		if r.Topic == sinkTopic {
			out.Stored = &storedResult{Whole: r.Value, Key: r.Key, HasKey: true, TsMs: r.Timestamp.UnixMilli(), HasTs: true}
		}
		actual = append(actual, out)
	})
	if err != nil {
		return Report{}, err
	}
	rep := exp.compare(actual, windowCheck{cp: cp, stopped: o.Stopped, laterVisible: true,
		resultDest: func(*connector.Record) string { return sinkTopic },
		letterDest: func(r *connector.Record) string { return r.Topic },
	})
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}
