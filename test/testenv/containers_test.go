package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Needs: dockerd from `make services` and the images from `make images`.
func TestContainersRedisAndKafka(t *testing.T) {
	needService(t, "Docker and the test images")
	t.Run("redis", func(t *testing.T) {
		rc := StartRedisContainer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rdb := redis.NewClient(&redis.Options{Addr: rc.Addr})
		defer rdb.Close()
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "aof-load-truncated": "no"} {
			if cfg, err := rdb.ConfigGet(ctx, key).Result(); err != nil || cfg[key] != want {
				t.Fatalf("%s = %v, %v; want %s", key, cfg, err, want)
			}
		}
		// A restart runs the image's entrypoint again, this time with an
		// AOF to check before the server loads it.
		if err := rc.Stop(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := rc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		port, err := rc.MappedPort(ctx, "6379/tcp")
		if err != nil {
			t.Fatal(err)
		}
		again := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port.Port()})
		defer again.Close()
		// Start returns once the container runs; the server may still be
		// checking and loading its AOF.
		for again.Ping(ctx).Err() != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		if v, err := again.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("after a restart: k = %q, %v; want v (from the AOF)", v, err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		pc := StartPostgresContainer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pc.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var mpt string
		if err := conn.QueryRow(ctx, "SHOW max_prepared_transactions").Scan(&mpt); err != nil || mpt == "0" {
			t.Fatalf("max_prepared_transactions = %q, %v", mpt, err)
		}
	})
	t.Run("kafka-1", func(t *testing.T) {
		kc := StartKafkaContainers(t, 1)
		abortThenCommit(t, kc.Brokers, KafkaTopic(t, kc.Brokers, 1))
	})
}

// Needs: dockerd from `make services` and the images from `make images`.
func TestKafkaContainersThreeNodes(t *testing.T) {
	kc := StartKafkaContainers(t, 3)
	if len(kc.Brokers) != 3 || len(kc.Nodes) != 3 {
		t.Fatalf("got %d brokers, %d nodes; want 3", len(kc.Brokers), len(kc.Nodes))
	}
	// Replication factor 3 by default: the topic needs every node.
	abortThenCommit(t, kc.Brokers, KafkaTopic(t, kc.Brokers, 3))
}
