package postgres

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/txn"
)

// stateRec is a state record of input partition tp in namespace ns; a nil
// value deletes the key.
func stateRec(ns string, tp connector.TopicPartition, key string, value []byte) *connector.Record {
	return &connector.Record{
		Kind:   connector.StateRecord,
		Topic:  ns,
		Key:    []byte(key),
		Value:  value,
		Origin: connector.Origin{Topic: tp.Topic, Partition: tp.Partition},
	}
}

// Within a batch the last record of a key wins, whether upsert or delete,
// and the entries come out sorted, each in exactly one statement.
func TestStateWritesLastWinsSorted(t *testing.T) {
	w, err := newStateWrites([]*connector.Record{
		stateRec("g", p1, "b", []byte("b1")),
		stateRec("g", p0, "b", []byte("p0")),
		stateRec("g", p1, "a", []byte("a1")),
		stateRec("g", p1, "b", nil),          // b deleted ...
		stateRec("g", p1, "b", []byte("b2")), // ... then written again: b2
		stateRec("g", p1, "a", nil),          // a written, then deleted
		stateRec("h", p1, "a", []byte("h")),  // another namespace
		stateRec("g", p1, "c", []byte{}),     // an empty value is a value
		stateRec("g", p1, "d", nil),          // a delete of a key never written
	})
	if err != nil {
		t.Fatal(err)
	}
	var ups []string
	for i := range w.up.keys {
		ups = append(ups, fmt.Sprintf("%s/%s/%d/%s=%q", w.up.ns[i], w.up.topics[i], w.up.parts[i], w.up.keys[i], w.up.values[i]))
	}
	want := []string{`g/in/0/b="p0"`, `g/in/1/b="b2"`, `g/in/1/c=""`, `h/in/1/a="h"`}
	if strings.Join(ups, " ") != strings.Join(want, " ") {
		t.Fatalf("upserts %v, want %v", ups, want)
	}
	if w.up.values[2] == nil {
		t.Fatal("an empty value became nil (NULL)")
	}
	var dels []string
	for i := range w.del.keys {
		dels = append(dels, fmt.Sprintf("%s/%s/%d/%s", w.del.ns[i], w.del.topics[i], w.del.parts[i], w.del.keys[i]))
		if len(w.del.values) != 0 {
			t.Fatal("deletes carry values")
		}
	}
	if strings.Join(dels, " ") != "g/in/1/a g/in/1/d" {
		t.Fatalf("deletes %v, want [g/in/1/a g/in/1/d]", dels)
	}
}

// A key the text column cannot hold fails the batch for good, naming it.
func TestStateWritesRejectNonText(t *testing.T) {
	for _, key := range []string{"a\x00b", "\xff\xfe"} {
		_, err := newStateWrites([]*connector.Record{stateRec("g", p0, key, []byte("v"))})
		wantKind(t, err, connector.Fatal, fmt.Sprintf("key %q", key))
	}
}

func TestStateTableName(t *testing.T) {
	for table, want := range map[string]string{"events": `"events_state"`, "analytics.events": `"analytics"."events_state"`} {
		c := Config{DSN: "postgres://u@127.0.0.1/db", Table: table}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.QuotedStateTable(); got != want {
			t.Errorf("table %s: state table %s, want %s", table, got, want)
		}
	}
}

