package verify

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	sinkpg "github.com/connectd/connectd/sink/postgres"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/txn"
	"github.com/connectd/connectd/window"
)

// The batch oracle on PostgreSQL and Redis sinks (the services of `make
// services`; Kafka is in-process): the real window stage's output of each
// batch is committed with its checkpoint through the sink's own
// exactly_once commit (Claim, then Commit with the offsets CAS or
// script), as txn.SinkOffsets does; then rows and keys are changed the way
// a broken connector would leave them, and `connectd verify` must say so.

// sinkCommit is the exactly_once half of a sink the tests drive.
type sinkCommit interface {
	Claim(ctx context.Context, group string, tps []connector.TopicPartition) (txn.Claims, error)
	Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error
}

// commitBatches runs the stage over input and commits each batch with its
// checkpoint; it returns the stage's output.
func commitBatches(t *testing.T, spec *pipeline.Spec, input []*connector.Record, sink sinkCommit) []*connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tps := all(input).Partitions()
	claims, err := sink.Claim(ctx, spec.KafkaSrc.Group, tps)
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[connector.TopicPartition]int64{}
	for tp, c := range claims {
		epochs[tp] = c.Epoch
	}
	var out []*connector.Record
	from := connector.Checkpoint{}
	eachBatch(t, spec, input, windowBatch, func(recs []*connector.Record, upTo int) {
		to := all(input[:upTo])
		if err := sink.Commit(ctx, spec.KafkaSrc.Group, epochs, recs, from, to); err != nil {
			t.Fatalf("commit of the batch up to input %d: %v", upTo, err)
		}
		from = to
		out = append(out, recs...)
	})
	return out
}

// logImplausibleIdleAdvance commits, as a stage with idle_timeout would,
// an idle-log entry for the first input partition at its checkpoint, with
// a watermark no partition reached: verify must read the log from the
// sink and report it.
func logImplausibleIdleAdvance(t *testing.T, spec *pipeline.Spec, input []*connector.Record, sink sinkCommit) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp := all(input)
	claims, err := sink.Claim(ctx, spec.KafkaSrc.Group, cp.Partitions())
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[connector.TopicPartition]int64{}
	for tp, c := range claims {
		epochs[tp] = c.Epoch
	}
	tp := cp.Partitions()[0]
	entry := &connector.Record{Kind: connector.StateRecord, Topic: spec.KafkaSrc.Group,
		Key:    fmt.Appendf(nil, "%s%d", window.IdleKeyPrefix, cp[tp]),
		Value:  binary.AppendVarint(nil, 1<<50),
		Origin: connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: -1}}
	one := connector.Checkpoint{tp: cp[tp]}
	if err := sink.Commit(ctx, spec.KafkaSrc.Group, epochs, []*connector.Record{entry}, one, one); err != nil {
		t.Fatal(err)
	}
}

