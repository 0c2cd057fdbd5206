package kappa

import (
	"context"
	"fmt"

	"github.com/connectd/connectd/pipeline"
	sinkpg "github.com/connectd/connectd/sink/postgres"
	sinkredis "github.com/connectd/connectd/sink/redis"

	"github.com/jackc/pgx/v5"
)

// Switch is what a promote did for the readers of one sink.
type Switch struct {
	Sink string `json:"sink"` // kafka, postgres or redis
	// Readers is what readers use: a PostgreSQL view, a Redis prefix
	// key; empty for a Kafka topic (Kafka has no aliases).
	Readers string `json:"readers,omitempty"`
	// From is what Readers named before (the live connector's output),
	// To what it names now (the shadow's).
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Switched says whether readers were moved; when false, Note says
	// what the operator has to do.
	Switched bool   `json:"switched"`
	Note     string `json:"note,omitempty"`
}

// Cutover switches the readers of every sink of shadow to shadow's outputs:
// a PostgreSQL view is redefined over the shadow's table in one
// transaction, a Redis prefix key is swapped in one script; a Kafka topic is
// only reported. Each switch is idempotent, so a promote interrupted by a
// crash is done again from the start. It stops at the first failure: the
// switches made so far stay (the next attempt makes them again, harmlessly).
func Cutover(ctx context.Context, shadow *pipeline.Spec) ([]Switch, error) {
	var out []Switch
	for _, s := range sinksOf(shadow) {
		sw, err := cutover(ctx, s)
		if err != nil {
			return out, err
		}
		out = append(out, sw)
	}
	return out, nil
}

func cutover(ctx context.Context, s pipeline.SinkSpec) (Switch, error) {
	switch {
	case s.Postgres != nil:
		c := s.Postgres
		sw := Switch{Sink: "postgres", Readers: c.View, To: c.Table}
		if c.View == "" {
			sw.Note = "the sink has no view: point readers at table " + c.Table
			return sw, nil
		}
		conn, err := pgx.Connect(ctx, c.DSN)
		if err != nil {
			return sw, fmt.Errorf("promote: postgres view %s: %w", c.View, err)
		}
		defer conn.Close(context.Background())
		if sw.From, err = sinkpg.PointView(ctx, conn, c.View, c.Table); err != nil {
			return sw, fmt.Errorf("promote: postgres view %s: %w", c.View, err)
		}
		sw.Switched = true
		return sw, nil
	case s.Redis != nil:
		c := s.Redis
		sw := Switch{Sink: "redis", Readers: c.PrefixKey, To: c.KeyPrefix}
		if c.PrefixKey == "" {
			sw.Note = "the sink has no prefix_key: point readers at key prefix " + c.KeyPrefix
			return sw, nil
		}
		var err error
		if sw.From, err = sinkredis.SwapPrefix(ctx, *c, c.KeyPrefix); err != nil {
			return sw, fmt.Errorf("promote: %w", err)
		}
		sw.Switched = true
		return sw, nil
	default:
		return Switch{Sink: "kafka", To: s.Kafka.Topic,
			Note: "Kafka has no topic aliases: point consumers at topic " + s.Kafka.Topic}, nil
	}
}

// sinksOf lists a connector's sinks, one or several.
func sinksOf(s *pipeline.Spec) []pipeline.SinkSpec {
	if len(s.Fanout) > 0 {
		return s.Fanout
	}
	switch {
	case s.Postgres != nil:
		return []pipeline.SinkSpec{{Postgres: s.Postgres}}
	case s.Redis != nil:
		return []pipeline.SinkSpec{{Redis: s.Redis}}
	}
	k := s.KafkaSink
	if k.Topic == "" {
		k.Topic = s.OutputTopic
	}
	return []pipeline.SinkSpec{{Kafka: &k}}
}
