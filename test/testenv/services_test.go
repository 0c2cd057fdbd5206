package testenv

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Needs: Kafka from `make services`.
func TestKafkaTopicsAndTransaction(t *testing.T) {
	brokers := Kafka(t)
	topics := KafkaTopics(t, brokers, 2, 3)
	if topics[0] == topics[1] {
		t.Fatalf("topic names not unique: %v", topics)
	}
	abortThenCommit(t, brokers, topics[0])
}

// abortThenCommit produces five records in an aborted transaction and five
// in a committed one, and checks that read_committed sees only the latter.
func abortThenCommit(t *testing.T, brokers []string, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	producer := KafkaClient(t, brokers,
		kgo.TransactionalID(UniqueTransactionalID(t)), kgo.DefaultProduceTopic(topic))
	// One aborted and one committed transaction: read_committed must see
	// only the committed records.
	for _, commit := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			r := kgo.StringRecord(strconv.FormatBool(bool(commit)) + "-" + strconv.Itoa(i))
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := producer.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}

	consumer := KafkaClient(t, brokers, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []string
	for len(got) < 5 {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatalf("fetch: %v (got %v)", err, got)
		}
		for _, r := range fetches.Records() {
			got = append(got, string(r.Value))
		}
	}
	for _, v := range got {
		if v[:4] != "true" {
			t.Fatalf("read_committed returned an aborted record: %v", got)
		}
	}
}

// Needs: PostgreSQL from `make services`.
func TestPostgresFreshDatabase(t *testing.T) {
	needService(t, "PostgreSQL")
	var dsn string
	t.Run("create", func(t *testing.T) {
		dsn = Postgres(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var setting string
		if err := conn.QueryRow(ctx, "SHOW max_prepared_transactions").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if mpt, err := strconv.Atoi(setting); err != nil || mpt <= 0 {
			t.Fatalf("max_prepared_transactions = %q, want > 0 for two-phase commit", setting)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int primary key)"); err != nil {
			t.Fatal(err)
		}
		// Leave a connection open: the cleanup must drop the database anyway.
	})
	// The subtest's cleanup has run: its database must be gone.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, envOr(EnvPostgresDSN, DefaultPostgresDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", cfg.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after the test", cfg.Database)
	}
}

// Needs: Redis from `make services`.
func TestRedisPrefixAndAppendOnly(t *testing.T) {
	needService(t, "Redis")
	var addr, prefix string
	t.Run("use", func(t *testing.T) {
		addr, prefix = Redis(t)
		ctx := context.Background()
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		if err := rdb.Set(ctx, prefix+"k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := rdb.Get(ctx, prefix+"k").Result(); err != nil || v != "v" {
			t.Fatalf("GET = %q, %v; want v", v, err)
		}
		cfg, err := rdb.ConfigGet(ctx, "appendonly").Result()
		if err != nil {
			t.Fatal(err)
		}
		if cfg["appendonly"] != "yes" {
			t.Fatalf("appendonly = %q, want yes", cfg["appendonly"])
		}
	})
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if n, err := rdb.Exists(context.Background(), prefix+"k").Result(); err != nil || n != 0 {
		t.Fatalf("key %sk left behind (exists=%d, err=%v)", prefix, n, err)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName(t, "t", "_", 63), UniqueName(t, "t", "_", 63)
	if a == b {
		t.Fatalf("not unique: %s", a)
	}
	if len(a) > 63 || a[:len("t_testuniquename_")] != "t_testuniquename_" {
		t.Fatalf("UniqueName = %q", a)
	}
	long := UniqueName(t, "prefix", "-", 20)
	if len(long) > 20 {
		t.Fatalf("UniqueName over max: %q (%d)", long, len(long))
	}
}
