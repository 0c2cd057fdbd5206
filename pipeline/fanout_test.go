package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/connectd/connectd/config"
	sinkpg "github.com/connectd/connectd/sink/postgres"
)

// fanoutConfigs: a good two-phase connector, then one problem per
// connector, each positioned at the sink or source it is about.
const fanoutConfigs = `kafka:
  brokers: [localhost:9092]
connectors:
  - name: good
    source: {type: kafka, topics: [in]}
    sinks:
      - {type: kafka, topic: out}
      - {type: postgres, dsn: "postgres://x@h/db", table: t}
  - name: redis-in-2pc
    source: {type: kafka, topics: [in]}
    sinks:
      - {type: postgres, dsn: "postgres://x@h/db", table: t}
      - {type: redis, addr: "h:6379", key: "k:{event_id}"}
  - name: two-kafka
    source: {type: kafka, topics: [in]}
    sinks:
      - {type: kafka, topic: a}
      - {type: kafka, topic: b}
  - name: generator-source
    source: {type: generator, rate: 10}
    sinks:
      - {type: kafka, topic: a}
      - {type: postgres, dsn: "postgres://x@h/db", table: t}
  - name: one-sink
    source: {type: kafka, topics: [in]}
    sinks:
      - {type: kafka, topic: a}
  - name: redis-alo
    guarantee: at_least_once
    source: {type: kafka, topics: [in]}
    sinks:
      - {type: kafka, topic: out}
      - {type: redis, addr: "h:6379", key: "k:{event_id}"}
`

func TestDecodeFanout(t *testing.T) {
	cfg, err := config.Parse("f.yaml", []byte(fanoutConfigs))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	if !spec.Fanout() || len(spec.Sinks) != 2 || spec.Sinks[0].Name != "kafka" || spec.Sinks[1].Name != "postgres" ||
		spec.KafkaSink.Topic != "out" {
		t.Fatalf("fan-out spec %+v", spec)
	}
	if ids := spec.KafkaTransactionalIDs(Env{InstanceID: "i"}); len(ids) != 1 || ids[0] != "connectd-good-i" {
		t.Errorf("a two-phase connector commits through Kafka transactions; KafkaTransactionalIDs = %q", ids)
	}
	pg := spec.Sink(1)
	if _, ok := SinkConfig[*sinkpg.Config](pg); !ok || !pg.TwoPhase || pg.Fanout() || len(pg.Sinks) != 1 {
		t.Errorf("Sink(1) = %+v, want the postgres sink alone, two-phase", pg)
	}
	if _, err := Decode(cfg.Connectors[5]); err != nil {
		t.Errorf("at_least_once may fan out to redis: %v", err)
	}

	for i, want := range map[int]string{
		1: "f.yaml:13:10: sinks[1]: redis cannot prepare a transaction",
		2: "f.yaml:18:10: sinks[1]: a connector may have one kafka sink",
		3: "f.yaml:20:14: sinks: several sinks need a kafka source",
		4: "f.yaml:27:10: sinks: lists one sink; write it as sink: instead",
	} {
		_, err := Decode(cfg.Connectors[i])
		var ces config.Errors
		if !errors.As(err, &ces) || !strings.Contains(err.Error(), want) {
			t.Errorf("connector %s: got %v, want %q", cfg.Connectors[i].Name, err, want)
		}
	}
}
