package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/sink/files"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	sinkpg "github.com/connectd/connectd/sink/postgres"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/txn"
)

// mutateAndRecheck is the checker's test on real data: after a scenario's
// exactly-once cells came out clean, it corrupts each sink the way a broken
// connector would and requires the corruption caught, each by the
// invariant that claims it. It runs on the matrix's last scenario (the
// corruption stays in that scenario's own topics, tables and keys).
func (r *run) mutateAndRecheck(bounds map[connector.TopicPartition]Bound, committed int, poison []string) {
	r.t.Helper()
	for _, c := range r.conns {
		if !c.exactlyOnce() || c.setup.window {
			continue // verify's own tests corrupt window results (verify/window*_test.go)
		}
		var want map[string]func(Findings) int
		switch c.setup.name {
		case "kafka":
			r.corruptKafka(c)
			r.corruptKafkaDLQ(c)
			r.corruptKafkaBeyond(c)
			want = map[string]func(Findings) int{
				"duplicate with an origin beyond the checkpoint": func(f Findings) int { return f.BeyondCheckpoint },
				"duplicate":              func(f Findings) int { return f.Duplicates },
				"watcher duplicate":      func(f Findings) int { return f.WatcherDuplicates },
				"replayed key":           func(f Findings) int { return f.OrderViolations },
				"aborted visible":        func(f Findings) int { return f.AbortedVisible },
				"unexpected":             func(f Findings) int { return f.Unexpected },
				"dead letter not poison": func(f Findings) int { return f.DeadLetterMismatch },
			}
		case "postgres":
			r.corruptPostgres(c, true)
			want = map[string]func(Findings) int{
				"apply counter 2": func(f Findings) int { return f.ApplyCount },
				"deleted row":     func(f Findings) int { return f.Missing },
				"aborted visible": func(f Findings) int { return f.AbortedVisible },
				"checkpoint gap":  func(f Findings) int { return f.CheckpointGaps },
				// The offsets table is the checkpoint verify reads: rows
				// past it are unexpected (the aborted row is the other one).
				"rows beyond the checkpoint moved back": func(f Findings) int { return f.Unexpected - f.AbortedVisible },
				"dead letter deleted":                   func(f Findings) int { return f.DeadLetterMismatch },
			}
		case "redis":
			r.corruptRedis(c)
			want = map[string]func(Findings) int{
				"re-application":  func(f Findings) int { return f.Duplicates },
				"apply counter 2": func(f Findings) int { return f.ApplyCount },
				"replayed key":    func(f Findings) int { return f.OrderViolations },
				"aborted visible": func(f Findings) int { return f.AbortedVisible },
			}
		case "files":
			r.corruptFiles(c)
			want = map[string]func(Findings) int{
				"a committed file copied under a name no manifest lists": func(f Findings) int { return min(f.Duplicates, f.WitnessMismatch) },
				"checkpoint moved back in the manifest":                  func(f Findings) int { return f.CheckpointGaps },
			}
		case "kafka+postgres (2PC)":
			// Each participant on its own (a duplicate in the topic, a row
			// the topic has and the table lost: the sinks disagree), and
			// what only two-phase commit can leave: a prepared
			// transaction of the connector's in doubt.
			r.corruptKafka(c)
			r.corruptPostgres(c, false)
			r.prepareInDoubt(c)
			want = map[string]func(Findings) int{
				"duplicate in the topic":     func(f Findings) int { return f.Duplicates },
				"watcher duplicate":          func(f Findings) int { return f.WatcherDuplicates },
				"aborted visible":            func(f Findings) int { return f.AbortedVisible },
				"apply counter 2":            func(f Findings) int { return f.ApplyCount },
				"row lost in the table only": func(f Findings) int { return f.Missing },
				"dead letter deleted":        func(f Findings) int { return f.DeadLetterMismatch },
				"prepared in doubt":          func(f Findings) int { return f.Hanging },
			}
		default:
			r.t.Errorf("checker on real data: no corruption for sink setup %q", c.setup.name)
			continue
		}
		o := r.observe(c, bounds)
		o.Committed, o.Poison = committed, poison
		f := Check(o)
		for what, n := range want {
			if n(f) == 0 {
				r.t.Errorf("checker on real data: %s injected into %s not caught: %+v", what, c.name, f)
			}
		}
		if f.ExactlyOnce() {
			r.t.Errorf("checker on real data: corrupted %s still passes as exactly once", c.name)
		} else {
			r.logf("checker on real data: %s corruption caught: %s", c.name, strings.Join(f.Details, "; "))
		}
	}
}

