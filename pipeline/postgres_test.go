package pipeline

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/config"
	sinkpg "github.com/connectd/connectd/sink/postgres"
)

const postgresConfigs = `kafka:
  brokers: [localhost:9092]
connectors:
  - name: good
    errors.tolerance: all
    dead_letter_queue: {topic: dlq}
    source: {type: kafka, topics: [in]}
    sink:
      type: postgres
      dsn: postgres://u:p@localhost/db
      table: s.events
      columns: {amount: "json:amount::bigint"}
  - name: generator-source
    source: {type: generator, count: 10}
    sink: {type: postgres, dsn: "postgres://u:p@localhost/db", table: t}
  - name: bad-fields
    source: {type: kafka, topics: [in]}
    sink:
      type: postgres
      dsn: postgres://u:p@localhost/db
      table: t
      conflict: sometimes
`

func TestDecodePostgresSink(t *testing.T) {
	cfg, err := config.Parse("pg.yaml", []byte(postgresConfigs))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	if pg, ok := SinkConfig[*sinkpg.Config](s); !ok || pg.DLQTable != "s.events_dlq" || s.DLQTopic() != "dlq" || pg.BatchSize != 5000 {
		t.Fatalf("decoded %+v, dlq topic %q", pg, s.DLQTopic())
	}
	for i, want := range map[int]string{
		1: "pg.yaml:15:12: postgres sink: needs a kafka source",
		2: "pg.yaml:22:7: postgres sink: conflict:",
	} {
		_, err := Decode(cfg.Connectors[i])
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("connector %d: got %v, want %q", i, err, want)
		}
	}
}
