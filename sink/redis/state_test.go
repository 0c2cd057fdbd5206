package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// stateRec is a state record of namespace ns and input partition tp;
// value nil deletes key.
func stateRec(ns string, tp connector.TopicPartition, key string, value []byte) *connector.Record {
	return &connector.Record{Kind: connector.StateRecord, Topic: ns, Key: []byte(key), Value: value,
		Origin: connector.Origin{Topic: tp.Topic, Partition: tp.Partition}}
}

// stateRecs returns n state records of ns and tp setting "<key>i" to
// "<value>i" for i in [from, from+n).
func stateRecs(ns string, tp connector.TopicPartition, key, value string, from, n int) []*connector.Record {
	out := make([]*connector.Record, n)
	for i := range out {
		out[i] = stateRec(ns, tp, fmt.Sprintf("%s%d", key, from+i), fmt.Appendf(nil, "%s%d", value, from+i))
	}
	return out
}

// wantState builds the map LoadState should return.
func wantState(key, value string, from, n int) map[string][]byte {
	m := make(map[string][]byte, n)
	for i := from; i < from+n; i++ {
		m[fmt.Sprintf("%s%d", key, i)] = fmt.Appendf(nil, "%s%d", value, i)
	}
	return m
}

func mustState(t *testing.T, s connector.StateStore, ns string, tp connector.TopicPartition, want map[string][]byte) {
	t.Helper()
	got, err := s.LoadState(context.Background(), ns, tp)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("state of %s %s: %d entries, want %d%s", ns, tp, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(got, want map[string][]byte) string {
	for k, v := range want {
		if g, ok := got[k]; !ok || string(g) != string(v) {
			return fmt.Sprintf("; %q = %q (present %v), want %q", k, g, ok, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("; unexpected %q = %q", k, v)
		}
	}
	return ""
}

func TestStateChangesGroupAndLastWins(t *testing.T) {
	p := testPlanner(t, Config{Addr: "a:1", KeyPrefix: "p:"}, "")
	t0, t1 := connector.TopicPartition{Topic: "t", Partition: 0}, connector.TopicPartition{Topic: "t", Partition: 1}
	recs := []*connector.Record{
		stateRec("g", t0, "a", []byte("1")),
		{EventID: "e1", Value: []byte("data"), Origin: connector.Origin{Topic: "t"}},
		stateRec("g", t1, "a", []byte("x")),
		stateRec("g", t0, "b", nil),
		stateRec("g", t0, "a", nil),            // a: set then deleted
		stateRec("g", t0, "b", []byte("2")),    // b: deleted then set
		stateRec("g", t0, "c", []byte("3")),    // c: set
		stateRec("h", t0, "a", []byte("")),     // another namespace; an empty value is a value
		stateRec("g", t0, "c", []byte("3bis")), // c: set again
	}
	got := p.stateChanges(recs)
	var desc []string
	for _, h := range got {
		desc = append(desc, fmt.Sprintf("%s set%q del%q", h.key, h.set, h.del))
	}
	want := []string{
		`p:connectd:state:g:t:0 set["b" "2" "c" "3bis"] del["a"]`,
		`p:connectd:state:g:t:1 set["a" "x"] del[]`,
		`p:connectd:state:h:t:0 set["a" ""] del[]`,
	}
	if strings.Join(desc, "\n") != strings.Join(want, "\n") {
		t.Fatalf("state changes\n%s\nwant\n%s", strings.Join(desc, "\n"), strings.Join(want, "\n"))
	}
	if data := dataRecords(recs); len(data) != 1 || data[0].EventID != "e1" {
		t.Fatalf("data records %v", data)
	}
	if p.stateChanges(recs[1:2]) != nil {
		t.Fatal("a batch without state records has state changes")
	}
}

func TestCommitArgsWithState(t *testing.T) {
	p := testPlanner(t, Config{Addr: "a:1", KeyPrefix: "p:", TestApplyCounter: true}, "")
	t0 := connector.TopicPartition{Topic: "t", Partition: 0}
	recs := []*connector.Record{
		{EventID: "e1", Value: []byte("v"), Origin: connector.Origin{Topic: "t"}},
		stateRec("g", t0, "a", []byte("1")),
		stateRec("g", t0, "b", nil),
		stateRec("g", t0, "c", []byte("3")),
	}
	o, err := p.op(recs[0], "p:connectd:offsets:g")
	if err != nil {
		t.Fatal(err)
	}
	keys, args, err := p.commitArgs("p:connectd:offsets:g", map[connector.TopicPartition]int64{t0: 1},
		nil, connector.Checkpoint{t0: 4}, []op{o}, p.stateChanges(recs))
	if err != nil {
		t.Fatal(err)
	}
	if want := "p:connectd:offsets:g p:connectd:dlq p:connectd:applied-log p:e1 p:connectd:applied:e1 p:connectd:state:g:t:0"; strings.Join(keys, " ") != want {
		t.Errorf("keys %q\nwant %q", keys, want)
	}
	var got []string
	for _, a := range args {
		if b, ok := a.([]byte); ok {
			a = string(b)
		}
		got = append(got, fmt.Sprint(a))
	}
	if want := "1 1 0 0 1 1 t/0 1:-1 1:4 s  1 v 2 1 a 1 c 3 b"; strings.Join(got, " ") != want {
		t.Errorf("args\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

func TestDataKeyInStateHashesIsReserved(t *testing.T) {
	p := testPlanner(t, Config{Addr: "a:1", KeyPrefix: "p:", Key: "connectd:state:{key}"}, "")
	_, err := p.op(&connector.Record{Key: []byte("g:t:0"), Value: []byte("v"), EventID: "e"}, "p:connectd:offsets:g")
	var rk *reservedKeyError
	if connector.KindOf(err) != connector.Fatal || !errors.As(err, &rk) {
		t.Fatalf("want a reserved key error, got %v", err)
	}
}

// TestStateCommitsWithTheBatch: state records are applied by the commit
// script with the data and the offsets, grouped per namespace and
// partition, across several HSET/HDEL chunks; deletes remove fields;
// LoadState gives each (namespace, partition) its own.
func TestStateCommitsWithTheBatch(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	s := newStore(t, cfg, "")
	c := s.Client()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0, tp1}); err != nil {
		t.Fatal(err)
	}
	// More fields than one HSET or HDEL chunk takes.
	const big = 3*stateChunk + 17
	b1 := makeRecs(tp0, 0, 10)
	b1 = append(b1, stateRecs("g", tp0, "w", "v", 0, big)...)
	b1 = append(b1, stateRecs("g", tp1, "w", "other-partition", 0, 3)...)
	b1 = append(b1, stateRecs("g2", tp0, "w", "other-namespace", 0, 2)...)
	b1 = append(b1, stateRecs("g", connector.TopicPartition{Topic: "returns", Partition: 0}, "w", "other-topic", 0, 1)...)
	if err := s.Commit(ctx, "g", gensAt(1, tp0, tp1), b1, nil, connector.Checkpoint{tp0: 10, tp1: 0}); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 10 {
		t.Fatalf("%d data keys, want 10", n)
	}
	if cp, ids, err := s.Snapshot(ctx, "g"); err != nil || cp[tp0] != 10 || len(ids) != 10 {
		t.Fatalf("snapshot %v, %d audit entries (state records are not audited), %v", cp, len(ids), err)
	}
	mustState(t, s, "g", tp0, wantState("w", "v", 0, big))
	mustState(t, s, "g", tp1, wantState("w", "other-partition", 0, 3))
	mustState(t, s, "g2", tp0, wantState("w", "other-namespace", 0, 2))
	mustState(t, s, "g", connector.TopicPartition{Topic: "returns"}, wantState("w", "other-topic", 0, 1))
	mustState(t, s, "g3", tp0, map[string][]byte{})
	if typ := c.Type(ctx, cfg.KeyPrefix+"connectd:state:g:orders:0").Val(); typ != "hash" {
		t.Fatalf("state hash is a %q", typ)
	}

	// Delete the first 2*stateChunk+5 fields (several HDEL chunks),
	// update one, add one, in a batch with data.
	var b2 []*connector.Record
	for i := range 2*stateChunk + 5 {
		b2 = append(b2, stateRec("g", tp0, fmt.Sprintf("w%d", i), nil))
	}
	b2 = append(b2, makeRecs(tp0, 10, 5)...)
	b2 = append(b2, stateRec("g", tp0, fmt.Sprintf("w%d", big-1), []byte("updated")), stateRec("g", tp0, "new", []byte("n")))
	b2 = append(b2, stateRec("g", tp1, "w0", nil))
	if err := s.Commit(ctx, "g", gensAt(1, tp0, tp1), b2, connector.Checkpoint{tp0: 10, tp1: 0}, connector.Checkpoint{tp0: 15, tp1: 0}); err != nil {
		t.Fatal(err)
	}
	want := wantState("w", "v", 2*stateChunk+5, big-(2*stateChunk+5))
	want[fmt.Sprintf("w%d", big-1)] = []byte("updated")
	want["new"] = []byte("n")
	mustState(t, s, "g", tp0, want)
	mustState(t, s, "g", tp1, wantState("w", "other-partition", 1, 2))
	if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 15 {
		t.Fatalf("%d data keys, want 15", n)
	}

	// A batch of state records alone commits too, and deleting every
	// field leaves no hash.
	b3 := []*connector.Record{stateRec("g2", tp0, "w0", nil), stateRec("g2", tp0, "w1", nil)}
	if err := s.Commit(ctx, "g", gensAt(1, tp0), b3, connector.Checkpoint{tp0: 15}, connector.Checkpoint{tp0: 15}); err != nil {
		t.Fatal(err)
	}
	mustState(t, s, "g2", tp0, map[string][]byte{})
	if n := c.Exists(ctx, cfg.KeyPrefix+"connectd:state:g2:orders:0").Val(); n != 0 {
		t.Fatal("the emptied state hash still exists")
	}
}

// TestFencedCommitAppliesNoState: a zombie (an older claim epoch) and a
// commit from a checkpoint that moved are fenced, and none of their state
// changes apply; the heir's do.
func TestFencedCommitAppliesNoState(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	s := newStore(t, cfg, "")
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	b1 := append(makeRecs(tp0, 0, 10), stateRecs("g", tp0, "w", "v", 0, 100)...)
	if err := s.Commit(ctx, "g", gensAt(1, tp0), b1, nil, connector.Checkpoint{tp0: 10}); err != nil {
		t.Fatal(err)
	}
	// The heir claims tp0 (epoch 2) and loads the state.
	claims, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0})
	if err != nil || claims[tp0] != (txn.PartitionClaim{Epoch: 2, Next: 10}) {
		t.Fatalf("heir's claim: %v, %v", claims, err)
	}
	before := wantState("w", "v", 0, 100)
	mustState(t, s, "g", tp0, before)

	// The zombie's next batch: updates, deletes and new entries.
	zombie := makeRecs(tp0, 10, 10)
	zombie = append(zombie, stateRecs("g", tp0, "w", "zombie", 50, 100)...)
	for i := range 50 {
		zombie = append(zombie, stateRec("g", tp0, fmt.Sprintf("w%d", i), nil))
	}
	err = s.Commit(ctx, "g", gensAt(1, tp0), zombie, connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 20})
	mustKind(t, err, connector.Fenced)
	mustState(t, s, "g", tp0, before)
	if n := countKeys(t, s.Client(), cfg.KeyPrefix+"orders-0-1?"); n != 0 {
		t.Fatalf("the zombie wrote %d data keys", n)
	}
	// The current epoch from a checkpoint that is not the stored one.
	err = s.Commit(ctx, "g", gensAt(2, tp0), zombie, connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 20})
	mustKind(t, err, connector.Fenced)
	mustState(t, s, "g", tp0, before)

	// The heir's batch applies.
	heir := append(makeRecs(tp0, 10, 10), stateRec("g", tp0, "w0", nil), stateRec("g", tp0, "w100", []byte("heir")))
	if err := s.Commit(ctx, "g", gensAt(2, tp0), heir, connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 20}); err != nil {
		t.Fatal(err)
	}
	after := maps.Clone(before)
	delete(after, "w0")
	after["w100"] = []byte("heir")
	mustState(t, s, "g", tp0, after)
}

