package redis

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// calls reads how many times the server ran each command (INFO
// commandstats), on a server of the test's own.
func calls(t *testing.T, c *redis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`cmdstat_([a-z|]+):calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		out[m[1]], _ = strconv.Atoi(m[2])
	}
	return out
}

// TestCommitFastPath: a commit whose checks pass is one WATCHed MULTI/EXEC
// block, no script; when a watched key changes between the checks and
// EXEC — the offsets hash (a claim by the heir) or a key whose type a
// write depends on (the audit log) — EXEC applies nothing and the script
// decides: fenced, or a WRONGTYPE refusal, with nothing written either
// way.
func TestCommitFastPath(t *testing.T) {
	ctx := context.Background()
	srv, s, c := claimedOnOwnServer(t)
	before := calls(t, c)
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, 10), nil, connector.Checkpoint{tp0: 10}); err != nil {
		t.Fatal(err)
	}
	after := calls(t, c)
	if after["evalsha"] != before["evalsha"] || after["exec"] != before["exec"]+1 || after["mset"] != before["mset"]+1 {
		t.Fatalf("commit: evalsha %d→%d, exec %d→%d, mset %d→%d: want one MULTI/EXEC with one MSET and no script",
			before["evalsha"], after["evalsha"], before["exec"], after["exec"], before["mset"], after["mset"])
	}
	if cp, ids, err := s.Snapshot(ctx, "g"); err != nil || cp[tp0] != 10 || len(ids) != 10 {
		t.Fatalf("snapshot after the fast commit: %v, %d entries, %v", cp, len(ids), err)
	}
	counts, err := s.ApplyCounts(ctx, []string{"orders-0-0", "orders-0-9"})
	if err != nil || counts["orders-0-0"] != 1 || counts["orders-0-9"] != 1 {
		t.Fatalf("apply counters %v, %v", counts, err)
	}
	keys := c.DBSize(ctx).Val()

	// The heir claims tp0 after this member's checks passed.
	heir := newStore(t, Config{Addr: srv.Addr(), AuditLog: true, TestApplyCounter: true}, "")
	s.beforeExec = func() {
		if _, err := heir.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
			t.Error(err)
		}
	}
	before = calls(t, c)
	err = s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 10, 10), connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 20})
	mustKind(t, err, connector.Fenced)
	var fe *FencedError
	if !errors.As(err, &fe) || fe.Stored != "2:10" {
		t.Fatalf("fenced error %v", err)
	}
	after = calls(t, c)
	if after["exec"] != before["exec"]+1 || after["evalsha"] != before["evalsha"]+2 { // the heir's claim, then the commit script
		t.Fatalf("raced commit: exec %d→%d, evalsha %d→%d: want an aborted EXEC, then the script",
			before["exec"], after["exec"], before["evalsha"], after["evalsha"])
	}
	if n := c.DBSize(ctx).Val(); n != keys {
		t.Fatalf("%d keys after a fenced commit, %d before", n, keys)
	}

	// The audit log turns into a string after the checks.
	audit := s.plan.k.audit
	s.beforeExec = func() {
		if err := c.Rename(ctx, audit, audit+":saved").Err(); err != nil {
			t.Error(err)
		}
		c.Set(ctx, audit, "not a list", 0)
	}
	err = s.Commit(ctx, "g", gensAt(2, tp0), makeRecs(tp0, 10, 10), connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 20})
	mustKind(t, err, connector.Fatal)
	var we *WrongTypeError
	if !errors.As(err, &we) || we.Key != audit || we.Found != "string" {
		t.Fatalf("want a WRONGTYPE refusal of the audit log, got %v", err)
	}
	if n := c.DBSize(ctx).Val(); n != keys+1 { // the saved audit log
		t.Fatalf("%d keys after a refused commit, %d before", n, keys)
	}
	if v := c.HGet(ctx, s.OffsetsKey("g"), tp0.String()).Val(); v != "2:10" {
		t.Fatalf("checkpoint after a refused commit: %q", v)
	}
}

// A batch whose commit would WATCH more than maxWatchedKeys keys (an apply
// counter per record here) goes to the script without a WATCH: WATCH is
// quadratic in its keys on the server, and 10,000 of them blocked a shared
// server for half a second a commit.
func TestCommitManyWatchedKeysUsesScript(t *testing.T) {
	ctx := context.Background()
	_, s, c := claimedOnOwnServer(t)
	before := calls(t, c)
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, 0, maxWatchedKeys), nil, connector.Checkpoint{tp0: maxWatchedKeys}); err != nil {
		t.Fatal(err)
	}
	after := calls(t, c)
	if after["watch"] != before["watch"] || after["exec"] != before["exec"] || after["evalsha"] != before["evalsha"]+1 {
		t.Fatalf("large commit: watch %d→%d, exec %d→%d, evalsha %d→%d: want the script alone",
			before["watch"], after["watch"], before["exec"], after["exec"], before["evalsha"], after["evalsha"])
	}
	if cp, ids, err := s.Snapshot(ctx, "g"); err != nil || cp[tp0] != maxWatchedKeys || len(ids) != maxWatchedKeys {
		t.Fatalf("snapshot after the large commit: %v, %d entries, %v", cp, len(ids), err)
	}
	// A small batch of the same store still takes the fast path.
	before = calls(t, c)
	if err := s.Commit(ctx, "g", gensAt(1, tp0), makeRecs(tp0, maxWatchedKeys, 10), connector.Checkpoint{tp0: maxWatchedKeys}, connector.Checkpoint{tp0: maxWatchedKeys + 10}); err != nil {
		t.Fatal(err)
	}
	after = calls(t, c)
	if after["exec"] != before["exec"]+1 || after["evalsha"] != before["evalsha"] {
		t.Fatalf("small commit: exec %d→%d, evalsha %d→%d: want the fast path", before["exec"], after["exec"], before["evalsha"], after["evalsha"])
	}
}

// claimedOnOwnServer starts a private appendfsync-always server (its INFO
// commandstats count only this test's commands) and returns a store on it,
// with the audit log and apply counters, that has claimed tp0 in group g.
func claimedOnOwnServer(t *testing.T) (*testenv.RedisServer, *Store, *redis.Client) {
	t.Helper()
	srv := testenv.StartRedisServer(t, "always")
	s := newStore(t, Config{Addr: srv.Addr(), AuditLog: true, TestApplyCounter: true}, "")
	if _, err := s.Claim(context.Background(), "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	return srv, s, s.Client()
}
