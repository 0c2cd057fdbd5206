package idempotency

// Needs the Redis `make services` starts (REDIS_ADDR, default
// 127.0.0.1:6379).

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/test/testenv"
)

func newTestDedupe(t *testing.T, window time.Duration) (*Dedupe, *redis.Client, string) {
	t.Helper()
	addr, prefix := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	d, err := NewDedupe(c, prefix+"dedupe:", window)
	if err != nil {
		t.Fatal(err)
	}
	return d, c, prefix + "dedupe:"
}

func TestDedupeSeenAndForget(t *testing.T) {
	ctx := context.Background()
	d, c, prefix := newTestDedupe(t, time.Minute)
	seen, err := d.Seen(ctx, []string{"a", "b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, true}; !slices.Equal(seen, want) {
		t.Fatalf("first batch %v, want %v (a repeated ID is seen the second time)", seen, want)
	}
	// A replay: both skipped.
	seen, _ = d.Seen(ctx, []string{"b", "c", "a"})
	if want := []bool{true, false, true}; !slices.Equal(seen, want) {
		t.Fatalf("replay %v, want %v", seen, want)
	}
	if ttl := c.PTTL(ctx, prefix+"a").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("mark ttl %v, want within the window", ttl)
	}
	// The write of c failed: unmark it, and its replay goes through.
	if err := d.Forget(ctx, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	seen, _ = d.Seen(ctx, []string{"c"})
	if seen[0] {
		t.Fatal("a forgotten ID is still seen")
	}
	if s, err := d.Seen(ctx, nil); err != nil || s != nil {
		t.Fatalf("empty batch: %v %v", s, err)
	}
}

// TestDedupeWindowForgets shows the pattern's limit: a replay older than
// the window is not recognised.
func TestDedupeWindowForgets(t *testing.T) {
	ctx := context.Background()
	d, _, _ := newTestDedupe(t, 50*time.Millisecond)
	if seen, _ := d.Seen(ctx, []string{"x"}); seen[0] {
		t.Fatal("new ID seen")
	}
	if seen, _ := d.Seen(ctx, []string{"x"}); !seen[0] {
		t.Fatal("replay within the window not seen")
	}
	time.Sleep(120 * time.Millisecond)
	if seen, _ := d.Seen(ctx, []string{"x"}); seen[0] {
		t.Fatal("replay after the window still seen: want it forgotten (documented limit)")
	}
}

func TestDedupeWindowValidation(t *testing.T) {
	if _, err := NewDedupe(nil, "p:", time.Microsecond); !errors.Is(err, ErrDedupeWindow) {
		t.Fatalf("want ErrDedupeWindow, got %v", err)
	}
}

func TestDedupeRedisDown(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	d, err := NewDedupe(c, "p:", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Seen(context.Background(), []string{"a"}); err == nil {
		t.Fatal("want an error with Redis unreachable")
	}
}
