package testenv

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres creates a fresh database for the test on the PostgreSQL that
// `make services` starts (PG_DSN, default
// postgres://connectd:connectd@127.0.0.1:5432/postgres?sslmode=disable) and
// returns a DSN for it. The database is dropped (WITH (FORCE), so open
// connections do not block it) when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	needService(t, "PostgreSQL")
	return freshDatabase(t, envOr(EnvPostgresDSN, DefaultPostgresDSN), "services")
}

// freshDatabase creates a database through adminDSN and returns its DSN.
func freshDatabase(t testing.TB, adminDSN, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		missing(t, "PostgreSQL", redactDSN(adminDSN), target, err)
	}
	defer conn.Close(context.Background())

	name := UniqueName(t, "t", "_", 63)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(adminDSN, name)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresDSN, err)
	}
	return dsn
}

// withDatabase returns dsn (URL or keyword=value form) pointing at database db.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		u.Path = "/" + db
		return u.String(), nil
	}
	// keyword=value: a later dbname overrides an earlier one.
	return fmt.Sprintf("%s dbname=%s", dsn, db), nil
}

func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}
