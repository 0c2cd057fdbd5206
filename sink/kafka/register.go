package kafka

import (
	"context"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// The Kafka sink registers itself as `type: kafka`; see package component.
// Its exactly-once output is produced by the Kafka commit protocols of
// package txn in the consumer's transaction (offsets in the transaction),
// so it has no Store; its Writer is the at-least-once leg of a fan-out.
func init() {
	component.RegisterSink(component.Sink{
		Name:        "kafka",
		Summary:     "A Kafka topic: exactly once by Kafka transactions with the input offsets in the transaction",
		NewConfig:   func() component.Config { return new(Config) },
		Kafka:       true,
		WindowState: true,
		// Kafka has no topic aliases: a promote can only say where
		// consumers should go.
		Replay: &component.Replay{
			Outputs: []component.VersionedField{{Field: "topic", Sep: "-v"}},
			Cutover: func(_ context.Context, cfg component.Config) (component.Switch, error) {
				t := cfg.(*Config).Topic
				return component.Switch{Sink: "kafka", To: t, Note: "Kafka has no topic aliases: point consumers at topic " + t}, nil
			},
		},
		Writer: func(cfg component.Config, env component.SinkEnv) connector.SinkWriter {
			return NewWriter(env.KafkaOpts, cfg.(*Config).Topic)
		},
		Fields: []component.Field{
			{Name: "topic", Type: "string", Required: true, Description: "Output topic of records no transform routed elsewhere."},
		},
	})
}