// TestStateHashOfAnotherTypeRefusesTheBatch: a state hash key holding
// another type fails the commit as Fatal before anything is written, and
// LoadState as Fatal too.
func TestStateHashOfAnotherTypeRefusesTheBatch(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	s := newStore(t, cfg, "")
	c := s.Client()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0, tp1}); err != nil {
		t.Fatal(err)
	}
	bad := cfg.KeyPrefix + "connectd:state:g:orders:1"
	c.Set(ctx, bad, "not a hash", 0)
	recs := append(makeRecs(tp0, 0, 10), stateRecs("g", tp0, "w", "v", 0, 10)...)
	recs = append(recs, stateRecs("g", tp1, "w", "v", 0, 10)...)
	err := s.Commit(ctx, "g", gensAt(1, tp0, tp1), recs, nil, connector.Checkpoint{tp0: 10, tp1: 0})
	mustKind(t, err, connector.Fatal)
	var we *WrongTypeError
	if !errors.As(err, &we) || we.Key != bad || we.Found != "string" || we.Wanted != "hash" {
		t.Fatalf("want a WrongTypeError on %s, got %v", bad, err)
	}
	if n := countKeys(t, c, cfg.KeyPrefix+"orders-*"); n != 0 {
		t.Fatalf("%d data keys after a refused batch", n)
	}
	mustState(t, s, "g", tp0, map[string][]byte{})
	if v := c.HGet(ctx, s.OffsetsKey("g"), "orders/0").Val(); v != "1:-1" {
		t.Fatalf("checkpoint after a refused batch: %q", v)
	}
	_, err = s.LoadState(ctx, "g", tp1)
	mustKind(t, err, connector.Fatal)
	if !errors.As(err, &we) || we.Key != bad {
		t.Fatalf("LoadState of a string: %v", err)
	}
}

