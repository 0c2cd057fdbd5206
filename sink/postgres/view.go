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
// is transactional, and the lock a view change takes makes a concurrent
// query wait for the commit). It returns the tables the view read before
// ("" if there was no view). Doing it twice is harmless, so a promote
// interrupted by a crash is simply done again.
//
// CREATE OR REPLACE VIEW keeps the view's grants and owner, but only takes a
// table whose columns start with the old ones (same names and types, in
// order); a replay with changed logic may have others, and then the view is
// dropped and created again, and the privileges granted on the old one are
// granted on the new one, so readers keep their access.
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
		create := "CREATE VIEW " + ident(view) + " AS SELECT * FROM " + ident(table)
		replaced, err := tryInSavepoint(ctx, tx, "CREATE OR REPLACE VIEW "+ident(view)+" AS SELECT * FROM "+ident(table))
		if err != nil || replaced {
			return err
		}
		grants, err := viewGrants(ctx, tx, view)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+ident(view)); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42809" { // wrong_object_type
				return fmt.Errorf("%s is not a view (readers must query a view for a promote to switch them): %w", view, err)
			}
			return err
		}
		if _, err := tx.Exec(ctx, create); err != nil {
			return err
		}
		for _, g := range grants {
			if _, err := tx.Exec(ctx, g); err != nil {
				return fmt.Errorf("granting again what the old view had (%s): %w", g, err)
			}
		}
		return nil
	})
	return previous, err
}

// tryInSavepoint runs q in a savepoint of tx: false, nil if the statement
// failed because the view's new definition does not fit the old (the
// savepoint is rolled back and tx goes on), or because the relation is not
// a view (the caller's DROP VIEW then says so).
func tryInSavepoint(ctx context.Context, tx pgx.Tx, q string) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	if _, err := sp.Exec(ctx, q); err != nil {
		_ = sp.Rollback(ctx)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42P16" || pe.Code == "42804" || pe.Code == "42809") {
			// invalid_table_definition (columns dropped or renamed),
			// datatype_mismatch, wrong_object_type
			return false, nil
		}
		return false, err
	}
	return true, sp.Commit(ctx)
}

// viewGrants are the GRANT statements that give back the privileges held
// on view (none if it does not exist).
func viewGrants(ctx context.Context, tx pgx.Tx, view string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
		FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
		WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner`, ident(view))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var grants []string
	for rows.Next() {
		var priv, grantee string
		if err := rows.Scan(&priv, &grantee); err != nil {
			return nil, err
		}
		grants = append(grants, "GRANT "+priv+" ON "+ident(view)+" TO "+grantee)
	}
	return grants, rows.Err()
}

// beginner is what starts a transaction: a pool or a connection.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}
