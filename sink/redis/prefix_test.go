package redis

import (
	"context"
	"testing"
	"time"
)

// TestPrefixKey: the sink sets its prefix key at start only if it is
// missing (a restarted old connector leaves a promoted key alone), and
// SwapPrefix moves it in one script, saying what it named before.
func TestPrefixKey(t *testing.T) {
	cfg := sharedConfig(t)
	cfg.PrefixKey = cfg.KeyPrefix + "current"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := newStore(t, cfg, "")
	if got, err := s.Client().Get(ctx, cfg.PrefixKey).Result(); err != nil || got != cfg.KeyPrefix {
		t.Fatalf("prefix key after start = %q, %v; want %q", got, err, cfg.KeyPrefix)
	}
	next := cfg
	next.KeyPrefix += "v2:"
	prev, err := SwapPrefix(ctx, next, next.KeyPrefix)
	if err != nil || prev != cfg.KeyPrefix {
		t.Fatalf("SwapPrefix = %q, %v; want the old prefix %q", prev, err, cfg.KeyPrefix)
	}
	newStore(t, cfg, "") // the old connector restarts
	if got, _ := s.Client().Get(ctx, cfg.PrefixKey).Result(); got != next.KeyPrefix {
		t.Fatalf("a restarted old sink moved the prefix key back to %q", got)
	}
	if _, err := SwapPrefix(ctx, Config{Addr: cfg.Addr}, "x"); err == nil {
		t.Fatal("SwapPrefix without a prefix_key succeeded")
	}
}
