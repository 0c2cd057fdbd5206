package verify

import (
	"context"
	"fmt"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
)

// runStages checks a connector that repartitions (pipeline.Spec.Stages)
// stage by stage, each as the connector it is:
//
//   - repartition, a Kafka → Kafka exactly_once connector: every input
//     record below the group's checkpoint is in the repartition topic (or
//     the dead-letter topic) once, recomputed with its own Processor;
//   - window, with the batch oracle: its input is the repartition topic
//     below the window group's checkpoint, and the oracle groups by the key
//     expression read from each record's value (CheckStages), not by the
//     record key the stage groups by, so a record stage 1 keyed wrongly
//     shows as a result that differs.
//
// The oracle reads the repartition topic rather than the connector's
// input because the stage's results are a function of that log: a
// record's lateness is decided against its repartition partition's
// watermark, and that partition interleaves the upstream partitions in
// the order their transactions committed.
//
// Both stages write late and failed records to the connector's dead-letter
// topic, so with a Kafka sink each stage leaves the other's out by origin:
// stage 2's dead letters come from the repartition topic, stage 1's from
// the input.
func runStages(ctx context.Context, o Options) (Report, error) {
	rep, win := o.Spec.CheckStages()
	repTopic := rep.KafkaSink.Topic
	stages := []struct {
		spec    *pipeline.Spec
		foreign func(connector.Origin) bool
	}{
		{rep, func(at connector.Origin) bool { return at.Topic == repTopic }},
		{win, func(at connector.Origin) bool { return at.Topic != repTopic }},
	}
	var total Report
	for _, st := range stages {
		sub := o
		sub.Spec, sub.foreign = st.spec, st.foreign
		r, err := Run(ctx, sub)
		if err != nil {
			return Report{}, fmt.Errorf("%s stage: %w", st.spec.Stage, err)
		}
		r.Sink = st.spec.Stage + " stage"
		total = total.add(r)
		total.Sinks = append(total.Sinks, r)
	}
	return total, nil
}
