package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// copyConfig maps a column of every type, text from the key, a header and
// a JSON string (where COPY's escapes matter), and NULLs.
func copyConfig(dsn string) Config {
	return Config{DSN: dsn, Table: "events", AutoCreate: true, TestApplyCounter: true, Columns: map[string]string{
		"amount": "json:amount::bigint", "price": "json:price::numeric", "flag": "json:flag::boolean",
		"note": "json:note::text", "doc": "json:doc", "body": "value", "k": "key", "at": "timestamp",
		"h": "header:h", "src": "offset", "p": "partition", "t": "topic",
	}}
}

// copyRecs are records from..to-1 of p0 whose text carries every byte
// COPY's text format escapes, and a missing field or key (NULL) in some.
func copyRecs(from, to int) []*connector.Record {
	var out []*connector.Record
	for i := from; i < to; i++ {
		r := &connector.Record{
			Key: fmt.Appendf(nil, "k\t%d\\N\r\n\\.", i),
			Value: fmt.Appendf(nil, `{"amount":%d,"price":%d.25,"flag":%v,"note":"a\tb\\c\nd\re \\N %d","doc":{"x":"\\t"}}`,
				i, i, i%2 == 0, i),
			EventID:   fmt.Sprintf("e\\%d\t", i),
			Origin:    connector.Origin{Topic: "in", Partition: 0, Offset: int64(i)},
			Timestamp: time.UnixMicro(1700000000000000 + int64(i)*1001),
		}
		r.SetHeader("h", fmt.Appendf(nil, "\\x41 %d", i))
		switch i % 5 {
		case 1:
			r.Key = nil
		case 2:
			r.Value = []byte(`{"amount":null}`)
		}
		out = append(out, r)
	}
	return out
}

// tableText is every row of events as text, in event ID order.
func tableText(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT e::text FROM events e ORDER BY event_id COLLATE \"C\"")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopyWritesWhatUpsertWrites commits the same batches through the COPY
// path and the upsert path into two databases: the tables must hold the
// same text, every row, and COPY must have written every batch.
func TestCopyWritesWhatUpsertWrites(t *testing.T) {
	ctx := context.Background()
	var got [2][]string
	for i, upsertOnly := range []bool{false, true} {
		s, conn := newTestStore(t, copyConfig(testenv.Postgres(t)), Options{ExactlyOnce: true})
		s.upsertOnly = upsertOnly
		if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
			t.Fatal(err)
		}
		gens := map[connector.TopicPartition]int64{p0: 1}
		from := connector.Checkpoint{}
		for lo := 0; lo < 3000; lo += 1500 {
			to := connector.Checkpoint{p0: int64(lo + 1500)}
			if err := s.Commit(ctx, "g", gens, copyRecs(lo, lo+1500), from, to); err != nil {
				t.Fatal(err)
			}
			from = to
		}
		if want := map[bool]int64{false: 2, true: 0}[upsertOnly]; s.copied.Load() != want {
			t.Fatalf("upsertOnly %v: %d batches by COPY, want %d", upsertOnly, s.copied.Load(), want)
		}
		got[i] = tableText(t, conn)
	}
	if len(got[0]) != 3000 || !slices.Equal(got[0], got[1]) {
		t.Fatalf("COPY wrote %d rows, upsert %d; first rows:\n%s\n%s", len(got[0]), len(got[1]), got[0][0], got[1][0])
	}
	t.Logf("a row: %s", got[0][2])
}

