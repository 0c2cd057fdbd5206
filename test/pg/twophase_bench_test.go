package pg_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/test/testenv"
)

// BenchmarkTwoPhase prints what two-phase commit costs (issue 6): the
// drain rate of one exactly_once connector over the same pre-loaded input
// (benchTwoPhaseRecords records, 6 partitions, on the Kafka and PostgreSQL
// of `make services`) in three shapes:
//   - kafka: Kafka → Kafka (one Kafka transaction per batch);
//   - postgres: Kafka → PostgreSQL (rows and offsets in one database
//     transaction);
//   - two_phase: Kafka → Kafka and PostgreSQL (PREPARE, the Kafka
//     transaction with its decision, COMMIT PREPARED).
//
// Each iteration runs the three in turn, in a rotating order, each from the
// start of the input with a fresh group, output topic and database, so
// load from anything else on the machine falls on all three alike. Ratios
// of the rates are reported: two_phase/kafka and two_phase/postgres.
//
// Run: go test -run XXX -bench TwoPhase -benchtime 3x ./test/pg/
func BenchmarkTwoPhase(b *testing.B) {
	brokers := testenv.Kafka(b)
	const partitions = 6
	in := testenv.KafkaTopics(b, brokers, 1, partitions)[0]
	produceJSON(b, brokers, in, benchTwoPhaseRecords)

	shapes := []string{"kafka", "postgres", "two_phase"}
	spent := map[string]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		for k := range shapes {
			shape := shapes[(i+k)%len(shapes)]
			b.StopTimer()
			cfg := benchConfig(b, brokers, in, shape, i)
			b.StartTimer()
			spent[shape] += drain(b, cfg, benchTwoPhaseRecords)
		}
	}
	rate := func(s string) float64 { return float64(b.N*benchTwoPhaseRecords) / spent[s].Seconds() }
	for _, s := range shapes {
		b.ReportMetric(rate(s), s+"_records/s")
	}
	b.ReportMetric(rate("two_phase")/rate("kafka"), "two_phase/kafka")
	b.ReportMetric(rate("two_phase")/rate("postgres"), "two_phase/postgres")
}

// benchTwoPhaseRecords is the input of every run of BenchmarkTwoPhase.
const benchTwoPhaseRecords = 100_000

// benchConfig is the connector of one shape, reading in from the start.
func benchConfig(b *testing.B, brokers []string, in, shape string, run int) *config.Config {
	b.Helper()
	out := testenv.KafkaTopics(b, brokers, 1, 6)[0]
	kafka := "\t\t\ttype: kafka\n\t\t\ttopic: " + out
	pg := strings.Join([]string{
		"type: postgres",
		"dsn: " + testenv.Postgres(b),
		"table: events",
		"auto_create: true",
		"columns:",
		"\tamount: json:amount::numeric",
		"\ti: json:i::bigint",
		"\tsrc_offset: offset",
	}, "\n\t\t\t")
	var sinks string
	switch shape {
	case "kafka":
		sinks = "\t\tsink:\n" + kafka
	case "postgres":
		sinks = "\t\tsink:\n\t\t\t" + pg
	case "two_phase":
		sinks = "\t\tsinks:\n\t\t\t- " + strings.TrimPrefix(strings.ReplaceAll(kafka, "\n\t\t\t", "\n\t\t\t\t"), "\t\t\t") +
			"\n\t\t\t- " + strings.ReplaceAll(pg, "\n\t\t\t", "\n\t\t\t\t")
	}
	yaml := fmt.Sprintf(`
kafka:
	brokers: [%q]
connectors:
	- name: bench
		guarantee: exactly_once
		commit.interval: 100ms
		event_id: {from: header}
		source:
			type: kafka
			topics: [%s]
			group: bench-%s-%d-%d
%s
`, strings.Join(brokers, ","), in, shape, run, time.Now().UnixNano(), sinks)
	cfg, err := config.Parse("bench.yaml", []byte(strings.ReplaceAll(yaml, "\t", "  ")))
	if err != nil {
		b.Fatalf("config:\n%v\n%s", err, yaml)
	}
	cfg.InstanceID = fmt.Sprintf("bench-%s-%d", shape, run)
	return cfg
}

// drain runs cfg's connector until it has committed n input records and
// returns how long that took from the daemon's start.
func drain(b *testing.B, cfg *config.Config, n int) time.Duration {
	b.Helper()
	d, err := daemon.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Stop()
	deadline := start.Add(5 * time.Minute)
	for {
		st, ok := d.Status("bench")
		if ok && st.RecordsIn >= uint64(n) {
			return time.Since(start)
		}
		if ok && st.Error != "" {
			b.Fatalf("connector failed: %s", st.Error)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d records after 5 minutes", st.RecordsIn, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// produceJSON writes n records with event-id headers and JSON values.
func produceJSON(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	cl := testenv.KafkaClient(b, brokers, kgo.ProducerLinger(5*time.Millisecond))
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, &kgo.Record{
			Topic:   topic,
			Key:     fmt.Appendf(nil, "k-%d", i%97),
			Value:   fmt.Appendf(nil, `{"i":%d,"amount":%d.5,"pad":"%s"}`, i, i%1000, strings.Repeat("x", 40)),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
		})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
}
