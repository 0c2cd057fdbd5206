package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/connectd/connectd/connector"
)

// classify maps a PostgreSQL failure to a commit-error kind, the way pgx's
// own SafeToRetry separates "not sent" from "maybe applied":
//
//   - commitSent false (the failure came before COMMIT was sent): the
//     transaction did not commit, whatever the error (a lost connection
//     rolls it back on the server): Abortable, except errors retrying
//     cannot fix (a missing table or column, no privilege, a row the table
//     rejects): Fatal.
//   - commitSent true: the outcome is unknown unless the server answered
//     COMMIT with a serialization failure or deadlock (then it rolled back):
//     CommitUnknown, so the protocol rejoins and re-reads the checkpoint.
func classify(op string, err error, commitSent bool) error {
	if err == nil {
		return nil
	}
	var ce *connector.CommitError
	if errors.As(err, &ce) {
		return err
	}
	// Nothing of op ran when no connection could be had: say so, and
	// why in the DSN's terms (connerr.go). The kind follows from the
	// error as below (a refused login is class 28, Fatal).
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		op, err = "connect to postgres", explainConnect(err)
	}
	var pe *pgconn.PgError
	isPg := errors.As(err, &pe)
	if isPg && (pe.Code == "40001" || pe.Code == "40P01") {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	if commitSent {
		return connector.NewCommitError(connector.CommitUnknown, op, err)
	}
	if isPg && isPermanent(pe.Code) {
		return connector.NewCommitError(connector.Fatal, op, err)
	}
	return connector.NewCommitError(connector.Abortable, op, err)
}

// isPermanent: SQLSTATE classes a retry cannot fix. 22 (data exception)
// and 23 (integrity constraint violation) are a row the table rejects; 42
// (syntax error or access rule violation) is a missing table, column or
// privilege; 0A (feature not supported) and 28 (invalid authorization) the
// same.
func isPermanent(code string) bool {
	for _, class := range []string{"22", "23", "42", "0A", "28"} {
		if strings.HasPrefix(code, class) {
			return true
		}
	}
	return false
}

// isRowError reports whether err is a data or constraint error a single row
// can cause: the batch is then retried in halves to find the row.
func isRowError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}
