package bench

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// The bare baselines are the least a program must do to move the records
// at least once: consume a batch (closed at the same commit interval and
// batch size as connectd's), write it with the sink's fastest bulk path,
// then commit the group's offsets. No event IDs beyond the derived
// topic/partition/offset, no transforms, no status, no metrics. They run as
// `connectd-bench baseline …`, a child process like every system measured,
// so CPU and RSS are measured the same way.
//
// Each is as fast as its sink's client allows, so that a ratio to it says
// what connectd costs, not how slow a naive loop is: Redis SETs go out
// over several pipelined connections at once (redisConns, redisDepth),
// PostgreSQL has two rows (unnest arrays, and COPY into a staging table
// merged with one INSERT … SELECT), and with -workers N the loop runs as
// N group members, as connectd does with tasks: N.

// BaselineConfig is the command line of `connectd-bench baseline`.
type BaselineConfig struct {
	Sink           string
	Brokers        string
	Topic, Group   string
	CommitInterval time.Duration
	MaxBatch       int
	OutputTopic    string // kafka
	DSN, Table     string // postgres
	PGMode         string // postgres: PGUnnest or PGCopy
	RedisAddr      string // redis
	KeyPrefix      string // redis
	// RedisConns and RedisDepth: the batch is split over this many
	// connections, each writing its share in pipelines of at most
	// RedisDepth SETs; 0 is the default (defaultRedisConns,
	// defaultRedisDepth).
	RedisConns, RedisDepth int
	// Workers is how many group members the loop runs as, each with its
	// own Kafka client (consumer and producer), sink connection and
	// loop, in this one process; 0 or 1 is one.
	Workers int
}

// The PostgreSQL baseline's two bulk paths.
const (
	// PGUnnest upserts with unnest arrays, pgChunk rows per statement,
	// the statements pipelined: the path connectd's sink takes for
	// batches below its COPY threshold (all of the harness's).
	PGUnnest = "unnest"
	// PGCopy COPYs the batch into a temporary staging table and merges
	// it with one INSERT … SELECT … ON CONFLICT, in one transaction: the
	// fastest bulk upsert pgx offers (connectd's path from 20,000 rows).
	PGCopy = "copy"
)

// BareCopy is the bare PostgreSQL loop on its COPY path (PGCopy): a row of
// its own beside Bare (unnest), for the PostgreSQL sink only.
const BareCopy System = "bare-copy"

// flags registers c's fields on fs.
func (c *BaselineConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Sink, "sink", "kafka", "kafka, postgres or redis")
	fs.StringVar(&c.Brokers, "brokers", "127.0.0.1:9192", "bootstrap broker")
	fs.StringVar(&c.Topic, "topic", "", "input topics, comma-separated")
	fs.StringVar(&c.Group, "group", "", "consumer group")
	fs.DurationVar(&c.CommitInterval, "commit-interval", 100*time.Millisecond, "batch duration")
	fs.IntVar(&c.MaxBatch, "max-batch", config.DefaultBatchMaxRecords, "most records per batch (connectd's batch.max.records default)")
	fs.StringVar(&c.OutputTopic, "output-topic", "", "kafka: output topic")
	fs.StringVar(&c.DSN, "dsn", "", "postgres: DSN")
	fs.StringVar(&c.Table, "table", "", "postgres: table (event_id text primary key, payload jsonb)")
	fs.StringVar(&c.PGMode, "pg-mode", PGUnnest, "postgres: bulk path, "+PGUnnest+" or "+PGCopy)
	fs.StringVar(&c.RedisAddr, "redis", "127.0.0.1:6379", "redis: address")
	fs.StringVar(&c.KeyPrefix, "key-prefix", "", "redis: key prefix")
	fs.IntVar(&c.RedisConns, "redis-conns", defaultRedisConns, "redis: connections a batch is split over")
	fs.IntVar(&c.RedisDepth, "redis-depth", defaultRedisDepth, "redis: most SETs per pipeline round trip")
	fs.IntVar(&c.Workers, "workers", 1, "group members in this process, each with its own clients and loop (connectd's tasks)")
}

// args renders c as the command line flags parses.
func (c BaselineConfig) args() []string {
	return []string{
		"-sink", c.Sink, "-brokers", c.Brokers, "-topic", c.Topic, "-group", c.Group,
		"-commit-interval", c.CommitInterval.String(), "-max-batch", strconv.Itoa(c.MaxBatch),
		"-output-topic", c.OutputTopic, "-dsn", c.DSN, "-table", c.Table,
		"-pg-mode", cmp.Or(c.PGMode, PGUnnest),
		"-redis", c.RedisAddr, "-key-prefix", c.KeyPrefix,
		"-redis-conns", strconv.Itoa(cmp.Or(c.RedisConns, defaultRedisConns)),
		"-redis-depth", strconv.Itoa(cmp.Or(c.RedisDepth, defaultRedisDepth)),
		"-workers", strconv.Itoa(max(c.Workers, 1)),
	}
}

