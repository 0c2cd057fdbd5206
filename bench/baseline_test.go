package bench

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/testenv"
)

func TestBaselineArgsRoundTrip(t *testing.T) {
	want := BaselineConfig{Sink: "postgres", Brokers: "127.0.0.1:9192", Topic: "a,b", Group: "g",
		CommitInterval: 10 * time.Millisecond, MaxBatch: 500, OutputTopic: "o", DSN: "postgres://x", Table: "t",
		PGMode: PGCopy, RedisAddr: "127.0.0.1:6379", KeyPrefix: "p:", RedisConns: 3, RedisDepth: 7, Workers: 2}
	var got BaselineConfig
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	got.flags(fs)
	if err := fs.Parse(want.args()); err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestBaselineArgsDefaults(t *testing.T) {
	// A config that leaves the new settings zero renders the defaults,
	// which is what the flags parse to with nothing given.
	var fromFlags BaselineConfig
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fromFlags.flags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var got BaselineConfig
	fs = flag.NewFlagSet("baseline", flag.ContinueOnError)
	got.flags(fs)
	if err := fs.Parse(BaselineConfig{}.args()); err != nil {
		t.Fatal(err)
	}
	if got.PGMode != PGUnnest || got.RedisConns != defaultRedisConns || got.RedisDepth != defaultRedisDepth || got.Workers != 1 {
		t.Fatalf("zero config renders %+v", got)
	}
	if fromFlags.PGMode != got.PGMode || fromFlags.RedisConns != got.RedisConns ||
		fromFlags.RedisDepth != got.RedisDepth || fromFlags.Workers != got.Workers {
		t.Fatalf("flag defaults %+v, rendered defaults %+v", fromFlags, got)
	}
}

func TestRunnerBaselineConfig(t *testing.T) {
	r := &Runner{o: Options{Brokers: []string{"a:1", "b:2"}, RedisAddr: "r:6379", Tasks: 2}}
	n := r.names("x")
	s := Scenario{System: Bare, Sink: SinkPostgres, Guarantee: AtLeastOnce, CommitInterval: 10 * time.Millisecond}
	bc := r.baselineConfig(s, n, "in,live")
	if bc.PGMode != PGUnnest || bc.Workers != 2 || bc.Brokers != "a:1,b:2" || bc.Topic != "in,live" || bc.CommitInterval != s.CommitInterval {
		t.Fatalf("bare: %+v", bc)
	}
	s.System = BareCopy
	if bc := r.baselineConfig(s, n, "in"); bc.PGMode != PGCopy || bc.Workers != 2 {
		t.Fatalf("bare-copy: %+v", bc)
	}
	r.o.Tasks = 0 // an Options literal without Tasks: one worker
	if bc := r.baselineConfig(s, n, "in"); bc.Workers != 1 {
		t.Fatalf("tasks 0: %+v", bc)
	}
}

func TestRunBaselineRejectsPGMode(t *testing.T) {
	err := RunBaseline(context.Background(), BaselineConfig{Sink: "postgres", PGMode: "merge"})
	if err == nil || !strings.Contains(err.Error(), "merge") {
		t.Fatalf("pg-mode merge: %v", err)
	}
}

// records returns n records as the loop polls them: partition p of topic
// "in", offsets from 0, JSON values.
func testRecords(n, parts int) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range out {
		out[i] = &kgo.Record{Topic: "in", Partition: int32(i % parts), Offset: int64(i / parts),
			Value: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
	}
	return out
}

// TestBarePGWriters writes the same records twice with each PostgreSQL
// path (a replayed batch is a no-op) and reads them back.
func TestBarePGWriters(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	recs := testRecords(12345, 3) // more than one unnest chunk
	for _, mode := range []string{PGUnnest, PGCopy} {
		t.Run(mode, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			table := "bare_" + mode
			if err := (&pgEnv{conn: conn}).createUpsertTable(ctx, table); err != nil {
				t.Fatal(err)
			}
			write := pgWriter(conn, table)
			if mode == PGCopy {
				if write, err = pgCopyWriter(ctx, conn, table); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if err := write(ctx, recs[:10000]); err != nil {
					t.Fatal(err)
				}
			}
			if err := write(ctx, recs[10000:]); err != nil {
				t.Fatal(err)
			}
			var n, distinct int64
			var sum int64
			q := "SELECT count(*), count(DISTINCT event_id), coalesce(sum((payload->>'n')::bigint), 0) FROM " + table
			if err := conn.QueryRow(ctx, q).Scan(&n, &distinct, &sum); err != nil {
				t.Fatal(err)
			}
			want := int64(len(recs)) * int64(len(recs)-1) / 2
			if n != int64(len(recs)) || distinct != n || sum != want {
				t.Fatalf("%d rows, %d event IDs, payload sum %d; want %d rows, sum %d", n, distinct, sum, len(recs), want)
			}
			var payload string
			if err := conn.QueryRow(ctx, "SELECT payload::text FROM "+table+" WHERE event_id = 'in/2/4'").Scan(&payload); err != nil || payload != `{"n": 14}` {
				t.Fatalf("in/2/4: %q %v", payload, err)
			}
			if mode == PGCopy { // the staging table is emptied by each commit
				var staged int64
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgStage).Scan(&staged); err != nil || staged != 0 {
					t.Fatalf("%d rows left staged: %v", staged, err)
				}
			}
		})
	}
}

