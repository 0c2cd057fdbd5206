package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

// env is one test's Kafka (kfake, through the shared harness of test/e2e)
// and PostgreSQL database; what is specific to PostgreSQL is the DSN, the
// poison records (every poisonEvery-th input is not JSON, so the json:
// column sends it to the dead-letter table) and queries on the tables.
type env struct {
	t   *testing.T
	c   *kfake.Cluster
	dsn string
}

// poisonEvery: every 500th input is a poison record.
const poisonEvery = 500

func newEnv(t *testing.T, opts ...kfake.Opt) *env {
	t.Helper()
	dsn := testenv.Postgres(t) // first: fails with how to start it when missing
	return &env{t: t, c: e2e.Cluster(t, opts...), dsn: dsn}
}

// parse parses a YAML config written in the test (tabs for indentation),
// with BROKERS and DSN filled in.
func (e *env) parse(yaml string) *config.Config {
	e.t.Helper()
	return e2e.Parse(e.t, e.c, yaml, "DSN", e.dsn)
}

// startDaemon runs cfg's connectors as instance id until the test ends.
func (e *env) startDaemon(cfg *config.Config, id string, opts ...kgo.Opt) *daemon.Daemon {
	e.t.Helper()
	return e2e.Start(e.t, cfg, id, opts...)
}

// waitExpected waits until the checker sees at least n expected outputs.
func (e *env) waitExpected(cfg *config.Config, name string, n int, within time.Duration) verify.Report {
	e.t.Helper()
	return e2e.WaitExpected(e.t, e.c, cfg, name, n, within)
}

func must(t *testing.T, rep verify.Report, what string) {
	t.Helper()
	e2e.MustBeClean(t, rep, what)
}

// produce writes inputs from..to-1 to topic, poison records included.
func (e *env) produce(topic string, from, to int) {
	e.t.Helper()
	if err := e2e.ProduceRecords(e.c, topic, poisoned(from, to)); err != nil {
		e.t.Fatal(err)
	}
}

func poisoned(from, to int) []*kgo.Record { return e2e.PoisonedRecords(from, to, poisonEvery) }

// feed keeps the connector's backlog on topic several batches long (see
// e2e.Feeder) from input from on.
func (e *env) feed(topic string, from int, committed func() int) *e2e.Feeder {
	return e2e.Feed(e.t, e.c, topic, from, poisoned, committed)
}

// checkpointed is the input records a connector on d has committed: the
// sum of its partitions' checkpoints.
func checkpointed(d *daemon.Daemon, name string) int {
	st, _ := d.Status(name)
	n := 0
	for _, p := range st.Partitions {
		n += int(p.Checkpoint)
	}
	return n
}

// query runs a one-value query on the test database.
func (e *env) query(q string, args ...any) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// aborts sums a connector's aborted batches on d.
func aborts(d *daemon.Daemon, name string) int { return e2e.Aborts([]*daemon.Daemon{d}, name) }
