package postgres

import (
	"testing"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/sink/sinktest"
	"github.com/connectd/connectd/test/testenv"
)

// TestConformance runs the exactly-once store conformance suite against
// PostgreSQL, a fresh database per property, read back through the sink's
// registered probe (apply counters on, so a double application shows).
func TestConformance(t *testing.T) {
	sinktest.Store(t, func(t *testing.T, dlqTopic string) sinktest.Harness {
		cfg := testConfig(testenv.Postgres(t))
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		sk, _ := component.LookupSink("postgres")
		probe, err := sk.Probe(&cfg, component.SinkEnv{Connector: "sinktest", DLQTopic: dlqTopic})
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Harness{
			Open: func() sinktest.SinkStore {
				return New(cfg, Options{Connector: "sinktest", DLQTopic: dlqTopic, ExactlyOnce: true})
			},
			Probe: probe,
			// A value that is not JSON cannot fill the json: column: with
			// errors.tolerance none the batch fails.
			Refused: func(n int64) *connector.Record {
				r := sinktest.Record(connector.TopicPartition{Topic: "in"}, n)
				r.Value = []byte("{broken")
				return r
			},
		}
	})
}
