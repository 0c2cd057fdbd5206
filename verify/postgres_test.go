package verify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

// These tests need the PostgreSQL of `make services`; Kafka is in-process.

// pgYAML copies topic in to the events table with the apply counter on;
// the set transform fails on the non-JSON poison inputs, which go to the
// dead-letter table.
const pgYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		guarantee: GUARANTEE
		commit.interval: 50ms
		batch.max.records: 400
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {copied: true}
		sink:
			type: postgres
			dsn: DSN
			table: events
			auto_create: true
			test_apply_counter: true
			columns:
				amount: json:amount::bigint
				src_topic: topic
				src_partition: partition
				src_offset: offset
`

// poison is the number of non-JSON inputs, written last to in/1.
const poison = 5

// TestPostgresDeadLetterAppliedTwice: a dead letter applied a second time
// raises its apply counter, which verify counts; so does a partition the
// connector never committed, whose rows an exactly_once check otherwise
// counts only as unexpected.
func TestPostgresDeadLetterAppliedTwice(t *testing.T) {
	dsn := testenv.Postgres(t) // first: skips under -short
	c, cfg, n, conn := cleanPostgresRun(t, dsn, "exactly_once")
	ctx := context.Background()

	// The second application of a dead letter, as the sink's own
	// ON CONFLICT clause performs it.
	if tag, err := conn.Exec(ctx, "UPDATE events_dlq SET apply_count = apply_count + 1 WHERE event_id = 'poison-0'"); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("applying poison-0 again: %v (%s)", err, tag)
	}
	for _, stopped := range []bool{false, true} {
		rep := check(t, c, cfg, stopped)
		if want := (verify.Report{Expected: n, Actual: n, ApplyCountViolations: 1}); !sameCounts(rep, want) || rep.Clean() {
			t.Fatalf("stopped=%v, dead letter applied twice: %s, want %s", stopped, rep, want)
		}
	}

	// The checkpoint row of in/3 gone, as if never committed.
	var held int
	if err := conn.QueryRow(ctx, "DELETE FROM connectd_offsets WHERE topic = 'in' AND partition = 3 RETURNING next_offset").Scan(&held); err != nil {
		t.Fatalf("deleting the checkpoint of in/3: %v", err)
	}
	rep := check(t, c, cfg, true)
	want := verify.Report{Expected: n - held, Actual: n, Unexpected: held, ApplyCountViolations: 1,
		UncheckedPartitions: 1, UncheckedPartitionIDs: []string{fmt.Sprintf("in/3: offsets 0 to %d", held-1)}}
	if !sameCounts(rep, want) {
		t.Fatalf("partition never committed: %s, want %s", rep, want)
	}
	t.Logf("after both mutations: %s", rep)
}

// TestPostgresRowsBeyondTheCheckpoint: at_least_once rows and dead letters
// orphaned by a checkpoint moved back are left out of a running
// pipeline's check and unexpected in a stopped one's; resumed from there,
// the connector writes them again: the rows show as duplicates, and the
// dead letters, keyed on their event ID, by their apply counters.
func TestPostgresRowsBeyondTheCheckpoint(t *testing.T) {
	dsn := testenv.Postgres(t)
	c, cfg, n, _ := cleanPostgresRun(t, dsn, "at_least_once")
	cp := groupOffsets(t, c)
	const k = 20 // the last k records of in/1, the poison among them
	commitOffset(t, c, in1, cp[in1]-k)

	live, stopped := check(t, c, cfg, false), check(t, c, cfg, true)
	if !live.Clean() || live.Expected != n-k {
		t.Fatalf("running-pipeline check after the regression: %s, want clean over %d", live, n-k)
	}
	if want := (verify.Report{Expected: n - k, Actual: n, Unexpected: k, BeyondCheckpoint: k}); !sameCounts(stopped, want) || stopped.Clean() {
		t.Fatalf("regressed checkpoint, --stopped: %s, want %s", stopped, want)
	}

	d := e2e.Start(t, cfg, "b")
	waitFor(t, "the resumed connector to commit in/1 again", func() bool { return groupOffsets(t, c)[in1] == cp[in1] })
	d.Stop()
	rep := check(t, c, cfg, true)
	if want := (verify.Report{Expected: n, Actual: n + k - poison, Duplicates: k - poison, ApplyCountViolations: poison}); !sameCounts(rep, want) {
		t.Fatalf("after the replay: %s, want %s", rep, want)
	}
	t.Logf("orphans: %s; replayed: %s", stopped, rep)
}

// cleanPostgresRun copies 2,000 records and the poison through a real
// connector into a fresh database, stops it, and checks it clean both
// ways. It returns the cluster, the config, the number of expected
// outputs (rows and dead letters) and a connection to the database.
func cleanPostgresRun(t *testing.T, dsn, guarantee string) (*kfake.Cluster, *config.Config, int, *pgx.Conn) {
	t.Helper()
	const records = 2000
	n := records + poison
	c := e2e.Cluster(t)
	e2e.Produce(t, c, "in", 0, records)
	producePoison(t, c)
	cfg := e2e.Parse(t, c, pgYAML, "GUARANTEE", guarantee, "DSN", dsn)
	d := e2e.Start(t, cfg, "a")
	e2e.WaitExpected(t, c, cfg, "copy", n, time.Minute)
	d.Stop()
	for _, stopped := range []bool{false, true} {
		if rep := check(t, c, cfg, stopped); !rep.Clean() || rep.Expected != n || rep.Actual != n {
			t.Fatalf("stopped=%v: the clean run checks %s, want %d exactly once", stopped, rep, n)
		}
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var dead int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM events_dlq WHERE apply_count = 1").Scan(&dead); err != nil || dead != poison {
		t.Fatalf("%d dead letters applied once (%v), want %d", dead, err, poison)
	}
	return c, cfg, n, conn
}

// producePoison appends poison non-JSON records ("poison-<i>") to in/1.
func producePoison(t *testing.T, c *kfake.Cluster) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range poison {
		r := &kgo.Record{Topic: "in", Partition: in1.Partition, Value: []byte("not json"),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "poison-%d", i)}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
