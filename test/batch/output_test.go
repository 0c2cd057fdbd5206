package batch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// redisKeyTemplate is the Redis sinks' key: record key and event ID after
// a fixed tag, so the output can be read back as (key, value, event ID).
const redisKeyTemplate = "o:{key}:{event_id}"

// record is one output record as the comparison sees it.
type record struct{ key, value, eventID string }

func (r record) String() string {
	return fmt.Sprintf("key %q, event ID %q, value %s", r.key, r.eventID, r.value)
}

// multiset counts records.
type multiset map[record]int

func (m multiset) size() int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// readOutputs reads every connector's output on both sides at once (each
// Kafka read ends with a few idle seconds): by side label, then connector.
func readOutputs(t *testing.T, svc services, sides ...*side) map[string]map[string]multiset {
	t.Helper()
	type result struct {
		side, connector string
		out             multiset
		err             error
	}
	results := make(chan result)
	for _, s := range sides {
		for _, c := range connectors {
			go func() {
				out, err := readOutput(svc, s, c)
				results <- result{s.label, c.name(), out, err}
			}()
		}
	}
	all := map[string]map[string]multiset{}
	var errs []error
	for range len(sides) * len(connectors) {
		r := <-results
		if r.err != nil {
			errs = append(errs, fmt.Errorf("reading the output of %s %s: %w", r.side, r.connector, r.err))
			continue
		}
		if all[r.side] == nil {
			all[r.side] = map[string]multiset{}
		}
		all[r.side][r.connector] = r.out
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return all
}

// readOutput reads connector c's output on side s.
func readOutput(svc services, s *side, c connectorDef) (multiset, error) {
	n := c.name()
	switch c.sink {
	case "kafka":
		return readKafka(svc.brokers, s.topics[n])
	case "postgres":
		return readPostgres(svc.dsn, s.tables[n])
	default:
		return readRedis(svc.redisAddr, s.prefixes[n])
	}
}

// readKafka reads topic from the start with read_committed: what the
// committed transactions wrote. The writers are stopped, so the topic is
// read once a poll finds nothing more for a few seconds.
func readKafka(brokers []string, topic string) (multiset, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := multiset{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return out, nil
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("%s/%d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			rec := record{key: string(r.Key), value: string(r.Value)}
			for _, h := range r.Headers {
				if h.Key == sinkkafka.HeaderEventID {
					rec.eventID = string(h.Value)
				}
			}
			out[rec]++
		})
	}
}

// readPostgres reads table: event_id, rkey and rvalue of every row.
func readPostgres(dsn, table string) (multiset, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT event_id, rkey, rvalue FROM "+table)
	if err != nil {
		return nil, err
	}
	out := multiset{}
	for rows.Next() {
		var r record
		if err := rows.Scan(&r.eventID, &r.key, &r.value); err != nil {
			return nil, err
		}
		out[r]++
	}
	return out, rows.Err()
}

// readRedis reads every output key under prefix (redisKeyTemplate) and
// its value, a page of SCAN per pipeline.
func readRedis(addr, prefix string) (multiset, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	tag := prefix + "o:"
	out := multiset{}
	for cursor := uint64(0); ; {
		keys, next, err := rdb.Scan(ctx, cursor, tag+"*", 5000).Result()
		if err != nil {
			return nil, err
		}
		pipe := rdb.Pipeline()
		vals := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			vals[i] = pipe.Get(ctx, k)
		}
		if len(keys) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("GET of %d keys under %s: %w", len(keys), tag, err)
			}
		}
		for i, k := range keys {
			key, id, ok := strings.Cut(strings.TrimPrefix(k, tag), ":")
			if !ok {
				return nil, fmt.Errorf("redis key %q is not %s", k, redisKeyTemplate)
			}
			out[record{key: key, value: vals[i].Val(), eventID: id}]++
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// difference is what a holds more often than b, at most max samples.
func difference(a, b multiset, max int) (n int, samples []string) {
	for r, c := range a {
		if extra := c - b[r]; extra > 0 {
			n += extra
			if len(samples) < max {
				samples = append(samples, fmt.Sprintf("%d× %s", extra, r))
			}
		}
	}
	slices.Sort(samples)
	return n, samples
}

// withoutSentinels splits out the records of the sentinels' keys.
func withoutSentinels(m multiset) (rest, sentinels multiset) {
	rest, sentinels = multiset{}, multiset{}
	for r, c := range m {
		if isSentinel(r.key) {
			sentinels[r] += c
		} else {
			rest[r] += c
		}
	}
	return rest, sentinels
}

// logKafkaOffsets logs, for a failed test, the high watermark and the
// last stable offset (or the error listing it) of every partition of the
// sides' Kafka output topics.
func logKafkaOffsets(t *testing.T, brokers []string, sides ...*side) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Logf("kafka client: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, s := range sides {
		for name, topic := range s.topics {
			highs, herr := adm.ListEndOffsets(ctx, topic)
			stable, serr := adm.ListCommittedOffsets(ctx, topic)
			var parts []string
			stable.Each(func(lo kadm.ListedOffset) {
				hw, _ := highs.Lookup(lo.Topic, lo.Partition)
				parts = append(parts, fmt.Sprintf("%d: high %d (%v), stable %d (%v)", lo.Partition, hw.Offset, hw.Err, lo.Offset, lo.Err))
			})
			slices.Sort(parts)
			t.Logf("%s %s output %s (%v, %v): %s", s.label, name, topic, herr, serr, strings.Join(parts, "; "))
		}
	}
}
