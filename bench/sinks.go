package bench

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/sink/postgres"
)

// benchDatabase is the PostgreSQL database the harness owns: created if
// missing, its tables dropped after each run, so other users of the
// server are not touched.
const benchDatabase = "connectd_bench"

// withDatabase returns dsn (a URL) pointing at database db.
func withDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("PostgreSQL DSN %q: want a postgres:// URL", dsn)
	}
	u.Path = "/" + db
	return u.String(), nil
}

type pgEnv struct {
	dsn  string // of benchDatabase
	conn *pgx.Conn
}

// newPGEnv connects to the server of dsn and creates benchDatabase if it
// does not exist.
func newPGEnv(ctx context.Context, dsn string) (*pgEnv, error) {
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w (start it with `make services`)", err)
	}
	var exists bool
	err = admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", benchDatabase).Scan(&exists)
	if err == nil && !exists {
		_, err = admin.Exec(ctx, "CREATE DATABASE "+benchDatabase)
	}
	admin.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: creating %s: %w", benchDatabase, err)
	}
	bdsn, err := withDatabase(dsn, benchDatabase)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, bdsn)
	if err != nil {
		return nil, err
	}
	return &pgEnv{dsn: bdsn, conn: conn}, nil
}

func (p *pgEnv) Close() { p.conn.Close(context.Background()) }

func (p *pgEnv) version(ctx context.Context) string {
	var v string
	if err := p.conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "?"
	}
	return v
}

// createUpsertTable creates the bare baseline's table: the same shape the
// connectd exactly_once sink creates (event_id primary key, jsonb payload).
func (p *pgEnv) createUpsertTable(ctx context.Context, table string) error {
	_, err := p.conn.Exec(ctx, "CREATE TABLE "+pgx.Identifier{table}.Sanitize()+" (event_id text PRIMARY KEY, payload jsonb)")
	return err
}

func (p *pgEnv) dropTables(ctx context.Context, tables ...string) {
	for _, t := range tables {
		_, _ = p.conn.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize())
	}
}

func (p *pgEnv) count(ctx context.Context, table string) (int64, error) {
	var n int64
	err := p.conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, err
}

// forgetGroup deletes the run's checkpoint rows (housekeeping: the
// offsets table is shared by every run).
func (p *pgEnv) forgetGroup(ctx context.Context, group string) {
	_, _ = p.conn.Exec(ctx, "DELETE FROM "+postgres.DefaultOffsetsTable+" WHERE group_id = $1", group)
}

// inDoubt counts the prepared transactions (PREPARE TRANSACTION, phase
// one of a two-phase commit) in the bench database whose gid starts with
// prefix: rows written but not visible yet.
func (p *pgEnv) inDoubt(ctx context.Context, prefix string) (int, error) {
	var n int
	err := p.conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)", prefix).Scan(&n)
	return n, err
}

// rollbackPrepared rolls back the prepared transactions in the bench
// database whose gid starts with prefix. A run that failed with one left
// would otherwise hold its locks on the run's table, and DROP TABLE would
// wait for them.
func (p *pgEnv) rollbackPrepared(ctx context.Context, prefix string) {
	rows, err := p.conn.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)", prefix)
	if err != nil {
		return
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, gid := range gids {
		_, _ = p.conn.Exec(ctx, "ROLLBACK PREPARED '"+strings.ReplaceAll(gid, "'", "''")+"'")
	}
}

type redisEnv struct{ cl *redis.Client }

func newRedisEnv(ctx context.Context, addr string) (*redisEnv, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr})
	if err := cl.Ping(ctx).Err(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("Redis at %s: %w (start it with `make services`)", addr, err)
	}
	return &redisEnv{cl: cl}, nil
}

func (r *redisEnv) Close() { r.cl.Close() }

func (r *redisEnv) version(ctx context.Context) string {
	info, err := r.cl.InfoMap(ctx, "server").Result()
	if err != nil {
		return "?"
	}
	return info["Server"]["redis_version"]
}

// countKeys counts keys matching pattern (SCAN: never blocks the server).
func (r *redisEnv) countKeys(ctx context.Context, pattern string) (int64, error) {
	var n int64
	iter := r.cl.Scan(ctx, 0, pattern, 10000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// deletePrefix removes every key under prefix, in batches.
func (r *redisEnv) deletePrefix(ctx context.Context, prefix string) {
	iter := r.cl.Scan(ctx, 0, prefix+"*", 10000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 5000 {
			r.cl.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		r.cl.Unlink(ctx, batch...)
	}
}
