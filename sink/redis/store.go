package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// Store is the exactly-once Redis sink (txn.SinkStore): each Commit checks
// the partitions' claim epochs and checkpoints, writes the batch and moves
// the checkpoints, all or nothing: one script, or first a WATCHed
// MULTI/EXEC block that does the same for half the server's work (see
// watch.go). See commitScript for how "nothing" is kept when a write could
// fail.
//
// Durability is the server's: with appendonly yes and appendfsync always a
// commit is on disk before Commit returns; with everysec a server crash
// may lose the last second of commits, but Redis logs a script's effects
// as one MULTI/EXEC block, so data and checkpoint are lost together and
// the lost batches are simply read again. That needs a server that recovers
// a torn last block (a crash during its write) by cutting it whole: Redis
// 7.0 with aof-load-truncated yes (the default) keeps its first commands
// behind a MULTI without EXEC, and the restart after the next one applies
// them with the next transaction, so a batch applied again after the crash
// counts twice (TestRedisTornAOFTailRepaired). Run aof-load-truncated no
// and repair a refused AOF with redis-check-aof --fix, which cuts the block
// whole.
type Store struct {
	cfg    Config
	client *redis.Client
	plan   *planner

	// For tests: scriptOnly skips the fast path (watch.go), and
	// beforeExec runs between its checks and its EXEC.
	scriptOnly bool
	beforeExec func()
}

var _ txn.SinkStore = (*Store)(nil)

// NewStore validates cfg, connects and loads the scripts. dlqTopic is the connector's dead-letter topic ("" with errors.tolerance
// none): records routed there go to the DLQ stream.
func NewStore(ctx context.Context, cfg Config, dlqTopic string) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, client: redis.NewClient(opts)}
	s.plan = newPlanner(&s.cfg, dlqTopic)
	for _, sc := range []*redis.Script{claimScript, commitScript, snapshotScript} {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			_ = s.client.Close()
			return nil, fmt.Errorf("redis sink: loading scripts: %w", connError(opts, err))
		}
	}
	if err := ensurePrefixKey(ctx, s.client, &s.cfg); err != nil {
		_ = s.client.Close()
		return nil, err
	}
	return s, nil
}

// Client is the store's connection pool, for tools and tests.
func (s *Store) Client() *redis.Client { return s.client }

// OffsetsKey is the key of group's offsets hash.
func (s *Store) OffsetsKey(group string) string { return s.plan.k.offsetsKey(group) }

// Claim takes ownership of tps: one script raises each partition's claim
// epoch and returns it with the stored checkpoint. It is all or nothing:
// a field it cannot raise (malformed, or at epoch MaxInt64) fails the
// claim (Fatal) before any epoch is written.
func (s *Store) Claim(ctx context.Context, group string, tps []connector.TopicPartition) (txn.Claims, error) {
	claims := txn.Claims{}
	if len(tps) == 0 {
		return claims, nil
	}
	args := make([]any, 0, len(tps))
	for _, tp := range tps {
		args = append(args, tp.String())
	}
	res, err := claimScript.Run(ctx, s.client, []string{s.OffsetsKey(group)}, args...).Slice()
	if err != nil {
		return nil, classify("claim", err)
	}
	switch kind, _ := res[0].(string); {
	case (kind == "malformed" || kind == "exhausted") && len(res) == 3:
		what := "malformed stored claim"
		if kind == "exhausted" {
			what = "claim epochs exhausted"
		}
		return nil, connector.NewCommitError(connector.Fatal, "claim",
			fmt.Errorf("offsets hash %s field %v: %s (%q); no partition was claimed", s.OffsetsKey(group), res[1], what, res[2]))
	case kind != "ok":
		return nil, s.refusal("claim", res, nil)
	}
	out, _ := res[1].([]any)
	if len(out) != 2*len(tps) {
		return nil, connector.NewCommitError(connector.Fatal, "claim", fmt.Errorf("unexpected reply %v", res))
	}
	for i, tp := range tps {
		next, err1 := strconv.ParseInt(fmt.Sprint(out[2*i]), 10, 64)
		epoch, err2 := strconv.ParseInt(fmt.Sprint(out[2*i+1]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, connector.NewCommitError(connector.Fatal, "claim", fmt.Errorf("partition %s: bad stored claim %v:%v: %w", tp, out[2*i+1], out[2*i], err))
		}
		claims[tp] = txn.PartitionClaim{Epoch: epoch, Next: next}
	}
	return claims, nil
}

// Commit writes recs and moves each partition of to from from[tp] to
// to[tp] at epochs[tp], in one atomic step — an optimistic MULTI/EXEC
// block when its checks pass (watch.go), else the script, which decides
// every refusal: nothing is written if any partition's
// stored "<epoch>:<next>" differs from what epochs and from say
// (Fenced), or if any key it writes holds another type (Fatal,
// *WrongTypeError). The whole batch is one script however large: Redis
// handles ARGV of tens of thousands of values, and splitting the batch
// would break its atomicity.
//
// State records (connector.StateRecord) are HSETs and HDELs of state
// hashes in the same script (state.go): applied with the batch, or not at
// all.
func (s *Store) Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error {
	offsetsKey := s.OffsetsKey(group)
	state := s.plan.stateChanges(recs)
	if state != nil {
		recs = dataRecords(recs)
	}
	ops := make([]op, len(recs))
	for i, r := range recs {
		o, err := s.plan.op(r, offsetsKey)
		if err != nil {
			return err
		}
		ops[i] = o
	}
	moves, err := checkpointMoves(epochs, from, to)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return connector.NewCommitError(connector.Abortable, "commit", err)
	}
	if !s.scriptOnly {
		if err := s.commitWatched(ctx, offsetsKey, moves, ops, state); !errors.Is(err, errSlowPath) {
			return err
		}
	}
	keys, args, err := s.plan.commitArgs(offsetsKey, epochs, from, to, ops, state)
	if err != nil {
		return err
	}
	res, err := commitScript.Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return classify("commit", err)
	}
	if kind, _ := res[0].(string); kind == "ok" {
		return nil
	}
	return s.refusal("commit", res, func(field string) string {
		for tp := range to {
			if tp.String() == field {
				want := int64(-1)
				if f, ok := from[tp]; ok {
					want = f
				}
				return strconv.FormatInt(epochs[tp], 10) + ":" + strconv.FormatInt(want, 10)
			}
		}
		return ""
	}, recs...)
}