// corruptKafka appends to the output, outside any transaction, a copy of
// its first record (a duplicate behind later events of its key) and the
// same record renamed to an aborted input event.
func (r *run) corruptKafka(c *conn) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.e.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.out: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	var first *kgo.Record
	for first == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.t.Fatalf("reading %s/0: %v", c.out, ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if first == nil {
				first = rec
			}
		})
	}
	dup := &kgo.Record{Topic: c.out, Partition: 0, Key: first.Key, Value: first.Value, Headers: first.Headers}
	aborted := &kgo.Record{Topic: c.out, Partition: 0, Key: first.Key, Value: first.Value}
	for _, h := range first.Headers {
		if h.Key == "event-id" {
			h.Value = []byte(AbortedID(1))
		}
		aborted.Headers = append(aborted.Headers, h)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(r.e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, dup, aborted).FirstErr(); err != nil {
		r.t.Fatalf("corrupting %s: %v", c.out, err)
	}
}

// corruptKafkaBeyond appends, outside any transaction, a copy of the
// output's first record whose origin header names an input offset far
// beyond the checkpoint: what a running pipeline's verify leaves out as a
// later batch's, and a stopped one's must count.
func (r *run) corruptKafkaBeyond(c *conn) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(r.e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer prod.Close()
	rec := &kgo.Record{Topic: c.out, Partition: 1, Key: []byte(Key(2)), Value: []byte(`{"i":2}`),
		Headers: []kgo.RecordHeader{{Key: sinkkafka.HeaderEventID, Value: []byte(EventID(2))},
			{Key: sinkkafka.HeaderOrigin, Value: []byte(r.in + "/0/1000000000")}}}
	if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		r.t.Fatalf("corrupting %s: %v", c.out, err)
	}
}

// corruptKafkaDLQ appends a committed, non-poison event to the
// dead-letter topic, outside any transaction.
func (r *run) corruptKafkaDLQ(c *conn) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(r.e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer prod.Close()
	rec := &kgo.Record{Topic: c.dlq, Partition: 0, Key: []byte(Key(1)), Value: []byte(`{"i":1}`),
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(EventID(1))}}}
	if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		r.t.Fatalf("corrupting %s: %v", c.dlq, err)
	}
}

// corruptPostgres re-applies one row (apply_count 2), deletes another and
// a dead letter, inserts an aborted event's row and, where the sink keeps
// the checkpoint (offsets), moves one partition's back below its last
// record.
func (r *run) corruptPostgres(c *conn, offsets bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.e.pgDirectDSN())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	pg := pgConfig(c)
	qs := []string{
		"UPDATE " + pg.QuotedTable() + " SET " + sinkpg.ApplyCountColumn + " = 2 WHERE event_id = (SELECT min(event_id) FROM " + pg.QuotedTable() + ")",
		"DELETE FROM " + pg.QuotedTable() + " WHERE event_id = (SELECT max(event_id) FROM " + pg.QuotedTable() + ")",
		"DELETE FROM " + pg.QuotedDLQTable() + " WHERE event_id = (SELECT min(event_id) FROM " + pg.QuotedDLQTable() + ")",
		"INSERT INTO " + pg.QuotedTable() + " (event_id, " + sinkpg.ApplyCountColumn + ") VALUES ('" + AbortedID(1) + "', 1)",
	}
	if offsets {
		qs = append(qs, "UPDATE "+pg.QuotedOffsetsTable()+" SET next_offset = next_offset - 5 WHERE group_id = '"+c.group+"' AND partition = 0")
	}
	for _, q := range qs {
		if tag, err := conn.Exec(ctx, q); err != nil || tag.RowsAffected() != 1 {
			r.t.Fatalf("corrupting %s: %s: %v (%d rows)", pg.Table, q, err, tag.RowsAffected())
		}
	}
}