// TestBareRedisWriter splits batches that do not divide evenly over the
// connections and pipelines, and one smaller than the connection count.
func TestBareRedisWriter(t *testing.T) {
	addr, prefix := testenv.Redis(t)
	rc := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 3})
	defer rc.Close()
	ctx := context.Background()
	recs := testRecords(1001, 4)
	write := redisWriter(rc, prefix, 3, 7)
	if err := write(ctx, recs[:2]); err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, recs[2:]); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		v, err := rc.Get(ctx, prefix+eventID(r)).Result()
		if err != nil || v != string(r.Value) {
			t.Fatalf("%s: %q %v", eventID(r), v, err)
		}
	}
	if n, err := rc.Keys(ctx, prefix+"*").Result(); err != nil || len(n) != len(recs) {
		t.Fatalf("%d keys, want %d: %v", len(n), len(recs), err)
	}
}

// TestBareKafkaWorkers runs the Kafka loop as two workers: both join the
// group (the second would otherwise be idle in the member list without
// partitions), and every record is copied.
func TestBareKafkaWorkers(t *testing.T) {
	brokers := testenv.Kafka(t)
	topics := testenv.KafkaTopics(t, brokers, 2, 4)
	in, out := topics[0], topics[1]
	const n = 20000
	prod := testenv.KafkaClient(t, brokers, kgo.DefaultProduceTopic(in))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: []byte(strconv.Itoa(i))}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	group := testenv.UniqueName(t, "g", "-", 100)
	c := BaselineConfig{Sink: "kafka", Brokers: strings.Join(brokers, ","), Topic: in, Group: group,
		CommitInterval: 10 * time.Millisecond, MaxBatch: 500, OutputTopic: out, Workers: 2}
	runCtx, stop := context.WithCancel(ctx)
	var runErr error
	var wg sync.WaitGroup
	wg.Go(func() { runErr = RunBaseline(runCtx, c) })

	admin := kadm.NewClient(prod)
	members, copied := 0, int64(0)
	for ctx.Err() == nil && (members < 2 || copied < n) {
		if gs, err := admin.DescribeGroups(ctx, group); err == nil {
			if g, ok := gs[group]; ok && g.State == "Stable" {
				members = 0
				for _, m := range g.Members {
					if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 && len(a.Topics[0].Partitions) > 0 {
						members++
					}
				}
			}
		}
		if ends, err := admin.ListEndOffsets(ctx, out); err == nil {
			copied = 0
			ends.Each(func(o kadm.ListedOffset) { copied += o.Offset })
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if members < 2 || copied < n {
		t.Fatalf("%d group members with partitions, %d of %d records copied: %v", members, copied, n, ctx.Err())
	}
	if runErr != nil {
		t.Fatalf("RunBaseline: %v", runErr)
	}
}

// BenchmarkBareRedisWriter is the sweep behind defaultRedisConns and
// defaultRedisDepth: one 10,000-record batch of 100-byte values (the
// harness's largest batch) per iteration, over conns connections in
// pipelines of at most depth SETs. Run it against the Redis the harness
// uses (`go test -run - -bench BareRedisWriter ./bench/`).
func BenchmarkBareRedisWriter(b *testing.B) {
	addr, prefix := testenv.Redis(b)
	recs := testRecords(10000, 12)
	value := []byte(strings.Repeat("x", 100))
	for _, r := range recs {
		r.Value = value
	}
	for _, conns := range []int{1, 2, 4, 8, 16, 32} {
		share := (len(recs) + conns - 1) / conns
		for i, depth := range []int{250, 1000, 5000} {
			if i > 0 && depth > share && []int{250, 1000}[i-1] >= share {
				continue // the same as the smaller depth: one pipeline per share
			}
			b.Run(fmt.Sprintf("conns=%d/depth=%d", conns, depth), func(b *testing.B) {
				rc := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conns})
				defer rc.Close()
				write := redisWriter(rc, prefix, conns, depth)
				ctx := context.Background()
				b.ResetTimer()
				for b.Loop() {
					if err := write(ctx, recs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
