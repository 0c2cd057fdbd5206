package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

func TestDeadLetterStatements(t *testing.T) {
	for _, counter := range []bool{false, true} {
		c := mustConfig(t, Config{Table: "s.events", TestApplyCounter: counter})
		create, insert := dlqStatements(c, ident(c.DLQTable))
		if !strings.HasPrefix(create, `CREATE TABLE IF NOT EXISTS "s"."events_dlq" (event_id text PRIMARY KEY`) {
			t.Fatalf("create: %s", create)
		}
		wantConflict, hasColumn := "ON CONFLICT (event_id) DO NOTHING", false
		if counter {
			wantConflict, hasColumn = "ON CONFLICT (event_id) DO UPDATE SET apply_count = t.apply_count + 1", true
		}
		if !strings.HasSuffix(insert, wantConflict) {
			t.Errorf("counter %v: insert ends %q, want %q", counter, insert[max(0, len(insert)-70):], wantConflict)
		}
		if got := strings.Contains(create, "apply_count int NOT NULL DEFAULT 1"); got != hasColumn {
			t.Errorf("counter %v: create has apply_count = %v:\n%s", counter, got, create)
		}
	}
}

// A dead letter written twice, through the exactly_once commit (the same
// records at an unchanged checkpoint) and through at_least_once's plain
// write, stays one row whose apply_count shows 2: the replay an ON
// CONFLICT DO NOTHING would hide.
func TestDeadLetterApplyCounterCountsReapplication(t *testing.T) {
	dead := func() []*connector.Record {
		batch := recs(p0, 0, 4)
		batch[1].Topic = "dlq" // dead-lettered by the pipeline
		batch[2].Value = []byte("not json")
		return batch
	}
	t.Run("exactly_once", func(t *testing.T) {
		s, conn := newTestStore(t, testConfig(testenv.Postgres(t)), Options{ExactlyOnce: true, DLQTopic: "dlq"})
		ctx := context.Background()
		claims, err := s.Claim(ctx, "g", []connector.TopicPartition{p0})
		if err != nil {
			t.Fatal(err)
		}
		epochs := map[connector.TopicPartition]int64{p0: claims[p0].Epoch}
		if err := s.Commit(ctx, "g", epochs, dead(), nil, connector.Checkpoint{p0: 4}); err != nil {
			t.Fatal(err)
		}
		if n := count(t, conn, "SELECT count(*) FROM events_dlq WHERE apply_count = 1"); n != 2 {
			t.Fatalf("%d dead letters applied once, want 2", n)
		}
		if err := s.Commit(ctx, "g", epochs, dead(), connector.Checkpoint{p0: 4}, connector.Checkpoint{p0: 4}); err != nil {
			t.Fatal(err)
		}
		if n := count(t, conn, "SELECT count(*) FROM events_dlq WHERE apply_count = 2"); n != 2 {
			t.Fatalf("%d dead letters show apply_count 2 after the replay, want 2", n)
		}
	})
	t.Run("at_least_once", func(t *testing.T) {
		s, conn := newTestStore(t, testConfig(testenv.Postgres(t)), Options{DLQTopic: "dlq"})
		ctx := context.Background()
		for range 2 {
			if err := s.WriteBatch(ctx, dead()); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, conn, "SELECT count(*) FROM events_dlq WHERE apply_count = 2"); n != 2 {
			t.Fatalf("%d dead letters show apply_count 2 after the batch was written twice, want 2", n)
		}
		if n := count(t, conn, "SELECT count(*) FROM events_dlq"); n != 2 {
			t.Fatalf("%d dead-letter rows, want 2 (keyed on the event ID)", n)
		}
	})
}
