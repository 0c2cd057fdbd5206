package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis returns the address of the Redis that `make services` starts
// (REDIS_ADDR, default 127.0.0.1:6379) and a key prefix unique to the test.
// Tests share DB 0 and keep to their prefix; keys under it are deleted when
// the test ends.
func Redis(t testing.TB) (addr, prefix string) {
	t.Helper()
	needService(t, "Redis")
	addr = envOr(EnvRedisAddr, DefaultRedisAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		missing(t, "Redis", addr, "services", err)
	}
	prefix = UniqueName(t, "t", ":", 100) + ":"
	t.Cleanup(func() {
		defer rdb.Close()
		if _, err := DeleteRedisKeys(rdb, prefix+"*"); err != nil {
			// Left behind, the keys slow every later test's cleanup
			// (each scans the whole keyspace) until those run out of
			// time too: CI once found 7 million keys of earlier runs.
			t.Errorf("redis cleanup of %s*: %v", prefix, err)
		}
	})
	return addr, prefix
}

// DeleteRedisKeys deletes every key matching pattern: a SCAN of the whole
// keyspace, each page's keys UNLINKed before the next page is read. Pages of
// 10,000 and one UNLINK each, not one DEL of them all: a DEL of a million
// keys held the shared server 4.9 s (SLOWLOG), past the 5 s timeouts of the
// tests running beside it. It returns how many keys it deleted. The bound
// is generous, for a loaded machine: test/faults' s01 leaves 1.3 million
// keys, deleted (with an AOF rewrite) in 5.1 s on a quiet one.
func DeleteRedisKeys(rdb *redis.Client, pattern string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	deleted := 0
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, 10000).Result()
		if err != nil {
			return deleted, fmt.Errorf("scan after %d keys deleted: %w", deleted, err)
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return deleted, fmt.Errorf("unlink after %d keys deleted: %w", deleted, err)
			}
			deleted += len(keys)
		}
		if cursor = next; cursor == 0 {
			return deleted, nil
		}
	}
}
