package redis_test

import (
	"context"
	"maps"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
)

// An offsets reset followed by resume is a Kappa-style replay: the stopped
// connector's checkpoint in Redis is reset through the daemon (the admin
// API's DELETE /connectors/{c}/offsets), it re-reads its whole input and
// re-applies every event; with an idempotent sink (SET keyed on the event
// ID) the final state is the same, key for key and byte for byte.
func TestOffsetResetReplayLeavesStateUnchanged(t *testing.T) {
	addr, prefix := testenv.Redis(t)
	c := e2e.Cluster(t)
	const n = 5000
	e2e.Produce(t, c, "in", 0, n)
	cfg := e2e.Parse(t, c, redisYAML, "GUARANTEE", "exactly_once", "ADDR", addr, "PREFIX", prefix)
	d := e2e.Start(t, cfg, "a")
	e2e.MustBeClean(t, e2e.WaitExpected(t, c, cfg, "to-redis", n, 2*time.Minute), "first pass")

	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	before := dataKeys(t, rdb, prefix+"order:*")
	if len(before) != n {
		t.Fatalf("%d data keys after the first pass, want %d", len(before), n)
	}

	if err := d.StopConnector(ctx, "to-redis"); err != nil {
		t.Fatal(err)
	}
	if err := d.ResetOffsets(ctx, "to-redis"); err != nil {
		t.Fatal(err)
	}
	if cp, err := d.Offsets(ctx, "to-redis"); err != nil || len(cp) != 0 {
		t.Fatalf("offsets after reset: %v, %v", cp, err)
	}
	if err := d.Resume("to-redis"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cp, err := d.Offsets(ctx, "to-redis")
		if err != nil {
			t.Fatal(err)
		}
		if sum(cp) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay did not finish: checkpoint %v", cp)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := dataKeys(t, rdb, prefix+"order:*")
	if !maps.Equal(before, after) {
		t.Fatalf("the replay changed the sink: %d keys before, %d after", len(before), len(after))
	}
	// Every event was applied twice (once per pass): the replay happened.
	rep := e2e.Check(t, c, cfg, "to-redis")
	if rep.Duplicates != n || rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("after one full replay the audit log should hold every event exactly twice: %s", rep)
	}
	t.Logf("replayed %d events: state unchanged (%d keys), every event applied twice", n, len(after))
}

func dataKeys(t *testing.T, rdb *goredis.Client, pattern string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		v, err := rdb.Get(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[iter.Val()] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sum(cp connector.Checkpoint) int64 {
	var s int64
	for _, v := range cp {
		s += v
	}
	return s
}