// baselineConfig is the bare loop's command line for scenario s (Bare or
// BareCopy) with run names n, reading topics: as many workers as
// connectd's tasks, so that ratios at tasks N compare N producers with N.
func (r *Runner) baselineConfig(s Scenario, n names, topics string) BaselineConfig {
	bc := BaselineConfig{
		Sink: string(s.Sink), Brokers: strings.Join(r.o.Brokers, ","), Topic: topics, Group: n.group,
		CommitInterval: s.CommitInterval, MaxBatch: config.DefaultBatchMaxRecords, OutputTopic: n.out,
		Table: n.table, PGMode: PGUnnest, RedisAddr: r.o.RedisAddr, KeyPrefix: n.prefix,
		Workers: max(r.o.Tasks, 1),
	}
	if s.System == BareCopy {
		bc.PGMode = PGCopy
	}
	if r.pg != nil {
		bc.DSN = r.pg.dsn
	}
	return bc
}

// batchWriter writes one batch of records; on return they are durable in
// the sink (Kafka: acknowledged with acks=all).
type batchWriter func(ctx context.Context, recs []*kgo.Record) error

// RunBaseline runs c.Workers bare loops until ctx ends or one fails.
func RunBaseline(ctx context.Context, c BaselineConfig) error {
	if c.Sink == "postgres" && c.PGMode != PGUnnest && c.PGMode != PGCopy {
		return fmt.Errorf("baseline: -pg-mode %q: want %s or %s", c.PGMode, PGUnnest, PGCopy)
	}
	// The first worker to fail stops the others; the caller's ending of
	// parent is a clean stop.
	parent := ctx
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range max(c.Workers, 1) {
		wg.Go(func() {
			if err := runWorker(ctx, c); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && parent.Err() == nil {
		return err
	}
	return nil
}

// runWorker is one group member's loop: consume a batch, write it, commit
// its offsets.
func runWorker(ctx context.Context, c BaselineConfig) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(c.Brokers, ",")...),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(strings.Split(c.Topic, ",")...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// franz-go's defaults, stated: acks=all and the idempotent
		// producer, as for connectd's at_least_once.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// The linger connectd's producers use at this commit interval,
		// so that both batch alike.
		kgo.ProducerLinger(sinkkafka.Linger(c.CommitInterval)),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	var write batchWriter
	switch c.Sink {
	case "kafka":
		write = kafkaWriter(cl, c.OutputTopic)
	case "postgres":
		conn, err := pgx.Connect(ctx, c.DSN)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		if c.PGMode == PGCopy {
			if write, err = pgCopyWriter(ctx, conn, c.Table); err != nil {
				return err
			}
		} else {
			write = pgWriter(conn, c.Table)
		}
	case "redis":
		conns := cmp.Or(c.RedisConns, defaultRedisConns)
		rc := redis.NewClient(&redis.Options{Addr: c.RedisAddr, PoolSize: conns})
		defer rc.Close()
		write = redisWriter(rc, c.KeyPrefix, conns, cmp.Or(c.RedisDepth, defaultRedisDepth))
	default:
		return fmt.Errorf("baseline: unknown sink %q", c.Sink)
	}

	var batch []*kgo.Record
	for ctx.Err() == nil {
		batch = batch[:0]
		deadline := time.Now().Add(c.CommitInterval)
		for len(batch) < c.MaxBatch && time.Now().Before(deadline) {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			fs := cl.PollRecords(pctx, c.MaxBatch-len(batch))
			cancel()
			if fs.IsClientClosed() {
				return nil
			}
			fs.EachRecord(func(r *kgo.Record) { batch = append(batch, r) })
		}
		if len(batch) == 0 {
			continue
		}
		if err := write(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Everything polled is written: its offsets are safe to commit.
		if err := commitRetrying(ctx, cl); err != nil && ctx.Err() == nil {
			return fmt.Errorf("commit offsets: %w", err)
		}
	}
	return nil
}

// kafkaWriter produces the batch, flushes it (nothing sits out the linger)
// and waits for every acknowledgement.
func kafkaWriter(cl *kgo.Client, topic string) batchWriter {
	return func(ctx context.Context, recs []*kgo.Record) error {
		var (
			mu       sync.Mutex
			firstErr error
			wg       sync.WaitGroup
		)
		wg.Add(len(recs))
		for _, r := range recs {
			out := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
			cl.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
				wg.Done()
			})
		}
		_ = cl.Flush(ctx) // a cancelled flush still leaves wg to wait for the outcomes
		wg.Wait()
		return firstErr
	}
}

// eventID is the derived event ID, as connectd derives it.
func eventID(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// pgChunk is connectd's PostgreSQL batch_size default: rows per statement.
const pgChunk = 5000

// pgWriter upserts the batch with unnest arrays, pipelined in one pgx
// batch (one implicit transaction): the bulk path connectd's sink uses,
// without the offsets compare-and-set.
func pgWriter(conn *pgx.Conn, table string) batchWriter {
	stmt := "INSERT INTO " + pgx.Identifier{table}.Sanitize() + " AS t (event_id, payload)" +
		" SELECT u.c0, u.c1::jsonb FROM unnest($1::text[], $2::text[]) AS u(c0, c1)" +
		" ON CONFLICT (event_id) DO NOTHING"
	return func(ctx context.Context, recs []*kgo.Record) error {
		b := &pgx.Batch{}
		for i := 0; i < len(recs); i += pgChunk {
			chunk := recs[i:min(i+pgChunk, len(recs))]
			ids := make([]string, len(chunk))
			vals := make([]string, len(chunk))
			for j, r := range chunk {
				ids[j], vals[j] = eventID(r), string(r.Value)
			}
			b.Queue(stmt, ids, vals)
		}
		return conn.SendBatch(ctx, b).Close()
	}
}

// pgStage is the COPY path's staging table: temporary (no WAL, private to
// the session), created once per connection and emptied by every commit.
const pgStage = "bench_stage"

// pgCopyWriter COPYs the batch into the staging table and merges it into
// table with one INSERT … SELECT, in one transaction. ON CONFLICT DO
// NOTHING as connectd's default conflict: do_nothing and the unnest row
// (on the harness's fresh table no row conflicts, so DO UPDATE would cost
// the same).
func pgCopyWriter(ctx context.Context, conn *pgx.Conn, table string) (batchWriter, error) {
	create := "CREATE TEMPORARY TABLE " + pgStage + " (event_id text, payload jsonb) ON COMMIT DELETE ROWS"
	if _, err := conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("create staging table: %w", err)
	}
	merge := "INSERT INTO " + pgx.Identifier{table}.Sanitize() + " (event_id, payload)" +
		" SELECT event_id, payload FROM " + pgStage + " ON CONFLICT (event_id) DO NOTHING"
	cols := []string{"event_id", "payload"}
	return func(ctx context.Context, recs []*kgo.Record) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			i := 0
			row := make([]any, 2)
			_, err := tx.CopyFrom(ctx, pgx.Identifier{pgStage}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(recs) {
					return nil, nil
				}
				// A string, not []byte, for jsonb: pgx sends a
				// []byte as JSON text too, but a string is
				// never mistaken for a value to marshal.
				row[0], row[1] = eventID(recs[i]), string(recs[i].Value)
				i++
				return row, nil
			}))
			if err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			if _, err := tx.Exec(ctx, merge); err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			return nil
		})
	}, nil
}

