package redis

// Integration tests: they need the Redis `make services` starts
// (REDIS_ADDR, default 127.0.0.1:6379), or start their own redis-server.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

var (
	tp0 = connector.TopicPartition{Topic: "orders", Partition: 0}
	tp1 = connector.TopicPartition{Topic: "orders", Partition: 1}
)

func gensAt(gen int64, tps ...connector.TopicPartition) map[connector.TopicPartition]int64 {
	m := map[connector.TopicPartition]int64{}
	for _, tp := range tps {
		m[tp] = gen
	}
	return m
}

func TestCommitWrongTypeLeavesNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		structure, value string
		plant            func(c *redis.Client, key string) error
	}{
		{StructureHash, ValueFields, func(c *redis.Client, key string) error { return c.Set(ctx, key, "x", 0).Err() }},
		{StructureStream, ValueFields, func(c *redis.Client, key string) error { return c.HSet(ctx, key, "f", "v").Err() }},
	} {
		t.Run(tc.structure, func(t *testing.T) {
			cfg := sharedConfig(t)
			cfg.Structure, cfg.Value, cfg.TTL = tc.structure, tc.value, time.Hour
			s := newStore(t, cfg, "")
			c := s.Client()
			if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
				t.Fatal(err)
			}
			recs := makeRecs(tp0, 0, 100)
			bad := cfg.KeyPrefix + recs[49].EventID
			if err := tc.plant(c, bad); err != nil {
				t.Fatal(err)
			}
			err := s.Commit(ctx, "g", gensAt(1, tp0), recs, connector.Checkpoint{}, connector.Checkpoint{tp0: 100})
			mustKind(t, err, connector.Fatal)
			var we *WrongTypeError
			if !errors.As(err, &we) || we.Key != bad || we.Origin != recs[49].Origin || !strings.Contains(err.Error(), "orders/0/49") {
				t.Fatalf("want a WrongTypeError naming %s and orders/0/49, got %v", bad, err)
			}
			// Nothing of the batch: no data key but the planted one, no
			// counters, no audit entries, checkpoint unchanged.
			if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 1 {
				t.Fatalf("%d data keys after a refused batch, want only the planted one", n)
			}
			if n := countKeys(t, c, cfg.KeyPrefix+ApplyCounterPrefix+"*"); n != 0 {
				t.Fatalf("%d apply counters after a refused batch", n)
			}
			if n := c.LLen(ctx, cfg.KeyPrefix+AuditLogKey).Val(); n != 0 {
				t.Fatalf("%d audit entries after a refused batch", n)
			}
			if v := c.HGet(ctx, s.OffsetsKey("g"), "orders/0").Val(); v != "1:-1" {
				t.Fatalf("checkpoint after a refused batch: %q", v)
			}
			// With the key removed the same batch commits.
			c.Del(ctx, bad)
			if err := s.Commit(ctx, "g", gensAt(1, tp0), recs, connector.Checkpoint{}, connector.Checkpoint{tp0: 100}); err != nil {
				t.Fatal(err)
			}
			if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 100 {
				t.Fatalf("%d data keys, want 100", n)
			}
			if ttl := c.PTTL(ctx, bad).Val(); ttl <= 0 || ttl > time.Hour {
				t.Fatalf("ttl %v", ttl)
			}
		})
	}
	t.Run("audit log", func(t *testing.T) {
		// String keys are not type-checked (SET replaces any type and
		// cannot fail), but the sink's own keys are.
		cfg := sharedConfig(t)
		s := newStore(t, cfg, "")
		c := s.Client()
		if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
			t.Fatal(err)
		}
		recs := makeRecs(tp0, 0, 100)
		c.RPush(ctx, cfg.KeyPrefix+recs[10].EventID, "a list")
		c.Set(ctx, cfg.KeyPrefix+AuditLogKey, "a string", 0)
		err := s.Commit(ctx, "g", gensAt(1, tp0), recs, connector.Checkpoint{}, connector.Checkpoint{tp0: 100})
		mustKind(t, err, connector.Fatal)
		var we *WrongTypeError
		if !errors.As(err, &we) || we.Key != cfg.KeyPrefix+AuditLogKey || we.Origin != (connector.Origin{}) {
			t.Fatalf("want a WrongTypeError on the audit log, got %v", err)
		}
		if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 1 {
			t.Fatalf("%d data keys after a refused batch", n)
		}
		c.Del(ctx, cfg.KeyPrefix+AuditLogKey)
		if err := s.Commit(ctx, "g", gensAt(1, tp0), recs, connector.Checkpoint{}, connector.Checkpoint{tp0: 100}); err != nil {
			t.Fatal(err)
		}
		if typ := c.Type(ctx, cfg.KeyPrefix+recs[10].EventID).Val(); typ != "string" {
			t.Fatalf("SET left a %s", typ)
		}
	})
	t.Run("apply counter", func(t *testing.T) {
		cfg := sharedConfig(t)
		s := newStore(t, cfg, "")
		c := s.Client()
		if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
			t.Fatal(err)
		}
		recs := makeRecs(tp0, 0, 100)
		c.Set(ctx, cfg.KeyPrefix+ApplyCounterPrefix+recs[70].EventID, "not a number", 0)
		err := s.Commit(ctx, "g", gensAt(1, tp0), recs, connector.Checkpoint{}, connector.Checkpoint{tp0: 100})
		mustKind(t, err, connector.Fatal)
		if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 0 {
			t.Fatalf("%d data keys after a refused batch", n)
		}
	})
}

