package files

import (
	"os"
	"path/filepath"
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
			Open: func() sinktest.SinkStore { return sk.Store(&cfg, env).(*Store) },
			// The manifest's epoch of the partition, keeping its checkpoint.
			SetEpoch: func(group string, tp connector.TopicPartition, epoch int64) {
				rel := manifestPath(groupKey(group))
				m, err := readManifest(cfg.Path, rel)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(cfg.Path, filepath.Dir(rel)), 0o755); err != nil {
					t.Fatal(err)
				}
				m.Seq++
				m.partOrNew(tp).Epoch = epoch
				if _, err := writeManifest(cfg.Path, rel, m, false, nil); err != nil {
					t.Fatal(err)
				}
			},
			Probe: probe,
			Refused: func(n int64) *connector.Record {
				r := sinktest.Record(connector.TopicPartition{Topic: "in"}, n)
				r.Value = []byte("{broken")
				return r
			},
		}
	})
}