// The Redis baseline's settings. The harness's Redis runs with
// appendfsync always and shares the machine's cores, so one connection
// waits out every round trip: the server is idle while the client encodes
// the next pipeline and the client while the server applies it. Written
// over several connections at once, those overlap. BenchmarkBareRedisWriter
// (10,000 SETs of 100 B per batch, 2 cores, with Kafka and other runs
// busy): 1 connection 140-175k records/s whatever the depth, 2 180-255k,
// 4 270-315k, 8 320-410k, 16 335-415k, 32 360-470k. 16 connections
// (past the knee at 8, below the noise's spread at 32), each writing its
// share of a full batch (625 SETs) in one pipeline of at most 1000.
const (
	defaultRedisConns = 16
	defaultRedisDepth = 1000
)

// redisWriter SETs every record: the batch split in conns contiguous
// shares written at once, each over its own connection in pipelines of at
// most depth SETs.
func redisWriter(rc *redis.Client, prefix string, conns, depth int) batchWriter {
	return func(ctx context.Context, recs []*kgo.Record) error {
		share := (len(recs) + conns - 1) / conns
		errs := make([]error, conns)
		var wg sync.WaitGroup
		for k := range conns {
			part := recs[min(k*share, len(recs)):min((k+1)*share, len(recs))]
			if len(part) == 0 {
				break
			}
			wg.Go(func() {
				for i := 0; i < len(part); i += depth {
					p := rc.Pipeline()
					for _, r := range part[i:min(i+depth, len(part))] {
						p.Set(ctx, prefix+eventID(r), r.Value, 0)
					}
					if _, err := p.Exec(ctx); err != nil {
						errs[k] = errors.Join(errors.New("redis pipeline"), err)
						return
					}
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}

// commitRetrying commits the polled offsets, trying again on a retriable
// error as any real consumer would: the group coordinator can answer
// UNKNOWN_TOPIC_OR_PARTITION for a topic created a moment before (the
// harness's live topic), which killed whole bare rounds.
func commitRetrying(ctx context.Context, cl *kgo.Client) error {
	var err error
	for try := 0; try < 20; try++ {
		if err = cl.CommitUncommittedOffsets(ctx); err == nil || !kerr.IsRetriable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}
