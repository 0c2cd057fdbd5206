package config

import (
	"testing"
	"time"
)

// TestBoundedDefaults: a bounded run's defaults replace commit.interval
// and batch.max.records only where the config left them out. A key
// written with the streaming default's own value is explicit too, and a
// transaction.timeout too short for the bounded interval keeps the
// streaming one. Connector bodies of the admin API say what they set
// alike.
func TestBoundedDefaults(t *testing.T) {
	cfg, err := Parse("bounded.yaml", []byte(`kafka:
  brokers: [localhost:9092]
connectors:
  - name: plain
    source: {type: kafka}
    sink: {type: kafka}
  - name: both
    commit.interval: 20ms
    batch.max.records: 200
    source: {type: kafka}
    sink: {type: kafka}
  - name: same-as-default
    commit.interval: 100ms
    source: {type: kafka}
    sink: {type: kafka}
  - name: short-txn
    transaction.timeout: 6s
    source: {type: kafka}
    sink: {type: kafka}
`))
	if err != nil {
		t.Fatal(err)
	}
	if DefaultBoundedCommitInterval+transactionSlack < 6*time.Second {
		t.Fatalf("short-txn's transaction.timeout (6s) must be too short for the bounded interval %s + %s", DefaultBoundedCommitInterval, transactionSlack)
	}
	type batching struct {
		interval time.Duration
		records  int
	}
	bounded := batching{DefaultBoundedCommitInterval, DefaultBoundedBatchMaxRecords}
	want := map[string]struct{ streaming, bounded batching }{
		"plain":           {batching{DefaultCommitInterval, DefaultBatchMaxRecords}, bounded},
		"both":            {batching{20 * time.Millisecond, 200}, batching{20 * time.Millisecond, 200}},
		"same-as-default": {batching{100 * time.Millisecond, DefaultBatchMaxRecords}, batching{100 * time.Millisecond, DefaultBoundedBatchMaxRecords}},
		"short-txn":       {batching{DefaultCommitInterval, DefaultBatchMaxRecords}, batching{DefaultCommitInterval, DefaultBoundedBatchMaxRecords}},
	}
	for _, c := range cfg.Connectors {
		w := want[c.Name]
		if got := (batching{c.CommitInterval.D(), c.BatchMaxRecords}); got != w.streaming {
			t.Errorf("%s as parsed: %+v, want %+v", c.Name, got, w.streaming)
		}
		c.BoundedDefaults()
		if got := (batching{c.CommitInterval.D(), c.BatchMaxRecords}); got != w.bounded {
			t.Errorf("%s in a bounded run: %+v, want %+v", c.Name, got, w.bounded)
		}
	}

	c, err := ParseConnector("body", []byte(`{"name": "api", "batch.max.records": 300, "source": {"type": "kafka"}, "sink": {"type": "kafka"}}`))
	if err != nil {
		t.Fatal(err)
	}
	c.BoundedDefaults()
	if c.CommitInterval.D() != DefaultBoundedCommitInterval || c.BatchMaxRecords != 300 {
		t.Errorf("admin API body in a bounded run: %s / %d, want %s / 300", c.CommitInterval, c.BatchMaxRecords, DefaultBoundedCommitInterval)
	}
}
