package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// sharedConfig is a config on the Redis `make services` starts, under a
// key prefix unique to the test.
func sharedConfig(t testing.TB) Config {
	t.Helper()
	addr, prefix := testenv.Redis(t)
	return Config{Addr: addr, KeyPrefix: prefix, AuditLog: true, TestApplyCounter: true}
}

func newStore(t testing.TB, cfg Config, dlqTopic string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := NewStore(ctx, cfg, dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// makeRecs returns n records of tp from offset from, with event IDs
// "<topic>-<partition>-<offset>" and JSON values.
func makeRecs(tp connector.TopicPartition, from int64, n int) []*connector.Record {
	recs := make([]*connector.Record, n)
	for i := range recs {
		off := from + int64(i)
		id := fmt.Sprintf("%s-%d-%d", tp.Topic, tp.Partition, off)
		recs[i] = &connector.Record{
			Key:     []byte("k" + strconv.FormatInt(off%7, 10)),
			Value:   fmt.Appendf(nil, `{"id":%q,"amount":%d,"note":"some payload to make the value realistic"}`, id, off),
			EventID: id,
			Origin:  connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: off},
		}
	}
	return recs
}

func mustKind(t testing.TB, err error, want connector.CommitErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %v error, got nil", want)
	}
	if got := connector.KindOf(err); got != want {
		t.Fatalf("want a %v error, got %v: %v", want, got, err)
	}
}

// countKeys counts the keys under pattern.
func countKeys(t testing.TB, c *redis.Client, pattern string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