// TestWriterWritesState: the at-least-once path writes state records as
// HSET/HDEL of the same hashes, and reads them back.
func TestWriterWritesState(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t)
	cfg.BatchSize = 7
	w, err := NewWriter(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	recs := append(makeRecs(tp0, 0, 20), stateRecs("g", tp0, "w", "v", 0, stateChunk+3)...)
	if err := w.WriteBatch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	mustState(t, w, "g", tp0, wantState("w", "v", 0, stateChunk+3))
	var dels []*connector.Record
	for i := range stateChunk + 1 {
		dels = append(dels, stateRec("g", tp0, fmt.Sprintf("w%d", i), nil))
	}
	if err := w.WriteBatch(ctx, dels); err != nil {
		t.Fatal(err)
	}
	mustState(t, w, "g", tp0, wantState("w", "v", stateChunk+1, 2))
	if n := countKeys(t, w.Client(), cfg.KeyPrefix+"orders-*"); n != 20 {
		t.Fatalf("%d data keys, want 20", n)
	}
}

// TestLoadStateMillion commits 1,000,000 state entries of one partition
// through the commit script (100 batches of 10,000) and loads them back,
// logging both times (DESIGN.md's restore target: 1,000,000 keys in ≤ 10
// s; a benchmark figure, not asserted).
func TestLoadStateMillion(t *testing.T) {
	ctx := context.Background()
	cfg := sharedConfig(t) // about 150 MB of Redis memory while it runs
	cfg.AuditLog, cfg.TestApplyCounter = false, false
	s := newStore(t, cfg, "")
	c := s.Client()
	key := cfg.KeyPrefix + "connectd:state:g:orders:0"
	t.Cleanup(func() { c.Unlink(context.Background(), key) })
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
		t.Fatal(err)
	}
	const total, batch = 1_000_000, 10_000
	// A window stage's entry: "<window start>/<key>" and a small encoded
	// aggregate.
	entry := func(i int) (string, []byte) {
		return fmt.Sprintf("1718000000000/customer-%07d", i), fmt.Appendf(nil, `{"n":%d,"sum":%d.25,"max":%d}`, i%97, i, i%1000)
	}
	start := time.Now()
	recs := make([]*connector.Record, batch)
	from := connector.Checkpoint{}
	for b := range total / batch {
		for i := range recs {
			k, v := entry(b*batch + i)
			recs[i] = stateRec("g", tp0, k, v)
		}
		to := connector.Checkpoint{tp0: int64(b + 1)}
		if err := s.Commit(ctx, "g", gensAt(1, tp0), recs, from, to); err != nil {
			t.Fatal(err)
		}
		from = to
	}
	commitTime := time.Since(start)
	start = time.Now()
	got, err := s.LoadState(ctx, "g", tp0)
	loadTime := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("loaded %d entries, want %d", len(got), total)
	}
	for _, i := range []int{0, 1, 499_999, total - 1} {
		k, v := entry(i)
		if string(got[k]) != string(v) {
			t.Fatalf("%s = %q, want %q", k, got[k], v)
		}
	}
	t.Logf("committed %d state entries in %d scripts of %d in %v (%.0f entries/s); LoadState read them in %v (%.0f entries/s)",
		total, total/batch, batch, commitTime.Round(time.Millisecond), total/commitTime.Seconds(),
		loadTime.Round(time.Millisecond), total/loadTime.Seconds())
}
