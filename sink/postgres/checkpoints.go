package postgres

import (
	"context"
	"fmt"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

var _ txn.CheckpointAdmin = (*Store)(nil)

// Checkpoints reads group's stored checkpoints (partitions claimed but never
// committed have none).
func (s *Store) Checkpoints(ctx context.Context, group string) (connector.Checkpoint, error) {
	pool, err := s.Pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, "SELECT topic, partition, next_offset FROM "+s.cfg.QuotedOffsetsTable()+
		" WHERE group_id = $1 AND next_offset >= 0", group)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	defer rows.Close()
	cp := connector.Checkpoint{}
	for rows.Next() {
		var tp connector.TopicPartition
		var next int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &next); err != nil {
			return nil, err
		}
		cp[tp] = next
	}
	return cp, rows.Err()
}

// SetCheckpoints sets next offsets, keeping each partition's claim epoch (a
// new partition gets epoch 0, below any real claim).
func (s *Store) SetCheckpoints(ctx context.Context, group string, cp connector.Checkpoint) error {
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	var topics []string
	var parts []int32
	var nexts []int64
	for tp, next := range cp {
		topics, parts, nexts = append(topics, tp.Topic), append(parts, tp.Partition), append(nexts, next)
	}
	_, err = pool.Exec(ctx, "INSERT INTO "+s.cfg.QuotedOffsetsTable()+
		" (group_id, topic, partition, next_offset, claim_epoch, updated_at)"+
		" SELECT $1, t, p, n, 0, now() FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, n)"+
		" ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
		group, topics, parts, nexts)
	if err != nil {
		return fmt.Errorf("setting checkpoints: %w", err)
	}
	return nil
}

// ResetCheckpoints forgets group's offsets (next_offset -1, "none"), keeping
// the rows and their claim epochs.
func (s *Store) ResetCheckpoints(ctx context.Context, group string) error {
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "UPDATE "+s.cfg.QuotedOffsetsTable()+
		" SET next_offset = -1, updated_at = now() WHERE group_id = $1", group); err != nil {
		return fmt.Errorf("resetting checkpoints: %w", err)
	}
	return nil
}
