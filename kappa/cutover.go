package kappa

import (
	"context"
	"fmt"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/pipeline"
)

// Switch is what a promote did for the readers of one sink.
type Switch = component.Switch

// Cutover switches the readers of every sink of shadow to shadow's outputs:
// a PostgreSQL view is redefined over the shadow's table in one
// transaction, a Redis prefix key is swapped in one script; a Kafka topic is
// only reported. Each switch is idempotent, so a promote interrupted by a
// crash is done again from the start. It stops at the first failure: the
// switches made so far stay (the next attempt makes them again, harmlessly).
func Cutover(ctx context.Context, shadow *pipeline.Spec) ([]Switch, error) {
	var out []Switch
	for _, s := range shadow.Sinks {
		sw, err := cutover(ctx, s)
		if err != nil {
			return out, err
		}
		out = append(out, sw)
	}
	return out, nil
}

func cutover(ctx context.Context, s pipeline.SinkInstance) (Switch, error) {
	if s.Replay == nil {
		return Switch{Sink: s.Name}, fmt.Errorf("promote: the %s sink has no versioned output", s.Name)
	}
	return s.Replay.Cutover(ctx, s.Config)
}
