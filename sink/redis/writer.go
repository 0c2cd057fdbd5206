package redis

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// Writer is the at-least-once Redis sink (txn.SinkWriter): plain writes,
// pipelined batch_size records per round trip, no checkpoint. Nothing is
// atomic: a failed batch may be partly written and is written again when
// re-read, so SET and HSET converge while stream entries, DLQ entries,
// apply counters and audit log entries are duplicated — which is what the
// benchmark and the fault suites measure against exactly_once.
type Writer struct {
	cfg    Config
	client *redis.Client
	plan   *planner
}

var _ txn.SinkWriter = (*Writer)(nil)

// NewWriter validates cfg and connects. dlqTopic is the connector's
// dead-letter topic ("" with errors.tolerance none), as for NewStore.
func NewWriter(ctx context.Context, cfg Config, dlqTopic string) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	w := &Writer{cfg: cfg, client: redis.NewClient(opts)}
	w.plan = newPlanner(&w.cfg, dlqTopic)
	if err := w.client.Ping(ctx).Err(); err != nil {
		_ = w.client.Close()
		return nil, err
	}
	if err := ensurePrefixKey(ctx, w.client, &w.cfg); err != nil {
		_ = w.client.Close()
		return nil, err
	}
	return w, nil
}

// Client is the writer's connection pool, for tools and tests.
func (w *Writer) Client() *redis.Client { return w.client }

// WriteBatch renders every record first (a record that cannot be rendered
// fails the batch before anything is sent, unless it can be
// dead-lettered), then pipelines the writes in chunks of batch_size.
//
// State records (connector.StateRecord) are HSETs and HDELs of state
// hashes (state.go), pipelined after the data.
func (w *Writer) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	state := w.plan.stateChanges(recs)
	if state != nil {
		recs = dataRecords(recs)
	}
	ops := make([]op, len(recs))
	for i, r := range recs {
		o, err := w.plan.op(r, "")
		if err != nil {
			return err
		}
		ops[i] = o
	}
	for start := 0; start < len(ops); start += w.cfg.BatchSize {
		if err := w.writeChunk(ctx, ops[start:min(start+w.cfg.BatchSize, len(ops))]); err != nil {
			return err
		}
	}
	if state != nil {
		pipe := w.client.Pipeline()
		pipeState(ctx, pipe, state)
		return execPipeline(ctx, pipe)
	}
	return nil
}

func (w *Writer) writeChunk(ctx context.Context, ops []op) error {
	pipe := w.client.Pipeline()
	ttl := w.cfg.TTL
	var entries []any
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opString:
			pipe.Set(ctx, o.key, o.args[0], ttl)
		case opHash:
			pipe.HSet(ctx, o.key, o.args...)
			if ttl > 0 {
				pipe.PExpire(ctx, o.key, ttl)
			}
		case opStream, opDLQ:
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: o.key, Values: o.args})
			if o.kind == opStream && ttl > 0 {
				pipe.PExpire(ctx, o.key, ttl)
			}
		}
		if w.cfg.TestApplyCounter {
			pipe.Incr(ctx, w.plan.counterKey(o.eventID))
		}
		if w.cfg.AuditLog {
			entries = append(entries, o.entry)
		}
	}
	if len(entries) > 0 {
		pipe.RPush(ctx, w.plan.k.audit, entries...)
	}
	return execPipeline(ctx, pipe)
}

// execPipeline runs pipe and classifies its failures.
func execPipeline(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	// Exec returns the first failure; report every distinct one so a
	// WRONGTYPE is not hidden behind a later, commoner error.
	var errs []error
	seen := map[string]bool{}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			errs = append(errs, e)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, err)
	}
	return classify("write", errors.Join(errs...))
}

// ApplyCounts reads the test apply counters of ids, as Store.ApplyCounts.
func (w *Writer) ApplyCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	return applyCounts(ctx, w.client, w.plan, ids)
}

// AuditLog reads the audit log: one "<target>:<event_id>" entry per
// application, duplicates included. It needs audit_log.
func (w *Writer) AuditLog(ctx context.Context) ([]string, error) {
	if !w.cfg.AuditLog {
		return nil, ErrNoAuditLog
	}
	return w.client.LRange(ctx, w.plan.k.audit, 0, -1).Result()
}

// Close closes the connection pool.
func (w *Writer) Close() { _ = w.client.Close() }
