package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/test/testenv"
)

// TestView: the sink creates its view at start only if it is missing, so a
// restarted old connector leaves a promoted view alone; PointView moves the
// view in one transaction, says what it read before, and refuses a table.
func TestView(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		"CREATE TABLE live (event_id text PRIMARY KEY)", "INSERT INTO live VALUES ('a')",
		"CREATE TABLE live_v2 (event_id text PRIMARY KEY)", "INSERT INTO live_v2 VALUES ('b'), ('c')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (n int) {
		t.Helper()
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM readers").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	cfg := Config{DSN: dsn, Table: "live", View: "readers"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := New(cfg, Options{ExactlyOnce: true})
	t.Cleanup(s.Close)
	if _, err := s.Pool(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("the view created at start reads %d rows, want live's 1", n)
	}
	// A reader role with access to the view only.
	role := pgx.Identifier{"reader_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_") + "_" + time.Now().Format("150405")}.Sanitize()
	for _, q := range []string{"CREATE ROLE " + role, "GRANT SELECT ON readers TO " + role} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = conn.Exec(context.Background(), "DROP ROLE "+role)
	})
	canRead := func() bool {
		t.Helper()
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT has_table_privilege($1, 'readers', 'SELECT')", strings.Trim(role, `"`)).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	prev, err := PointView(ctx, conn, "readers", "live_v2")
	if err != nil || prev != "live" {
		t.Fatalf("PointView = %q, %v; want it to say the view read live", prev, err)
	}
	if n := count(); n != 2 {
		t.Fatalf("the promoted view reads %d rows, want live_v2's 2", n)
	}
	if !canRead() {
		t.Fatal("the reader lost SELECT on the view when it moved to a table with the same columns")
	}
	if prev, err := PointView(ctx, conn, "readers", "live_v2"); err != nil || prev != "live_v2" {
		t.Fatalf("PointView again = %q, %v; want harmless", prev, err)
	}
	// Changed logic, other columns (CREATE OR REPLACE refuses a view whose
	// first column is renamed): the view is made again, grants too.
	if _, err := conn.Exec(ctx, "CREATE TABLE live_v3 (total numeric, event_id text PRIMARY KEY); INSERT INTO live_v3 VALUES (1, 'd')"); err != nil {
		t.Fatal(err)
	}
	if prev, err := PointView(ctx, conn, "readers", "live_v3"); err != nil || prev != "live_v2" {
		t.Fatalf("PointView to other columns = %q, %v", prev, err)
	}
	if n := count(); n != 1 || !canRead() {
		t.Fatalf("after a move to other columns the view reads %d rows (want 1) and the reader can read: %v", count(), canRead())
	}
	if _, err := PointView(ctx, conn, "readers", "live_v2"); err != nil {
		t.Fatal(err)
	}
	// The old connector restarting must not take the view back.
	s2 := New(cfg, Options{ExactlyOnce: true})
	t.Cleanup(s2.Close)
	if _, err := s2.Pool(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("a restarted old sink moved the view back: %d rows", n)
	}
	if _, err := PointView(ctx, conn, "live", "live_v2"); err == nil || !strings.Contains(err.Error(), "is not a view") {
		t.Fatalf("PointView over a table: %v, want a refusal saying it is not a view", err)
	}
	if n := count(); n != 2 {
		t.Fatal("a refused PointView changed the view")
	}
	bad := Config{DSN: dsn, Table: "live", View: "live"}
	if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "view:") {
		t.Fatalf("view = table: %v", err)
	}
}
