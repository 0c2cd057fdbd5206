package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// viewLock serialises the sink's view changes (creation at start, a Kafka
// promote's redefinition) across processes, as auto_create's lock does for
// tables: CREATE VIEW has no IF NOT EXISTS, and two tasks creating the same
// view together would otherwise fail one of them.
const viewLock = "SELECT pg_advisory_xact_lock(hashtext('connectd view'))"

// EnsureView creates view as SELECT * FROM table unless a relation of that
// name exists already; an existing view is left as it is, whatever table it
// reads (after a promote it reads a replay's table, and a restart of the old
// connector must not take it back).
func EnsureView(ctx context.Context, db beginner, view, table string) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, viewLock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident(view)).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		_, err := tx.Exec(ctx, "CREATE VIEW "+ident(view)+" AS SELECT * FROM "+ident(table))
		return err
	})
}

// PointView makes view read table, in one transaction: readers' queries see
// either the old definition or the new one, never no view (PostgreSQL's DDL
// is transactional, and DROP VIEW's lock makes a concurrent query wait for
// the commit). It returns the tables the view read before ("" if there was
// no view). Doing it twice is harmless, so a promote interrupted by a crash
// is simply done again.
func PointView(ctx context.Context, db beginner, view, table string) (previous string, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, viewLock); err != nil {
			return err
		}
		// The tables a view reads are the pg_class rows its rewrite rule
		// depends on (other than the view itself).
		const reads = `SELECT coalesce(string_agg(DISTINCT d.refobjid::regclass::text, ','), '')
			FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
			WHERE r.ev_class = to_regclass($1) AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class`
		if err := tx.QueryRow(ctx, reads, ident(view)).Scan(&previous); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+ident(view)); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42809" { // wrong_object_type
				return fmt.Errorf("%s is not a view (readers must query a view for a promote to switch them): %w", view, err)
			}
			return err
		}
		_, err := tx.Exec(ctx, "CREATE VIEW "+ident(view)+" AS SELECT * FROM "+ident(table))
		return err
	})
	return previous, err
}

// beginner is what starts a transaction: a pool or a connection.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}
