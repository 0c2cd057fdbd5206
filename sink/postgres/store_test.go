package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/txn"
)

// These tests need the PostgreSQL of `make services` (PG_DSN); each gets a
// fresh database.

var (
	p0 = connector.TopicPartition{Topic: "in", Partition: 0}
	p1 = connector.TopicPartition{Topic: "in", Partition: 1}
)

func testConfig(dsn string) Config {
	return Config{
		DSN:              dsn,
		Table:            "events",
		AutoCreate:       true,
		TestApplyCounter: true,
		Columns: map[string]string{
			"amount": "json:amount::bigint",
			"body":   "value",
			"k":      "key",
			"src":    "offset",
		},
	}
}

func newTestStore(t *testing.T, cfg Config, o Options) (*Store, *pgx.Conn) {
	t.Helper()
	s := New(cfg, o)
	t.Cleanup(s.Close)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return s, conn
}

// recs returns records from..to-1 of partition tp, event IDs "e-<i>".
func recs(tp connector.TopicPartition, from, to int) []*connector.Record {
	var out []*connector.Record
	for i := from; i < to; i++ {
		out = append(out, &connector.Record{
			Key:       fmt.Appendf(nil, "k-%d", i),
			Value:     fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i*10),
			EventID:   fmt.Sprintf("e-%d-%d", tp.Partition, i),
			Origin:    connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: int64(i)},
			Timestamp: time.UnixMilli(int64(1700000000000 + i)),
		})
	}
	return out
}

func count(t *testing.T, conn *pgx.Conn, query string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func wantKind(t *testing.T, err error, kind connector.CommitErrorKind, what string) {
	t.Helper()
	if err == nil || connector.KindOf(err) != kind {
		t.Fatalf("%s: got %v, want a %s error", what, err, kind)
	}
	t.Logf("%s: %v", what, err)
}

// A table made before claim epochs (a "generation" column) is migrated by
// auto_create: the column is renamed, the checkpoints are kept and the old
// generation is the epoch the next claim raises.
func TestOffsetsTableFromGenerationsMigrated(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE connectd_offsets (group_id text NOT NULL, topic text NOT NULL,"+
		" partition int NOT NULL, next_offset bigint NOT NULL, generation int NOT NULL,"+
		" updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (group_id, topic, partition));"+
		" INSERT INTO connectd_offsets VALUES ('g', 'in', 0, 42, 7, now())"); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestStore(t, testConfig(dsn), Options{ExactlyOnce: true})
	claims, err := s.Claim(ctx, "g", []connector.TopicPartition{p0})
	if err != nil || claims[p0] != (txn.PartitionClaim{Epoch: 8, Next: 42}) {
		t.Fatalf("claim on a migrated table: %v %v, want epoch 8, next 42", claims, err)
	}
	if err := s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 8}, recs(p0, 42, 45), connector.Checkpoint{p0: 42}, connector.Checkpoint{p0: 45}); err != nil {
		t.Fatal(err)
	}
}

func TestApplyCounterCountsReapplication(t *testing.T) {
	for _, conflict := range []string{DoNothing, DoUpdate} {
		for _, copyPath := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/copy=%v", conflict, copyPath), func(t *testing.T) {
				cfg := testConfig(testenv.Postgres(t))
				cfg.Conflict = conflict
				s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
				if copyPath {
					s.CopyThreshold = 1
				}
				ctx := context.Background()
				if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
					t.Fatal(err)
				}
				gens := map[connector.TopicPartition]int64{p0: 1}
				if err := s.Commit(ctx, "g", gens, recs(p0, 0, 10), nil, connector.Checkpoint{p0: 10}); err != nil {
					t.Fatal(err)
				}
				again := recs(p0, 5, 10)
				for _, r := range again {
					r.Value = []byte(`{"amount":7}`)
				}
				// The same rows again (the checkpoint moves 10 -> 10): a
				// double application the counter must show.
				if err := s.Commit(ctx, "g", gens, again, connector.Checkpoint{p0: 10}, connector.Checkpoint{p0: 10}); err != nil {
					t.Fatal(err)
				}
				if n := count(t, conn, "SELECT count(*) FROM events WHERE apply_count = 2"); n != 5 {
					t.Fatalf("%d rows with apply_count 2, want 5", n)
				}
				want := 0 // do_nothing: first write wins
				if conflict == DoUpdate {
					want = 5 // last write wins
				}
				if n := count(t, conn, "SELECT count(*) FROM events WHERE amount = 7"); n != want {
					t.Fatalf("%d rows overwritten, want %d", n, want)
				}
			})
		}
	}
}

