package files

import (
	"testing"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/sink/sinktest"
)

// TestConformance runs the exactly-once store conformance suite against
// the file sink, a fresh directory per property, read back through the
// registered probe (each row once per copy, so a double application shows).
func TestConformance(t *testing.T) {
	sinktest.Store(t, func(t *testing.T, dlqTopic string) sinktest.Harness {
		// A json: column makes a value that is not JSON unwritable: with
		// errors.tolerance none the batch fails.
		cfg := Config{Path: t.TempDir(), Columns: map[string]string{"i": "json:i::int64"}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		sk, _ := component.LookupSink("files")
		env := component.SinkEnv{Connector: "sinktest", DLQTopic: dlqTopic}
		probe, err := sk.Probe(&cfg, env)
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Harness{
			Open:  func() sinktest.SinkStore { return sk.Store(&cfg, env).(*Store) },
			Probe: probe,
			Refused: func(n int64) *connector.Record {
				r := sinktest.Record(connector.TopicPartition{Topic: "in"}, n)
				r.Value = []byte("{broken")
				return r
			},
		}
	})
}