// TestCopyConflictFallsBack: a batch with event IDs that exist (a replay)
// fails its COPY and is written again with ON CONFLICT in a new
// transaction, applying the new rows once and the replayed ones as the
// conflict clause says. The next batch skips COPY; a conflict again at the
// next try makes two skip it; a clean COPY resets that.
func TestCopyConflictFallsBack(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	cfg.Conflict = DoUpdate
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
	ctx := context.Background()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	gens := map[connector.TopicPartition]int64{p0: 1}
	replay := func(from, to int) []*connector.Record {
		out := recs(p0, from, to)
		for _, r := range out {
			r.Value = []byte(`{"amount":7}`)
		}
		return out
	}
	// copied: the batches written by COPY after each step.
	steps := []struct {
		batch  []*connector.Record
		copied int64
	}{
		{recs(p0, 0, 10), 1},
		{replay(5, 15), 1},     // conflict: the next batch skips COPY
		{recs(p0, 20, 30), 1},  // skipped
		{replay(25, 35), 1},    // conflict again: two skip it
		{recs(p0, 40, 50), 1},  // skipped
		{recs(p0, 50, 60), 1},  // skipped
		{recs(p0, 60, 70), 2},  // clean
		{replay(65, 75), 2},    // conflict: one skips it
		{recs(p0, 80, 90), 2},  // skipped
		{recs(p0, 90, 100), 3}, // clean
	}
	from := connector.Checkpoint{}
	for i, st := range steps {
		to := connector.Checkpoint{p0: int64(i + 1)}
		if err := s.Commit(ctx, "g", gens, st.batch, from, to); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		from = to
		if got := s.copied.Load(); got != st.copied {
			t.Fatalf("after batch %d: %d batches by COPY, want %d", i, got, st.copied)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 85 {
		t.Fatalf("%d rows, want 85", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM events WHERE apply_count = 2"); n != 15 {
		t.Fatalf("%d rows applied twice, want the 15 replayed", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM events WHERE apply_count = 2 AND amount = 7"); n != 15 {
		t.Fatalf("%d replayed rows with the replay's value, want 15 (do_update: last write wins)", n)
	}
	if n := count(t, conn, "SELECT next_offset FROM connectd_offsets"); n != len(steps) {
		t.Fatalf("checkpoint %d, want %d", n, len(steps))
	}
}

// TestCopyOnlyWhereItWritesWhatInsertWould: a table whose column type
// differs from the configured one, or with row security, is written by
// upsert, and correctly. A table with a rule, which COPY would ignore,
// still fails as INSERT ... ON CONFLICT always made it fail.
func TestCopyOnlyWhereItWritesWhatInsertWould(t *testing.T) {
	for _, tc := range []struct {
		name, ddl string
		copy      bool
	}{
		{"configured types", "", true},
		{"timestamp without time zone", "ALTER TABLE events ALTER COLUMN at TYPE timestamp", false},
		{"varchar", "ALTER TABLE events ALTER COLUMN note TYPE varchar(100)", false},
		{"rule", "CREATE TABLE audit (id text); CREATE RULE audit AS ON INSERT TO events DO ALSO INSERT INTO audit VALUES (NEW.event_id)", false},
		{"row security", "ALTER TABLE events ENABLE ROW LEVEL SECURITY; ALTER TABLE events FORCE ROW LEVEL SECURITY; CREATE POLICY everything ON events USING (true)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := copyConfig(testenv.Postgres(t))
			ctx := context.Background()
			if tc.ddl != "" {
				// Create the table first (another store), then change it.
				first, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
				if _, err := first.Pool(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, tc.ddl); err != nil {
					t.Fatal(err)
				}
			}
			s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
			if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
				t.Fatal(err)
			}
			err := s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1}, copyRecs(0, 100), nil, connector.Checkpoint{p0: 100})
			if tc.name == "rule" {
				wantKind(t, err, connector.Fatal, "ON CONFLICT into a table with a rule")
				if n := count(t, conn, "SELECT count(*) FROM events"); n != 0 || s.copied.Load() != 0 {
					t.Fatalf("%d rows written, %d by COPY, want none", n, s.copied.Load())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if copied := s.copied.Load() == 1; copied != tc.copy {
				t.Fatalf("written by COPY: %v, want %v", copied, tc.copy)
			}
			if n := count(t, conn, "SELECT count(*) FROM events"); n != 100 {
				t.Fatalf("%d rows, want 100", n)
			}
		})
	}
}

func TestAppendCopyField(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"plain":          "plain",
		"a\tb\nc\rd\\e":  `a\tb\nc\rd\\e`,
		"\\.":            `\\.`,
		"\\N":            `\\N`,
		"ünïcode\t":      `ünïcode\t`,
		"\t\t\\\\\n\r\r": `\t\t\\\\\n\r\r`,
	} {
		if got := string(appendCopyField([]byte("x"), in)); got != "x"+want {
			t.Errorf("appendCopyField(%q) = %q, want %q", in, got, "x"+want)
		}
	}
}