func TestDeadLetterRowsInTheSameTransaction(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true, DLQTopic: "dlq"})
	ctx := context.Background()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	batch := recs(p0, 0, 6)
	batch[1].Topic = "dlq" // dead-lettered by the pipeline
	batch[1].Headers = []connector.Header{{Key: connector.HeaderDLQStage, Value: []byte("transform 0 (set)")}, {Key: connector.HeaderDLQMessage, Value: []byte("boom")}}
	batch[2].Value = []byte("not json") // the sink cannot map it
	batch[3].Value = []byte(`{"amount":"x"}`)
	gens := map[connector.TopicPartition]int64{p0: 1}

	// Fenced first: neither rows nor dead letters land.
	err := s.Commit(ctx, "g", gens, batch, connector.Checkpoint{p0: 3}, connector.Checkpoint{p0: 6})
	wantKind(t, err, connector.Fenced, "fenced batch with dead letters")
	if n := count(t, conn, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM events_dlq)"); n != 0 {
		t.Fatalf("a fenced batch left %d rows", n)
	}

	if err := s.Commit(ctx, "g", gens, batch, nil, connector.Checkpoint{p0: 6}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
	rows, err := conn.Query(ctx, "SELECT event_id, origin_offset, coalesce(error_stage,''), coalesce(error_message,'') FROM events_dlq ORDER BY origin_offset")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var id, stage, msg string
	var off int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &off, &stage, &msg}, func() error {
		got = append(got, fmt.Sprintf("%s@%d %s: %s", id, off, stage, msg))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !strings.Contains(got[0], "e-0-1@1 transform 0 (set): boom") ||
		!strings.Contains(got[1], "in/0/2") || !strings.Contains(got[1], "not JSON") ||
		!strings.Contains(got[2], "want an integer") {
		t.Fatalf("dead-letter rows:\n%s", strings.Join(got, "\n"))
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"events", "events_dlq", "events_dlq", "events_dlq", "events"} {
		if r := cfg.Route(batch[i], "dlq"); r != want {
			t.Errorf("Route of record %d = %s, want %s", i, r, want)
		}
	}
}

func TestUnmappableRecordFailsWithItsOrigin(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
	ctx := context.Background()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	batch := recs(p0, 0, 5)
	batch[3].Value = []byte("{broken")
	err := s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1}, batch, nil, connector.Checkpoint{p0: 5})
	wantKind(t, err, connector.Fatal, "unmappable record, errors.tolerance none")
	if !strings.Contains(err.Error(), "in/0/3") {
		t.Fatalf("error does not name the origin in/0/3: %v", err)
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 0 {
		t.Fatalf("%d rows written", n)
	}
}

// A row the table itself rejects (here a NOT NULL column the mapping leaves
// NULL) is found by bisection: dead-lettered with tolerance all, named in a
// Fatal error with none; with either guarantee, as both take one write path.
func TestRejectedRowIsolated(t *testing.T) {
	for _, exactlyOnce := range []bool{true, false} {
		for _, dlq := range []string{"dlq", ""} {
			t.Run(fmt.Sprintf("exactly_once=%v/dlq=%s", exactlyOnce, dlq), func(t *testing.T) {
				testRejectedRowIsolated(t, exactlyOnce, dlq)
			})
		}
	}
}

