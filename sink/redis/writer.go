package redis

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// Writer is the at-least-once Redis sink (txn.SinkWriter): plain writes,
// batch_size records per round trip, no checkpoint. Nothing is atomic
// across round trips: a failed batch may be partly written and is written
// again when re-read, so SET and HSET converge while stream entries, DLQ
// entries, apply counters and audit log entries are duplicated — which is
// what the benchmark and the fault suites measure against exactly_once.
//
// Each round trip is one MULTI/EXEC block, not a bare pipeline, and string
// records without a TTL are MSETs of msetPairs keys, not one SET each. A
// pipeline reaches the server in 16 KiB reads, each its own event-loop
// pass, and with appendfsync always (the durable setting exactly_once is
// compared under) Redis writes and fsyncs the AOF after every pass that
// wrote: some 15 fsyncs per hundred 1 KB records, where the exactly-once
// script costs one per batch. EXEC applies the block in one pass, so one
// fsync per round trip; MSET saves the server a command dispatch and a
// reply per record. Measured on the shared Redis, 5000 records of 1 KB:
// a pipeline of SETs 25-48k records/s, MULTI/EXEC of MSETs 72-230k.
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
		return nil, connError(opts, err)
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
// dead-lettered), then writes them in MULTI/EXEC blocks of batch_size.
//
// State records (connector.StateRecord) are HSETs and HDELs of state
// hashes (state.go), after the data in the last block.
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
	if len(ops) == 0 && state == nil {
		return nil
	}
	for start := 0; ; start += w.cfg.BatchSize {
		end := min(start+w.cfg.BatchSize, len(ops))
		pipe := w.client.TxPipeline()
		w.plan.queueWrites(ctx, pipe, ops[start:end])
		if end == len(ops) && state != nil {
			pipeState(ctx, pipe, state)
		}
		if err := execPipeline(ctx, pipe); err != nil {
			return err
		}
		if end == len(ops) {
			return nil
		}
	}
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