func TestStructuresAndDLQ(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	cfg.Structure, cfg.Value, cfg.Key = StructureStream, ValueFields, "stream:{json:id}"
	s := newStore(t, cfg, "orders-dlq")
	c := s.Client()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	recs := makeRecs(tp0, 0, 3)
	// recs[1] was dead-lettered by a transform; recs[2] has no "id" field,
	// so the sink cannot render its key and dead-letters it itself.
	recs[1].Topic = "orders-dlq"
	recs[1].Headers = []connector.Header{{Key: "__connect.errors.exception.message", Value: []byte("boom")}}
	recs[2].Value = []byte(`{"amount":2}`)
	if err := s.Commit(ctx, "g", gensAt(1, tp0), recs, nil, connector.Checkpoint{tp0: 3}); err != nil {
		t.Fatal(err)
	}
	entries := c.XRange(ctx, cfg.KeyPrefix+"stream:orders-0-0", "-", "+").Val()
	if len(entries) != 1 || entries[0].Values["event_id"] != "orders-0-0" || entries[0].Values["amount"] != "0" {
		t.Fatalf("stream entry %+v", entries)
	}
	dlq := c.XRange(ctx, cfg.KeyPrefix+DefaultDLQStream, "-", "+").Val()
	if len(dlq) != 2 {
		t.Fatalf("dlq %+v", dlq)
	}
	if v := dlq[0].Values; v["event_id"] != "orders-0-1" || v["origin"] != "orders/0/1" || v["__connect.errors.exception.message"] != "boom" {
		t.Fatalf("transform dead letter %+v", v)
	}
	if v := dlq[1].Values; v["event_id"] != "orders-0-2" || v[connector.HeaderDLQStage] != "sink" || !strings.Contains(v[connector.HeaderDLQMessage].(string), "orders/0/2") {
		t.Fatalf("sink dead letter %+v", v)
	}
	_, ids, err := s.Snapshot(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"stream:orders-0-0", "dlq:orders-0-1", "dlq:orders-0-2"}; !slices.Equal(ids, want) {
		t.Fatalf("audit %v, want %v", ids, want)
	}
	if target, id, ok := SplitAuditEntry(ids[1]); !ok || target != AuditTargetDLQ || id != "orders-0-1" {
		t.Fatalf("split %q: %q %q", ids[1], target, id)
	}

	// Without errors.tolerance all the unrenderable record fails the batch.
	s2 := newStore(t, cfg, "")
	err = s2.Commit(ctx, "g", gensAt(7, tp0), recs[2:], connector.Checkpoint{tp0: 3}, connector.Checkpoint{tp0: 4})
	var re *connector.RecordError
	if connector.KindOf(err) != connector.Fatal || !errors.As(err, &re) || re.Origin != recs[2].Origin {
		t.Fatalf("want a Fatal record error, got %v", err)
	}
}

func TestHashAndJSONValue(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	cfg.Structure, cfg.Value, cfg.Key = StructureHash, "json:amount", "h:{topic}:{partition}:{offset}"
	cfg.AuditLog, cfg.TestApplyCounter = false, false
	s := newStore(t, cfg, "")
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 4), nil, connector.Checkpoint{tp0: 4}); err != nil {
		t.Fatal(err)
	}
	if v := s.Client().HGet(ctx, cfg.KeyPrefix+"h:orders:0:3", "value").Val(); v != "3" {
		t.Fatalf("hash value %q", v)
	}
	cp, ids, err := s.Snapshot(ctx, "g")
	if !errors.Is(err, ErrNoAuditLog) || cp[tp0] != 4 || ids != nil {
		t.Fatalf("snapshot without audit log: %v %v %v", cp, ids, err)
	}
	if _, err := s.ApplyCounts(ctx, []string{"x"}); err == nil {
		t.Fatal("apply counts without counters: want an error")
	}
}

