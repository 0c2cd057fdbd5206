package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// The PostgreSQL sink as a two-phase commit participant (txn.Participant):
// a batch is written in a transaction that ends with PREPARE TRANSACTION
// instead of COMMIT. A prepared transaction survives a crash of the client
// and of the server, keeps its row locks, and is committed or rolled back
// later by its gid from any connection to the same database. The
// checkpoint is not kept here but in the Kafka transaction that decides.

var _ txn.Participant = (*Store)(nil)

// PreparedLockTimeout bounds how long a two-phase write waits for a row
// lock (PostgreSQL's lock_timeout, set for that transaction only). A lock
// held longer is almost always another instance's prepared transaction
// waiting for recovery; failing lets ours run.
var PreparedLockTimeout = 30 * time.Second

// Name implements txn.Participant.
func (s *Store) Name() string { return "postgres " + s.cfg.Table }

// Check implements txn.Participant: PostgreSQL refuses PREPARE TRANSACTION
// with max_prepared_transactions = 0 (its default), and that is a setting
// only a restart changes, so it fails the connector at start, clearly.
func (s *Store) Check(ctx context.Context) error {
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	var max int
	if err := pool.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&max); err != nil {
		return classify("check max_prepared_transactions", err, false)
	}
	if max < 1 {
		return connector.NewCommitError(connector.Fatal, "check",
			errors.New("PostgreSQL has max_prepared_transactions = 0, so it cannot take part in a two-phase commit; set it (at least the number of connectd instances times the connector's PostgreSQL sinks) in postgresql.conf and restart PostgreSQL"))
	}
	return nil
}

// Prepare implements txn.Participant: the rows (UPSERT keyed on event_id)
// and dead-letter rows in one transaction, prepared as gid.
func (s *Store) Prepare(ctx context.Context, gid string, recs []*connector.Record) error {
	if len(gid) > txn.MaxGIDLength {
		return connector.NewCommitError(connector.Fatal, "prepare",
			fmt.Errorf("gid %q is %d bytes, above PostgreSQL's %d: shorten the connector name or instance_id", gid, len(gid), txn.MaxGIDLength))
	}
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, pool, s.split(recs), ending{gid: gid})
}

// prepareTx sends b (the rest of the batch) with PREPARE TRANSACTION gid.
// Once PREPARE answered, the session is out of the transaction (*done).
// An unanswered PREPARE is CommitUnknown: the gid may or may not exist,
// and recovery finds it if it does.
func (s *Store) prepareTx(ctx context.Context, c *pgx.Conn, b *pgx.Batch, gid string, done *bool) error {
	b.Queue("PREPARE TRANSACTION " + quoteLiteral(gid))
	tag, err := execBatch(ctx, c, b)
	if err != nil {
		// The transaction is aborted or gone; the caller's rollback
		// ends it if it is still open.
		return classify("prepare", err, true)
	}
	*done = true
	if tag.String() != "PREPARE TRANSACTION" { // the server rolled back a failed transaction
		return connector.NewCommitError(connector.Abortable, "prepare", fmt.Errorf("server answered %q", tag.String()))
	}
	return nil
}

// CommitPrepared implements txn.Participant.
func (s *Store) CommitPrepared(ctx context.Context, gid string) error {
	return s.finishPrepared(ctx, "COMMIT PREPARED", gid)
}

// RollbackPrepared implements txn.Participant.
func (s *Store) RollbackPrepared(ctx context.Context, gid string) error {
	return s.finishPrepared(ctx, "ROLLBACK PREPARED", gid)
}

// finishPrepared runs COMMIT or ROLLBACK PREPARED; undefined_object (the
// gid does not exist) is success, see txn.Participant.
func (s *Store) finishPrepared(ctx context.Context, verb, gid string) error {
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, verb+" "+quoteLiteral(gid))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42704" {
		return nil
	}
	if err != nil {
		return classify(strings.ToLower(verb), err, true)
	}
	return nil
}

// Prepared implements txn.Participant: the prepared transactions of this
// database whose gid starts with prefix.
func (s *Store) Prepared(ctx context.Context, prefix string) ([]string, error) {
	pool, err := s.Pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1) ORDER BY prepared", prefix)
	if err != nil {
		return nil, classify("list prepared transactions", err, false)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("list prepared transactions", err, false)
	}
	return gids, nil
}

// quoteLiteral quotes s as an SQL string literal (PREPARE TRANSACTION and
// SET take no parameters).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