func loadState(t *testing.T, s *Store, ns string, tp connector.TopicPartition) map[string]string {
	t.Helper()
	m, err := s.LoadState(context.Background(), ns, tp)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func wantState(t *testing.T, s *Store, ns string, tp connector.TopicPartition, want map[string]string) {
	t.Helper()
	if got := loadState(t, s, ns, tp); !maps.Equal(got, want) {
		t.Fatalf("state of %s %s: %v, want %v", ns, tp, got, want)
	}
}

// State records commit with the rows and the offsets, never as rows; a
// fenced commit applies none of its state; deletes remove entries; the
// last record of a key in a batch wins; LoadState reads one namespace's
// one partition.
func TestStateCommitsWithRowsAndOffsets(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
	ctx := context.Background()
	const g = "grp"
	if _, err := s.Claim(ctx, g, []connector.TopicPartition{p0, p1}); err != nil {
		t.Fatal(err)
	}
	epoch1 := map[connector.TopicPartition]int64{p0: 1, p1: 1}
	batch := append(recs(p0, 0, 10), recs(p1, 0, 5)...)
	batch = append(batch,
		stateRec(g, p0, "w1/a", []byte("1")),
		stateRec(g, p0, "w1/b", []byte("2")),
		stateRec(g, p0, "w1/a", []byte("3")), // last wins
		stateRec(g, p1, "w1/a", []byte("p1")),
		stateRec("other", p0, "w1/a", []byte("other namespace")),
		stateRec(g, connector.TopicPartition{Topic: "in2", Partition: 0}, "w1/a", []byte("other topic")),
		stateRec(g, p0, "never", nil), // deleting a missing entry is no error
	)
	if err := s.Commit(ctx, g, epoch1, batch, connector.Checkpoint{}, connector.Checkpoint{p0: 10, p1: 5}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 15 {
		t.Fatalf("%d rows, want 15 (state records are not rows)", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM events_state"); n != 5 {
		t.Fatalf("%d state entries, want 5", n)
	}
	wantState(t, s, g, p0, map[string]string{"w1/a": "3", "w1/b": "2"})
	wantState(t, s, g, p1, map[string]string{"w1/a": "p1"})
	wantState(t, s, "other", p0, map[string]string{"w1/a": "other namespace"})
	wantState(t, s, g, connector.TopicPartition{Topic: "in2"}, map[string]string{"w1/a": "other topic"})
	wantState(t, s, g, connector.TopicPartition{Topic: "in", Partition: 7}, map[string]string{})

	// The heir claims p0; the old owner's commit, state and all, is fenced.
	if _, err := s.Claim(ctx, g, []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(ctx, g, epoch1, append(recs(p0, 10, 20),
		stateRec(g, p0, "w1/a", []byte("zombie")), stateRec(g, p0, "w1/b", nil), stateRec(g, p0, "w2/a", []byte("zombie"))),
		connector.Checkpoint{p0: 10}, connector.Checkpoint{p0: 20})
	wantKind(t, err, connector.Fenced, "stale claim epoch")
	wantState(t, s, g, p0, map[string]string{"w1/a": "3", "w1/b": "2"})
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 15 {
		t.Fatalf("the fenced commit wrote rows: %d, want 15", n)
	}

	// The heir deletes, updates and adds entries, a key deleted then
	// written again in one batch ending written, one written then deleted
	// ending deleted.
	epoch2 := map[connector.TopicPartition]int64{p0: 2}
	err = s.Commit(ctx, g, epoch2, append(recs(p0, 10, 12),
		stateRec(g, p0, "w1/a", nil),
		stateRec(g, p0, "w1/a", []byte("again")),
		stateRec(g, p0, "w1/b", []byte("4")),
		stateRec(g, p0, "w1/b", nil),
		stateRec(g, p0, "w2/a", []byte("5"))),
		connector.Checkpoint{p0: 10}, connector.Checkpoint{p0: 12})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, s, g, p0, map[string]string{"w1/a": "again", "w2/a": "5"})
	wantState(t, s, g, p1, map[string]string{"w1/a": "p1"})

	// A batch of state alone (windows closing on a batch whose rows were
	// all filtered) still commits with the offsets.
	err = s.Commit(ctx, g, epoch2, []*connector.Record{stateRec(g, p0, "w1/a", nil), stateRec(g, p0, "w2/a", nil)},
		connector.Checkpoint{p0: 12}, connector.Checkpoint{p0: 13})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, s, g, p0, map[string]string{})
	if n := count(t, conn, "SELECT next_offset FROM connectd_offsets WHERE topic = 'in' AND partition = 0"); n != 13 {
		t.Fatalf("p0 checkpoint %d, want 13", n)
	}
}

// at_least_once and two-phase batches carry their state in the same
// transaction too: written with the rows, and with a prepared
// transaction committed or rolled back with it.
func TestStateAtLeastOnceAndTwoPhase(t *testing.T) {
	ctx := context.Background()
	t.Run("at_least_once", func(t *testing.T) {
		s, conn := newTestStore(t, testConfig(testenv.Postgres(t)), Options{})
		if err := s.WriteBatch(ctx, append(recs(p0, 0, 3), stateRec("g", p0, "k", []byte("v")))); err != nil {
			t.Fatal(err)
		}
		if n := count(t, conn, "SELECT count(*) FROM events"); n != 3 {
			t.Fatalf("%d rows, want 3", n)
		}
		wantState(t, s, "g", p0, map[string]string{"k": "v"})
		if err := s.WriteBatch(ctx, []*connector.Record{stateRec("g", p0, "k", nil)}); err != nil {
			t.Fatal(err)
		}
		wantState(t, s, "g", p0, map[string]string{})
	})
	t.Run("two_phase", func(t *testing.T) {
		s, _ := newTestStore(t, testConfig(testenv.Postgres(t)), Options{ExactlyOnce: true, TwoPhase: true})
		if err := s.Check(ctx); err != nil {
			t.Fatal(err)
		}
		prefix := txn.GIDPrefix("c-state")
		g1, g2 := prefix+"a:s:1:0", prefix+"a:s:2:0"
		t.Cleanup(func() {
			_ = s.RollbackPrepared(context.Background(), g1)
			_ = s.RollbackPrepared(context.Background(), g2)
		})
		if err := s.Prepare(ctx, g1, append(recs(p0, 0, 3), stateRec("g", p0, "a", []byte("1")))); err != nil {
			t.Fatal(err)
		}
		wantState(t, s, "g", p0, map[string]string{}) // prepared is not committed
		if err := s.CommitPrepared(ctx, g1); err != nil {
			t.Fatal(err)
		}
		if err := s.Prepare(ctx, g2, append(recs(p0, 3, 6), stateRec("g", p0, "a", nil), stateRec("g", p0, "b", []byte("2")))); err != nil {
			t.Fatal(err)
		}
		if err := s.RollbackPrepared(ctx, g2); err != nil {
			t.Fatal(err)
		}
		wantState(t, s, "g", p0, map[string]string{"a": "1"})
	})
}

// Without auto_create a missing state table fails the load and the commit
// for good, naming the table and the two ways out; the commit writes
// nothing.
func TestStateTableMissingWithoutAutoCreate(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(testenv.Postgres(t))
	// Create the sink's other tables.
	creator, conn := newTestStore(t, cfg, Options{ExactlyOnce: true})
	if _, err := creator.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	cfg.AutoCreate = false
	s, _ := newTestStore(t, cfg, Options{ExactlyOnce: true})
	_, err := s.LoadState(ctx, "g", p0)
	wantKind(t, err, connector.Fatal, "load without a state table")
	for _, want := range []string{`events_state does not exist`, "auto_create"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	err = s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1},
		append(recs(p0, 0, 5), stateRec("g", p0, "k", []byte("v"))), connector.Checkpoint{}, connector.Checkpoint{p0: 5})
	wantKind(t, err, connector.Fatal, "commit without a state table")
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 0 {
		t.Fatalf("%d rows written by a failed commit", n)
	}
	// Once it is created (as the error says), both work.
	if _, err := conn.Exec(ctx, s.state.create); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "g", map[connector.TopicPartition]int64{p0: 1},
		append(recs(p0, 0, 5), stateRec("g", p0, "k", []byte("v"))), connector.Checkpoint{}, connector.Checkpoint{p0: 5}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "g", p0, map[string]string{"k": "v"})
}

