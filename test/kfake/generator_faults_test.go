package kfake_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/txn"
)

const genYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: gen
		guarantee: GUARANTEE
		commit.interval: 50ms
		batch.max.records: 500
		transaction.timeout: 10s
		source: {type: generator, count: 20000, key_cardinality: 100}
		sink: {type: kafka, topic: out}
`

// A non-Kafka source writing to Kafka keeps its checkpoint in the compacted
// offsets topic inside the producer transaction. Under produce faults on the
// output and on the offsets topic, end-transaction faults (including a
// commit applied but answered REQUEST_TIMED_OUT) and a restart mid-stream,
// exactly_once stays exact and at_least_once loses nothing.
func TestGeneratorToKafkaUnderFaults(t *testing.T) {
	for _, guarantee := range []string{"exactly_once", "at_least_once"} {
		t.Run(guarantee, func(t *testing.T) {
			c := newCluster(t)
			cfg := parse(t, c, strings.ReplaceAll(genYAML, "GUARANTEE", guarantee))
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: txn.DefaultOffsetsTopic, Err: kerr.UnknownServerError, Count: 3})
			faults := e2e.Inject(c, faultSet, 7, 0.05)
			a := startDaemon(t, cfg, "a")
			waitExpected(t, c, cfg, "gen", 8000, 2*time.Minute)
			a.Stop()
			startDaemon(t, cfg, "a")
			waitExpected(t, c, cfg, "gen", 16000, 2*time.Minute)
			hits, summary := faults.Stop()
			rep := waitExpected(t, c, cfg, "gen", 20000, 2*time.Minute)
			t.Logf("%d requests faulted: %s", hits, summary)
			if hits == 0 {
				t.Fatal("no fault fired")
			}
			if guarantee == "exactly_once" {
				must(t, rep, "generator exactly_once under faults")
				return
			}
			t.Logf("generator at_least_once under faults: %s", rep)
			if rep.Missing != 0 || rep.Unexpected != 0 {
				t.Fatalf("at_least_once lost records: %s", rep)
			}
		})
	}
}
