package testenv

import (
	"context"
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
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("redis cleanup of %s*: %v", prefix, err)
			return
		}
		// UNLINK in chunks, not one DEL: a DEL of a million keys held the
		// shared server 4.9 s (SLOWLOG), past the 5 s timeouts of the
		// tests running beside this one.
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			if err := rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
				t.Logf("redis cleanup of %s*: %v", prefix, err)
				return
			}
			keys = keys[n:]
		}
	})
	return addr, prefix
}
