package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

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
		admin := New(cfg, Options{Connector: "sinktest", DLQTopic: dlqTopic, ExactlyOnce: true})
		t.Cleanup(admin.Close)
		return sinktest.Harness{
			// The row's claim_epoch, keeping next_offset (-1: none).
			SetEpoch: func(group string, tp connector.TopicPartition, epoch int64) {
				ctx := context.Background()
				p, err := admin.Pool(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Exec(ctx, "INSERT INTO "+admin.sql.offsets+" (group_id, topic, partition, next_offset, claim_epoch, updated_at)"+
					" VALUES ($1, $2, $3, -1, $4, now()) ON CONFLICT (group_id, topic, partition) DO UPDATE SET claim_epoch = excluded.claim_epoch",
					group, tp.Topic, tp.Partition, epoch); err != nil {
					t.Fatal(err)
				}
			},
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

// TestParticipantConformance runs the two-phase participant table against
// PostgreSQL's prepared transactions, a fresh database per property; the
// visible output is the table's rows, each as many times as applied.
func TestParticipantConformance(t *testing.T) {
	sinktest.Participant(t, func(t *testing.T) sinktest.ParticipantHarness {
		cfg := testConfig(testenv.Postgres(t))
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		o := Options{Connector: "sinktest", ExactlyOnce: true, TwoPhase: true}
		reader := New(cfg, o)
		t.Cleanup(reader.Close)
		return sinktest.ParticipantHarness{
			Open: func() connector.Participant { return New(cfg, o) },
			Visible: func() []string {
				ctx := context.Background()
				p, err := reader.Pool(ctx)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := p.Query(ctx, "SELECT event_id, apply_count FROM "+reader.sql.table)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				var id string
				var n int
				if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
					for range n {
						ids = append(ids, id)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return ids
			},
		}
	})
}
