package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dedupe is the idempotent-consumer pattern on Redis, for an at-least-once
// sink that cannot keep its checkpoint with its data: before writing a
// record, the sink marks its event ID (SET <prefix><id> 1 NX PX <window>)
// and skips records whose mark already existed.
//
// Its limits, which the sink using it inherits:
//
//   - The window. A mark expires after window; a record replayed later
//     than that (a consumer group reset, a Kappa-style reprocess, a
//     partition stuck for longer) is written again. The window must cover
//     the longest replay that should be deduplicated, and costs memory per
//     event ID in it (about 100 bytes each, key included).
//   - Mark first, then write: a crash (or a failed write) between the two
//     LOSES the record, because its replay finds the mark and skips it.
//     Call Forget on the IDs whose write failed to unmark them; a crash,
//     which cannot call Forget, still loses them until the window passes.
//     Writing first and marking after instead duplicates on a crash in
//     between: the pattern trades one for the other, it never gives both.
//     Only a sink that commits data and checkpoint atomically (the
//     exactly_once protocols) has neither.
//   - The mark and the write are separate stores: a Redis failover that
//     loses recent marks (asynchronous replication, appendfsync everysec)
//     lets those records through again.
//   - Event IDs must be deterministic (see Deriver): a replay with new IDs
//     is not recognised.
type Dedupe struct {
	client redis.UniversalClient
	prefix string
	window time.Duration
}

// NewDedupe returns a dedupe store keeping marks under prefix for window
// (at least a millisecond).
func NewDedupe(client redis.UniversalClient, prefix string, window time.Duration) (*Dedupe, error) {
	if window < time.Millisecond {
		return nil, fmt.Errorf("%w, got %v", ErrDedupeWindow, window)
	}
	return &Dedupe{client: client, prefix: prefix, window: window}, nil
}

// Seen marks ids and reports, per ID, whether it was already marked (true:
// skip the record). One pipelined round trip. An ID repeated within ids is
// reported seen from its second occurrence. On error the marks may be
// partly set: Forget the IDs before failing the batch.
func (d *Dedupe) Seen(ctx context.Context, ids []string) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := d.client.Pipeline()
	cmds := make([]*redis.BoolCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.SetNX(ctx, d.prefix+id, "1", d.window)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("dedupe: marking %d event IDs: %w", len(ids), err)
	}
	seen := make([]bool, len(ids))
	for i, c := range cmds {
		seen[i] = !c.Val()
	}
	return seen, nil
}

// Forget removes the marks of ids, so their records are written when read
// again: call it for the records whose write failed after Seen.
func (d *Dedupe) Forget(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := d.client.Pipeline()
	for _, id := range ids {
		pipe.Del(ctx, d.prefix+id)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		return fmt.Errorf("dedupe: forgetting %d event IDs: %w", len(ids), err)
	}
	return nil
}

// ErrDedupeWindow is returned by NewDedupe for a window too short.
var ErrDedupeWindow = errors.New("dedupe window must be at least 1ms")
