package files

import (
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/config"
)

// TestDecodeYAML decodes a sink section the way the registry does
// (config.Component.Decode, strict): nested sections, a size with a unit,
// a duration, a bool default overridden; an unknown key is an error at
// its line.
func TestDecodeYAML(t *testing.T) {
	cc, _ := config.ParseConnector("c.yaml", []byte(`
name: orders
source: {type: kafka, topics: [orders]}
sink:
  type: files
  path: /data/orders
  format: jsonl
  partition_by: {time: "json:created_at", layout: "day=2006-01-02", field: "json:country"}
  roll: {max_bytes: 64MiB, max_interval: 90s}
  columns: {total: "json:total::double"}
  fsync: false
`))
	if cc == nil {
		t.Fatal("the connector did not parse")
	}
	var cfg Config
	if err := cc.Sink.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Path != "/data/orders" || cfg.Format != FormatJSONL || cfg.PartitionBy.Layout != "day=2006-01-02" ||
		cfg.dirKey != "country" || cfg.Roll.MaxBytes != 64<<20 || cfg.Roll.MaxInterval != 90*time.Second ||
		cfg.fsync() || len(cfg.cols) != 1 || cfg.cols[0].typ != TypeDouble {
		t.Errorf("decoded %+v", cfg)
	}
	cc, _ = config.ParseConnector("c.yaml", []byte(`
name: orders
source: {type: kafka, topics: [orders]}
sink:
  type: files
  path: /data/orders
  roll: {max_rows: 10}
`))
	err := cc.Sink.Decode(new(Config))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7:") || !strings.Contains(err.Error(), "max_rows") {
		t.Errorf("unknown key: %v, want an error at c.yaml:7 naming max_rows", err)
	}
}
