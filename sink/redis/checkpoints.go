package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

var _ txn.CheckpointAdmin = (*Store)(nil)

// setOffsetsScript sets "<epoch>:<next>" fields of the offsets hash, keeping
// each field's claim epoch ("0" for a new field): ARGV is field, next pairs.
// With next -1 for every existing field it is a reset.
var setOffsetsScript = redis.NewScript(`#!lua
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local gen = '0'
  if cur then gen = string.match(cur, '^(-?%d+):') or '0' end
  redis.call('HSET', KEYS[1], ARGV[i], gen .. ':' .. ARGV[i + 1])
end
return 'ok'
`)

// Checkpoints reads group's stored checkpoints from the offsets hash.
func (s *Store) Checkpoints(ctx context.Context, group string) (connector.Checkpoint, error) {
	fields, err := s.client.HGetAll(ctx, s.OffsetsKey(group)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	cp := connector.Checkpoint{}
	for field, v := range fields {
		tp, ok := parseField(field)
		_, nextText, found := strings.Cut(v, ":")
		next, err := strconv.ParseInt(nextText, 10, 64)
		if !ok || !found || err != nil {
			return nil, fmt.Errorf("offsets hash %s: malformed field %q = %q", s.OffsetsKey(group), field, v)
		}
		if next >= 0 {
			cp[tp] = next
		}
	}
	return cp, nil
}

// SetCheckpoints sets the given partitions' next offsets.
func (s *Store) SetCheckpoints(ctx context.Context, group string, cp connector.Checkpoint) error {
	args := make([]any, 0, 2*len(cp))
	for tp, next := range cp {
		args = append(args, tp.String(), strconv.FormatInt(next, 10))
	}
	return s.setOffsets(ctx, group, args)
}

// ResetCheckpoints sets every partition's offset to none (-1), keeping the
// claim epochs.
func (s *Store) ResetCheckpoints(ctx context.Context, group string) error {
	fields, err := s.client.HKeys(ctx, s.OffsetsKey(group)).Result()
	if err != nil {
		return fmt.Errorf("reading checkpoints: %w", err)
	}
	args := make([]any, 0, 2*len(fields))
	for _, f := range fields {
		args = append(args, f, "-1")
	}
	return s.setOffsets(ctx, group, args)
}

func (s *Store) setOffsets(ctx context.Context, group string, args []any) error {
	if len(args) == 0 {
		return nil
	}
	if err := setOffsetsScript.Run(ctx, s.client, []string{s.OffsetsKey(group)}, args...).Err(); err != nil {
		return fmt.Errorf("setting checkpoints: %w", err)
	}
	return nil
}

// parseField parses an offsets hash field "<topic>/<partition>".
func parseField(f string) (connector.TopicPartition, bool) {
	i := strings.LastIndexByte(f, '/')
	if i <= 0 {
		return connector.TopicPartition{}, false
	}
	p, err := strconv.ParseInt(f[i+1:], 10, 32)
	if err != nil {
		return connector.TopicPartition{}, false
	}
	return connector.TopicPartition{Topic: f[:i], Partition: int32(p)}, true
}