// stateBatch returns n state upserts of partition tp, keys
// "<prefix>-<i>" for i in from..from+n-1, 64-byte values.
func stateBatch(ns string, tp connector.TopicPartition, prefix string, from, n int) []*connector.Record {
	out := make([]*connector.Record, n)
	for i := range out {
		out[i] = stateRec(ns, tp, fmt.Sprintf("%s-%d", prefix, from+i), fmt.Appendf(nil, "%064d", from+i))
	}
	return out
}

// Restoring 1,000,000 entries of one partition (the design's target: in
// 10 s or less, on the 2-core machine), among another partition's. The
// time is logged, not asserted; BenchmarkLoadState measures it. The
// entries are generated by the server (the commit path is tested above).
func TestLoadStateMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 1,000,000 state entries")
	}
	const total = 1_000_000
	ctx := context.Background()
	s, conn := newTestStore(t, testConfig(testenv.Postgres(t)), Options{ExactlyOnce: true})
	if _, err := s.LoadState(ctx, "g", p0); err != nil { // creates the table
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := conn.Exec(ctx, `INSERT INTO events_state (ns, topic, partition, key, value)
		SELECT 'g', 'in', p, 'customer-' || i, convert_to(lpad(i::text, 64, '0'), 'UTF8')
		FROM generate_series(0, $1 - 1) AS i, (VALUES (0), (1)) AS ps(p) WHERE p = 0 OR i % 10 = 0`, total); err != nil {
		t.Fatal(err)
	}
	t.Logf("inserted %d state entries in %v", total+total/10, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	m, err := s.LoadState(ctx, "g", p0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LoadState: %d entries of 64-byte values in %v", len(m), time.Since(start).Round(time.Millisecond))
	if len(m) != total {
		t.Fatalf("loaded %d entries, want %d", len(m), total)
	}
	for _, i := range []int{0, 1, total / 2, total - 1} {
		k := fmt.Sprintf("customer-%d", i)
		if want := fmt.Sprintf("%064d", i); string(m[k]) != want {
			t.Fatalf("%s = %q, want %q", k, m[k], want)
		}
	}
	// Values end at their capacity: appending to one cannot overwrite
	// the next in the slab it was copied into.
	for k, v := range m {
		if cap(v) != len(v) {
			t.Fatalf("%s: a value of length %d has capacity %d", k, len(v), cap(v))
		}
	}
}
