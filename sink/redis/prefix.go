package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// swapPrefixScript sets the readers' prefix key and returns what it held, in
// one script: a reader's GET sees the old prefix or the new one, and the
// caller learns what it replaced.
var swapPrefixScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
return old`)

// ensurePrefixKey sets prefix_key to the sink's key_prefix unless it exists
// (SET NX): after a promote it names a replay's prefix, and a restart of the
// old connector must not take it back.
func ensurePrefixKey(ctx context.Context, c redis.Cmdable, cfg *Config) error {
	if cfg.PrefixKey == "" {
		return nil
	}
	if err := c.SetNX(ctx, cfg.PrefixKey, cfg.KeyPrefix, 0).Err(); err != nil {
		return fmt.Errorf("redis sink: prefix_key %s: %w", cfg.PrefixKey, err)
	}
	return nil
}

// SwapPrefix points the readers' prefix key at prefix and returns the prefix
// it named before ("" if it did not exist). Doing it twice is harmless, so a
// promote interrupted by a crash is simply done again.
func SwapPrefix(ctx context.Context, cfg Config, prefix string) (previous string, err error) {
	if cfg.PrefixKey == "" {
		return "", errors.New("redis sink: no prefix_key to swap")
	}
	opts, err := cfg.options()
	if err != nil {
		return "", err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	old, err := swapPrefixScript.Run(ctx, c, []string{cfg.PrefixKey}, prefix).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis sink: swapping prefix_key %s: %w", cfg.PrefixKey, err)
	}
	s, _ := old.(string)
	return s, nil
}
