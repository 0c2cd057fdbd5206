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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
)

// The bare baselines are the least a program must do to move the records
// at least once: consume a batch (closed at the same commit interval and
// batch size as connectd's), write it with the sink's fastest bulk path,
// then commit the group's offsets. No event IDs beyond the derived
// topic/partition/offset, no transforms, no status, no metrics. They run as
// `connectd-bench baseline …`, a child process like every system measured,
// so CPU and RSS are measured the same way.

// BaselineConfig is the command line of `connectd-bench baseline`.
type BaselineConfig struct {
	Sink           string
	Brokers        string
	Topic, Group   string
	CommitInterval time.Duration
	MaxBatch       int
	OutputTopic    string // kafka
	DSN, Table     string // postgres
	RedisAddr      string // redis
	KeyPrefix      string // redis
}

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
	fs.StringVar(&c.RedisAddr, "redis", "127.0.0.1:6379", "redis: address")
	fs.StringVar(&c.KeyPrefix, "key-prefix", "", "redis: key prefix")
}

// args renders c as the command line flags parses.
func (c BaselineConfig) args() []string {
	return []string{
		"-sink", c.Sink, "-brokers", c.Brokers, "-topic", c.Topic, "-group", c.Group,
		"-commit-interval", c.CommitInterval.String(), "-max-batch", strconv.Itoa(c.MaxBatch),
		"-output-topic", c.OutputTopic, "-dsn", c.DSN, "-table", c.Table,
		"-redis", c.RedisAddr, "-key-prefix", c.KeyPrefix,
	}
}

// batchWriter writes one batch of records; on return they are durable in
// the sink (Kafka: acknowledged with acks=all).
type batchWriter func(ctx context.Context, recs []*kgo.Record) error

// RunBaseline runs a bare loop until ctx ends.
func RunBaseline(ctx context.Context, c BaselineConfig) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.Brokers),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(strings.Split(c.Topic, ",")...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// franz-go's defaults, stated: acks=all and the idempotent
		// producer, as for connectd's at_least_once.
		kgo.RequiredAcks(kgo.AllISRAcks()),
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
		write = pgWriter(conn, c.Table)
	case "redis":
		rc := redis.NewClient(&redis.Options{Addr: c.RedisAddr})
		defer rc.Close()
		write = redisWriter(rc, c.KeyPrefix)
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
			return err
		}
		// Everything polled is written: its offsets are safe to commit.
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("commit offsets: %w", err)
		}
	}
	return nil
}

// kafkaWriter produces the batch and waits for every acknowledgement.
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

// redisChunk is connectd's Redis batch_size default: commands per
// pipeline round trip.
const redisChunk = 5000

// redisWriter SETs every record, pipelined.
func redisWriter(rc *redis.Client, prefix string) batchWriter {
	return func(ctx context.Context, recs []*kgo.Record) error {
		for i := 0; i < len(recs); i += redisChunk {
			p := rc.Pipeline()
			for _, r := range recs[i:min(i+redisChunk, len(recs))] {
				p.Set(ctx, prefix+eventID(r), r.Value, 0)
			}
			if _, err := p.Exec(ctx); err != nil {
				return errors.Join(errors.New("redis pipeline"), err)
			}
		}
		return nil
	}
}