func TestWriterAtLeastOnce(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	cfg.BatchSize = 7 // several pipeline round trips
	w, err := NewWriter(ctx, cfg, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	recs := makeRecs(tp0, 0, 20)
	recs[3].Topic = "dlq"
	for range 2 { // a replayed batch: at-least-once applies it twice
		if err := w.WriteBatch(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	c := w.Client()
	if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 19 {
		t.Fatalf("%d data keys, want 19", n)
	}
	if n := c.XLen(ctx, cfg.KeyPrefix+DefaultDLQStream).Val(); n != 2 {
		t.Fatalf("dlq length %d, want 2 (duplicated)", n)
	}
	counts, err := w.ApplyCounts(ctx, []string{"orders-0-0", "orders-0-3"})
	if err != nil || counts["orders-0-0"] != 2 || counts["orders-0-3"] != 2 {
		t.Fatalf("counters %v, %v: want 2 each (the replay shows)", counts, err)
	}
	log, err := w.AuditLog(ctx)
	if err != nil || len(log) != 40 {
		t.Fatalf("audit log %d entries, %v", len(log), err)
	}
	// A write error is reported; the batch may be partly written.
	c.Del(ctx, cfg.KeyPrefix+ApplyCounterPrefix+"orders-0-5")
	c.RPush(ctx, cfg.KeyPrefix+ApplyCounterPrefix+"orders-0-5", "x")
	if err := w.WriteBatch(ctx, recs); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("want a WRONGTYPE error, got %v", err)
	}
}

// TestWriterStrings: string records without a TTL go out as MSETs of
// msetPairs keys; a key written several times in one batch, across MSETs
// and round trips, keeps its last record's value, as one SET per record
// would. With a TTL they are SETs with an expiry.
func TestWriterStrings(t *testing.T) {
	ctx := context.Background()
	n := 2*msetPairs + 5
	recs := makeRecs(tp0, 0, n) // keys k0..k6, in turn
	for _, ttl := range []time.Duration{0, time.Hour} {
		cfg := sharedConfig(t)
		cfg.Key, cfg.TTL, cfg.BatchSize = "{key}", ttl, msetPairs+msetPairs/2
		w, err := NewWriter(ctx, cfg, "")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.WriteBatch(ctx, recs); err != nil {
			t.Fatal(err)
		}
		c := w.Client()
		for i := n - 7; i < n; i++ {
			key := cfg.KeyPrefix + string(recs[i].Key)
			if got := c.Get(ctx, key).Val(); got != string(recs[i].Value) {
				t.Fatalf("ttl %v: %s holds %q, want the last record's %q", ttl, key, got, recs[i].Value)
			}
			pttl := c.PTTL(ctx, key).Val()
			if (ttl == 0) != (pttl < 0) || pttl > ttl {
				t.Fatalf("ttl %v: %s expires in %v", ttl, key, pttl)
			}
		}
		if counts, err := w.ApplyCounts(ctx, []string{recs[0].EventID, recs[n-1].EventID}); err != nil ||
			counts[recs[0].EventID] != 1 || counts[recs[n-1].EventID] != 1 {
			t.Fatalf("ttl %v: counters %v, %v: want 1 each", ttl, counts, err)
		}
		if log, err := w.AuditLog(ctx); err != nil || len(log) != n {
			t.Fatalf("ttl %v: audit log %d entries, %v; want %d", ttl, len(log), err, n)
		}
	}
}

// TestNoScriptRecovery flushes the server's script cache (on a server of
// its own, not to disturb other tests) and commits again.
func TestNoScriptRecovery(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedisServer(t, "everysec")
	s := newStore(t, Config{Addr: srv.Addr(), AuditLog: true}, "")
	s.scriptOnly = true // else the commit needs no script
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 10), nil, connector.Checkpoint{tp0: 10}); err != nil {
		t.Fatalf("commit after SCRIPT FLUSH: %v", err)
	}
	s.Client().ScriptFlush(ctx)
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatalf("claim after SCRIPT FLUSH: %v", err)
	}
	s.Client().ScriptFlush(ctx)
	if cp, ids, err := s.Snapshot(ctx, "g"); err != nil || cp[tp0] != 10 || len(ids) != 10 {
		t.Fatalf("snapshot after SCRIPT FLUSH: %v %d %v", cp, len(ids), err)
	}
}

// TestOutOfMemoryIsAbortable: with maxmemory exceeded Redis refuses the
// whole script before it runs (the "#!lua" shebang), so the commit is
// Abortable and nothing is written.
func TestOutOfMemoryIsAbortable(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedisServer(t, "everysec")
	s := newStore(t, Config{Addr: srv.Addr(), AuditLog: true}, "")
	c := s.Client()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 10), nil, connector.Checkpoint{tp0: 10})
	mustKind(t, err, connector.Abortable)
	if !redis.IsOOMError(errors.Unwrap(err)) {
		t.Fatalf("want an OOM error, got %v", err)
	}
	if n := c.DBSize(ctx).Val(); n != 1 { // the offsets hash only
		t.Fatalf("%d keys after a refused commit", n)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 10), nil, connector.Checkpoint{tp0: 10}); err != nil {
		t.Fatal(err)
	}
}

// TestServerDown: with the server gone a commit fails as Abortable (the
// connection was refused, nothing sent) or CommitUnknown (a pooled
// connection broke), never as success; the store works again once the
// server is back.
func TestServerDown(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedisServer(t, "always")
	s := newStore(t, Config{Addr: srv.Addr(), Timeout: 2 * time.Second}, "")
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 10), nil, connector.Checkpoint{tp0: 10})
	if k := connector.KindOf(err); k != connector.Abortable && k != connector.CommitUnknown {
		t.Fatalf("commit with the server down: %v", err)
	}
	t.Logf("commit with the server down: %v", err)
	srv.Start()
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 10), nil, connector.Checkpoint{tp0: 10}); err != nil {
		t.Fatalf("commit after restart: %v", err)
	}
}