func testRejectedRowIsolated(t *testing.T, exactlyOnce bool, dlq string) {
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: exactlyOnce, DLQTopic: dlq})
	ctx := context.Background()
	if _, err := s.Pool(ctx); err != nil { // creates the tables
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE events ALTER COLUMN amount SET NOT NULL"); err != nil {
		t.Fatal(err)
	}
	batch := recs(p0, 0, 40)
	batch[7].Value = []byte(`{"i":7}`)
	batch[30].Value = []byte(`{"i":30}`)
	var err error
	if exactlyOnce {
		if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
			t.Fatal(err)
		}
		err = s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1}, batch, nil, connector.Checkpoint{p0: 40})
	} else {
		err = s.WriteBatch(ctx, batch)
	}
	if dlq == "" {
		wantKind(t, err, connector.Fatal, "rejected row, errors.tolerance none")
		if !strings.Contains(err.Error(), "in/0/7:") && !strings.Contains(err.Error(), "in/0/30:") {
			t.Fatalf("error does not name in/0/7 or in/0/30: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 38 {
		t.Fatalf("%d rows, want 38", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM events_dlq WHERE origin_offset IN (7, 30) AND error_message LIKE '%null value%'"); n != 2 {
		t.Fatalf("%d rejected rows dead-lettered, want 2", n)
	}
}

func TestAtLeastOnceWritesDuplicates(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{})
	ctx := context.Background()
	for range 2 {
		if err := s.WriteBatch(ctx, recs(p0, 0, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 20 {
		t.Fatalf("%d rows, want 20 (the batch twice)", n)
	}
	if n := count(t, conn, "SELECT count(DISTINCT event_id) FROM events"); n != 10 {
		t.Fatalf("%d distinct IDs, want 10", n)
	}
}

// Two serializable transactions that each read what the other writes: the
// second to commit fails with SQLSTATE 40001, which is Abortable.
func TestSerializationFailureIsAbortable(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	a, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE x (v int)"); err != nil {
		t.Fatal(err)
	}
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable}
	ta, err := a.BeginTx(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.BeginTx(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		tx pgx.Tx
		q  string
	}{
		{ta, "SELECT count(*) FROM x WHERE v = 2"},
		{tb, "SELECT count(*) FROM x WHERE v = 1"},
		{ta, "INSERT INTO x VALUES (1)"},
		{tb, "INSERT INTO x VALUES (2)"},
	} {
		if _, err := step.tx.Exec(ctx, step.q); err != nil {
			t.Fatalf("%s: %v", step.q, err)
		}
	}
	if err := ta.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	err = tb.Commit(ctx)
	if err == nil {
		t.Fatal("the second serializable commit succeeded")
	}
	for _, sent := range []bool{false, true} {
		wantKind(t, classify("commit", err, sent), connector.Abortable, fmt.Sprintf("40001 (commit sent: %v)", sent))
	}
}

// A process frozen inside a batch's transaction (SIGSTOP) keeps its row
// locks while its socket stays open; the next owner of its partitions
// writes the same event IDs and would wait on them for as long as the
// freeze lasts. The sink's sessions carry idle_in_transaction_session_timeout,
// so the server ends the frozen session and the heir's commit goes through.
// The zombie here is a session of the store's own pool that began a
// transaction, inserted one of the heir's rows and went silent.
func TestFrozenTransactionReleasesItsLocks(t *testing.T) {
	old := IdleInTransactionTimeout
	IdleInTransactionTimeout = time.Second
	t.Cleanup(func() { IdleInTransactionTimeout = old })
	cfg := testConfig(testenv.Postgres(t))
	zombie, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
	heir, _ := newTestStore(t, cfg, Options{ExactlyOnce: true})
	ctx := context.Background()
	pool, err := zombie.Pool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	frozen, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Release()
	if _, err := frozen.Exec(ctx, "BEGIN; INSERT INTO events (event_id, amount) VALUES ('e-0-3', -1)"); err != nil {
		t.Fatal(err)
	}
	claims, err := heir.Claim(ctx, "g", []connector.TopicPartition{p0})
	if err != nil {
		t.Fatal(err)
	}
	// A deadline far above the idle timeout: without it the commit waits
	// on the frozen session's lock until this expires.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := heir.Commit(cctx, "g", map[connector.TopicPartition]int64{p0: claims[p0].Epoch}, recs(p0, 0, 10), nil, connector.Checkpoint{p0: 10}); err != nil {
		t.Fatalf("the heir's commit beside a frozen transaction: %v", err)
	}
	if _, err := frozen.Exec(ctx, "COMMIT"); err == nil {
		t.Fatal("the frozen session survived: its transaction could still commit")
	}
	if n := count(t, conn, "SELECT count(*) FROM events WHERE amount >= 0 AND apply_count = 1"); n != 10 {
		t.Fatalf("%d rows of the heir's batch, want 10 (none of the frozen one's)", n)
	}
}

// A broken connection before COMMIT is Abortable: the server rolls back.
func TestTerminatedBackendBeforeCommitIsAbortable(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
	ctx := context.Background()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1}, recs(p0, 0, 10), nil, connector.Checkpoint{p0: 10})
	if err != nil {
		wantKind(t, err, connector.Abortable, "terminated backend")
	}
	// The pool replaces the dead connection; the retry commits.
	if err != nil {
		if err := s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1}, recs(p0, 0, 10), nil, connector.Checkpoint{p0: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM events WHERE apply_count = 1"); n != 10 {
		t.Fatalf("%d rows, want 10", n)
	}
}