func TestWindowedPostgresSink(t *testing.T) {
	dsn := testenv.Postgres(t) // first: skips under -short
	spec := windowedConnectorTo(t, "{type: session, gap: 1500ms}", "final", fmt.Sprintf(`{type: postgres, dsn: %q, table: wins,
		auto_create: true, test_apply_counter: true, columns: {wkey: "json:key", n: "json:n::bigint", total: "json:total::numeric",
		mean: "json:mean", wstart: "json:window_start::text"}}`, dsn))
	input := randomInput(2000, 5)
	c, _ := windowInput(t, input)
	store := sinkpg.New(*mustSinkConfig[*sinkpg.Config](t, spec), sinkpg.Options{Connector: spec.Conf.Name, DLQTopic: spec.DLQTopic(), ExactlyOnce: true})
	out := commitBatches(t, spec, input, store)
	check := func() Report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := Run(ctx, Options{Spec: spec, Brokers: c.ListenAddrs(), Stopped: true})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check()
	if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 {
		t.Fatalf("clean run: %s, want clean over windows and late records", rep)
	}
	t.Logf("clean run: %s", rep)
	n := rep.Expected

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var results, late []string
	for _, r := range out {
		if r.Topic == "" {
			results = append(results, r.EventID)
		} else if _, ok := r.Header(pipeline.HeaderLateReason); ok {
			late = append(late, r.EventID)
		}
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if tag, err := conn.Exec(ctx, sql, args...); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s %v: %v (%s)", sql, args, err, tag)
		}
	}
	// A wrong count; a window written twice (the UPSERT's second
	// application, as the sink's ON CONFLICT clause counts it); a window
	// missing; a late record missing from the dead-letter table.
	exec("UPDATE wins SET n = n + 1 WHERE event_id = $1", results[10])
	exec("UPDATE wins SET total = total - 0.5 WHERE event_id = $1", results[11])
	exec("UPDATE wins SET apply_count = 2 WHERE event_id = $1", results[20])
	exec("DELETE FROM wins WHERE event_id = $1", results[30])
	exec("DELETE FROM wins_dlq WHERE event_id = $1", late[0])
	rep = check()
	want := Report{Expected: n, Actual: n - 2, Missing: 2, ValueMismatches: 2, ApplyCountViolations: 1}
	named := slices.ContainsFunc(rep.ValueMismatchIDs, func(s string) bool {
		return strings.HasPrefix(s, "wins:"+results[10]+": field n: expected ")
	})
	if !sameWindowCounts(rep, want) || rep.ApplyCountViolations != 1 || !named {
		t.Fatalf("after the faults: %s, want %+v", rep, want)
	}
	t.Logf("after the faults: %s", rep)

	logImplausibleIdleAdvance(t, spec, input, store)
	if rep = check(); rep.IdleLogViolations != 1 {
		t.Fatalf("with an implausible idle advance logged: %s, want it reported", rep)
	}
}

func TestWindowedRedisSink(t *testing.T) {
	addr, prefix := testenv.Redis(t) // first: skips under -short
	spec := windowedConnectorTo(t, "{type: hopping, size: 6s, advance: 2s}", "final", fmt.Sprintf(
		`{type: redis, addr: %q, key_prefix: %q, audit_log: true, test_apply_counter: true}`, addr, prefix))
	input := randomInput(2000, 9)
	c, _ := windowInput(t, input)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := sinkredis.NewStore(ctx, *mustSinkConfig[*sinkredis.Config](t, spec), spec.DLQTopic())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	out := commitBatches(t, spec, input, store)
	check := func() Report {
		t.Helper()
		rep, err := Run(ctx, Options{Spec: spec, Brokers: c.ListenAddrs(), Stopped: true})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check()
	if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 {
		t.Fatalf("clean run: %s, want clean over windows and late records", rep)
	}
	t.Logf("clean run: %s", rep)
	n := rep.Expected

	var results []*connector.Record
	for _, r := range out {
		if r.Topic == "" {
			results = append(results, r)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	audit := prefix + sinkredis.AuditLogKey
	// A wrong count; a window applied twice (its audit entry repeated);
	// a window missing (its key and audit entry gone).
	wrong := replaceField(t, results[10].Value, "n", func(v float64) float64 { return v + 1 })
	if err := rdb.Set(ctx, prefix+results[10].EventID, wrong, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.RPush(ctx, audit, "string:"+results[20].EventID).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.LRem(ctx, audit, 1, "string:"+results[30].EventID).Result(); err != nil || n != 1 {
		t.Fatalf("removing the audit entry of %s: %d, %v", results[30].EventID, n, err)
	}
	rdb.Del(ctx, prefix+results[30].EventID)
	rep = check()
	want := Report{Expected: n, Actual: n, Duplicates: 1, Missing: 1, ValueMismatches: 1}
	if !sameWindowCounts(rep, want) || !strings.HasPrefix(rep.ValueMismatchIDs[0], "string:"+results[10].EventID+": expected ") {
		t.Fatalf("after the faults: %s, want %+v", rep, want)
	}
	t.Logf("after the faults: %s", rep)

	logImplausibleIdleAdvance(t, spec, input, store)
	if rep = check(); rep.IdleLogViolations != 1 {
		t.Fatalf("with an implausible idle advance logged: %s, want it reported", rep)
	}
}

// mustSinkConfig is spec's sink config of type T.
func mustSinkConfig[T component.Config](t *testing.T, spec *pipeline.Spec) T {
	t.Helper()
	c, ok := pipeline.SinkConfig[T](spec)
	if !ok {
		t.Fatalf("the connector has no %T sink", c)
	}
	return c
}