// corruptFiles copies one committed data file of c to a name of the
// connector's own pattern that no manifest lists (what a commit that
// renamed a file twice, or a recovery that kept an orphan, would leave)
// and moves the manifest's checkpoint of one partition back by 5.
func (r *run) corruptFiles(c *conn) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, _ := pipeline.SinkConfig[*files.Config](c.spec)
	out, err := files.ReadOutput(ctx, *cfg, c.name, c.group)
	if err != nil || len(out.Files) == 0 {
		r.t.Fatalf("files of %s: %v (%d files)", c.name, err, len(out.Files))
	}
	src := filepath.Join(cfg.Path, out.Files[0].Path)
	// <connector>+<topic>+<partition>+<first>-<last>.parquet: another
	// offset range, so the copy is an own file no manifest lists.
	i := strings.LastIndexByte(src, '+')
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(src[:i+1]+"900000000000-900000000001.parquet", data, 0o644)
	}
	if err != nil {
		r.t.Fatalf("copying %s: %v", src, err)
	}
	manifests, _ := filepath.Glob(filepath.Join(cfg.Path, "_connectd", "manifest-*.json"))
	if len(manifests) != 1 {
		r.t.Fatalf("want one manifest in %s, found %v", cfg.Path, manifests)
	}
	raw, err := os.ReadFile(manifests[0])
	if err != nil {
		r.t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		r.t.Fatalf("%s: %v", manifests[0], err)
	}
	part := m["partitions"].([]any)[0].(map[string]any)
	next, _ := part["next"].(json.Number).Int64()
	part["next"] = next - 5
	if raw, err = json.Marshal(m); err == nil {
		err = os.WriteFile(manifests[0], raw, 0o644)
	}
	if err != nil {
		r.t.Fatal(err)
	}
}

// prepareInDoubt leaves a prepared transaction named like one of c's
// two-phase commits in the database, as a process that died between the
// phases and was never recovered would; it is rolled back when the test
// ends.
func (r *run) prepareInDoubt(c *conn) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.e.pgDirectDSN())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	gid := txn.GIDPrefix(c.name) + "mutation"
	pg := pgConfig(c)
	for _, q := range []string{
		"BEGIN",
		"INSERT INTO " + pg.QuotedTable() + " (event_id, " + sinkpg.ApplyCountColumn + ") VALUES ('" + AbortedID(3) + "', 1)",
		"PREPARE TRANSACTION '" + gid + "'",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			r.t.Fatalf("preparing %s: %s: %v", gid, q, err)
		}
	}
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, r.e.pgDirectDSN())
		if err == nil {
			_, err = conn.Exec(ctx, "ROLLBACK PREPARED '"+gid+"'")
			conn.Close(ctx)
		}
		if err != nil {
			r.t.Errorf("rolling back %s: %v", gid, err)
		}
	})
}

// corruptRedis applies one event a second time (audit entry behind later
// events of its key, counter 2) and logs an aborted event as applied.
func (r *run) corruptRedis(c *conn) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb := r.e.redisClient()
	defer rdb.Close()
	audit := c.prefix + sinkredis.AuditLogKey
	// The first data entry: dead letters have no apply counter.
	entries, err := rdb.LRange(ctx, audit, 0, 99).Result()
	if err != nil {
		r.t.Fatalf("audit log %s: %v", audit, err)
	}
	var first, target, id string
	for _, e := range entries {
		if t, i, _ := strings.Cut(e, ":"); t != sinkredis.AuditTargetDLQ {
			first, target, id = e, t, i
			break
		}
	}
	if first == "" {
		r.t.Fatalf("audit log %s: no data entry among the first %d", audit, len(entries))
	}
	if err := rdb.RPush(ctx, audit, first, target+":"+AbortedID(1)).Err(); err != nil {
		r.t.Fatal(err)
	}
	if err := rdb.Incr(ctx, c.prefix+sinkredis.ApplyCounterPrefix+id).Err(); err != nil {
		r.t.Fatal(err)
	}
}