// A batch large enough to stream in several chunks: a record that cannot be
// mapped in the last chunk, after earlier chunks were already sent in the
// open transaction, fails the batch with nothing written (tolerance none),
// or is dead-lettered with every other row written once (tolerance all).
func TestStreamedBatchWithABadRecordLate(t *testing.T) {
	ctx := context.Background()
	const n = 3 * streamChunk
	batch := recs(p0, 0, n)
	// Event IDs sort as strings: "e-0-999" is the last, mapped in the
	// last chunk.
	bad := 999
	batch[bad].Value = []byte("{broken")
	gens := map[connector.TopicPartition]int64{p0: 1}

	t.Run("none", func(t *testing.T) {
		s, conn := newTestStore(t, testConfig(testenv.Postgres(t)), Options{ExactlyOnce: true})
		if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
			t.Fatal(err)
		}
		err := s.Commit(ctx, "g", gens, batch, nil, connector.Checkpoint{p0: n})
		wantKind(t, err, connector.Fatal, "unmappable record late in a streamed batch")
		if !strings.Contains(err.Error(), fmt.Sprintf("in/0/%d", bad)) {
			t.Fatalf("error does not name the origin in/0/%d: %v", bad, err)
		}
		if got := count(t, conn, "SELECT count(*) FROM events"); got != 0 {
			t.Fatalf("%d rows written by a failed batch", got)
		}
		if got := count(t, conn, "SELECT count(*) FROM connectd_offsets WHERE next_offset >= 0"); got != 0 {
			t.Fatalf("the checkpoint moved for a failed batch")
		}
	})
	t.Run("all", func(t *testing.T) {
		s, conn := newTestStore(t, testConfig(testenv.Postgres(t)), Options{ExactlyOnce: true, DLQTopic: "dlq"})
		if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, "g", gens, batch, nil, connector.Checkpoint{p0: n}); err != nil {
			t.Fatal(err)
		}
		if got := count(t, conn, "SELECT count(*) FROM events WHERE apply_count = 1"); got != n-1 {
			t.Fatalf("%d rows applied once, want %d", got, n-1)
		}
		if got := count(t, conn, fmt.Sprintf("SELECT count(*) FROM events_dlq WHERE origin_offset = %d", bad)); got != 1 {
			t.Fatalf("the bad record is not in the dead-letter table")
		}
	})
}