// refusal turns a script's fenced or wrongtype reply into its error.
func (s *Store) refusal(op string, res []any, expected func(field string) string, recs ...*connector.Record) error {
	kind, _ := res[0].(string)
	switch {
	case kind == "fenced" && len(res) == 3 && expected != nil:
		field := fmt.Sprint(res[1])
		return connector.NewCommitError(connector.Fenced, op,
			&FencedError{Partition: field, Stored: fmt.Sprint(res[2]), Expected: expected(field)})
	case kind == "wrongtype" && len(res) == 5:
		e := &WrongTypeError{Key: fmt.Sprint(res[2]), Found: fmt.Sprint(res[3]), Wanted: fmt.Sprint(res[4])}
		if i, err := strconv.Atoi(fmt.Sprint(res[1])); err == nil && i >= 1 && i <= len(recs) {
			e.Origin = recs[i-1].Origin
		}
		return connector.NewCommitError(connector.Fatal, op, e)
	}
	return connector.NewCommitError(connector.Fatal, op, fmt.Errorf("unexpected script reply %v", res))
}

// ErrNoAuditLog is returned by Snapshot when audit_log is off: the applied
// event IDs are not recorded.
var ErrNoAuditLog = errors.New("redis sink: audit_log is off, so applied event IDs are not recorded")

// Snapshot reads, atomically, group's stored checkpoint and the audit log:
// one entry "<target>:<event_id>" per application, target being the
// structure (string, hash, stream) or "dlq". A double application shows as
// a repeated entry. With audit_log off it returns the checkpoint and
// ErrNoAuditLog.
func (s *Store) Snapshot(ctx context.Context, group string) (connector.Checkpoint, []string, error) {
	res, err := snapshotScript.Run(ctx, s.client, []string{s.OffsetsKey(group), s.plan.k.audit}).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("redis sink snapshot: %w", err)
	}
	if len(res) != 2 {
		return nil, nil, fmt.Errorf("redis sink snapshot: unexpected reply %v", res)
	}
	pairs, _ := res[0].([]any)
	cp := connector.Checkpoint{}
	for i := 0; i+1 < len(pairs); i += 2 {
		tp, err := parsePartitionField(fmt.Sprint(pairs[i]))
		if err != nil {
			return nil, nil, fmt.Errorf("redis sink snapshot: %w", err)
		}
		v := fmt.Sprint(pairs[i+1])
		_, nextText, ok := strings.Cut(v, ":")
		next, err := strconv.ParseInt(nextText, 10, 64)
		if !ok || err != nil {
			return nil, nil, fmt.Errorf("redis sink snapshot: partition %s: bad stored value %q", tp, v)
		}
		if next >= 0 {
			cp[tp] = next
		}
	}
	if !s.cfg.AuditLog {
		return cp, nil, ErrNoAuditLog
	}
	entries, _ := res[1].([]any)
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = fmt.Sprint(e)
	}
	return cp, ids, nil
}

// SplitAuditEntry splits an audit log entry into its target (string, hash,
// stream or dlq) and event ID.
func SplitAuditEntry(entry string) (target, eventID string, ok bool) {
	return strings.Cut(entry, ":")
}

// ApplyCounts reads the test apply counters of ids (0 for an ID never
// applied). It needs test_apply_counter.
func (s *Store) ApplyCounts(ctx context.Context, ids []string) (map[string]int64, error) {
	return applyCounts(ctx, s.client, s.plan, ids)
}

func applyCounts(ctx context.Context, c redis.Cmdable, p *planner, ids []string) (map[string]int64, error) {
	if !p.cfg.TestApplyCounter {
		return nil, errors.New("redis sink: test_apply_counter is off")
	}
	out := make(map[string]int64, len(ids))
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		keys := make([]string, len(part))
		for i, id := range part {
			keys[i] = p.counterKey(id)
		}
		vals, err := c.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("redis sink: reading apply counters: %w", err)
		}
		for i, v := range vals {
			var n int64
			if v != nil {
				if n, err = strconv.ParseInt(fmt.Sprint(v), 10, 64); err != nil {
					return nil, fmt.Errorf("redis sink: apply counter of %s: %w", part[i], err)
				}
			}
			out[part[i]] = n
		}
	}
	return out, nil
}

func parsePartitionField(f string) (connector.TopicPartition, error) {
	i := strings.LastIndexByte(f, '/')
	if i <= 0 {
		return connector.TopicPartition{}, fmt.Errorf("bad partition field %q", f)
	}
	p, err := strconv.ParseInt(f[i+1:], 10, 32)
	if err != nil {
		return connector.TopicPartition{}, fmt.Errorf("bad partition field %q", f)
	}
	return connector.TopicPartition{Topic: f[:i], Partition: int32(p)}, nil
}

// Close closes the connection pool.
func (s *Store) Close() { _ = s.client.Close() }
