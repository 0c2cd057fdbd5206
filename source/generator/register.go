package generator

import (
	"errors"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// Validate checks the config as New does (connectorName is not needed:
// the generator's origin derives from it when built).
func (c *Config) Validate(string) error { return c.validate() }

// The generator registers itself as `type: generator`; see package
// component. Its checkpoint is kept in the daemon's offsets topic.
func init() {
	component.RegisterSource(component.Source{
		Name:      "generator",
		Summary:   "Synthetic events at a given rate: the benchmark's and the demo's input, replayable from its checkpoint",
		NewConfig: func() component.SourceConfig { return new(Config) },
		New: func(cfg component.SourceConfig, name string) (connector.Source, error) {
			return New(name, *cfg.(*Config))
		},
		// A generator with a count ends there: its one partition's
		// checkpoint (in the offsets topic) reaches count.
		End: func(cfg component.SourceConfig, name string) (connector.Checkpoint, error) {
			if n := cfg.(*Config).Count; n > 0 {
				return connector.Checkpoint{{Topic: origin(name)}: n}, nil
			}
			return nil, errors.New("a generator without a count never ends; give the source a count (the job is count events)")
		},
		Fields: []component.Field{
			{Name: "count", Type: "int", Default: "0", Description: "Number of events to emit; 0 means unbounded."},
			{Name: "rate", Type: "float", Default: "0", Description: "Events per second; 0 means as fast as the connector reads."},
			{Name: "payload_bytes", Type: "int", Default: "100", Description: "Approximate size of each value in bytes."},
			{Name: "key_cardinality", Type: "int", Default: "1000", Description: "Number of distinct keys."},
			{Name: "seed", Type: "int", Default: "0", Description: "Varies keys and amounts deterministically; event IDs do not depend on it."},
		},
	})
}
