package window

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

// memStore is a StateStore whose commits are the flushed state records,
// as a sink applies them in the batch's transaction.
type memStore struct {
	m     map[string]map[string][]byte // ns/topic/partition -> key -> value
	loads int
}

func newMemStore() *memStore { return &memStore{m: map[string]map[string][]byte{}} }

func (s *memStore) apply(recs []*connector.Record) {
	for _, r := range recs {
		if r.Kind != connector.StateRecord {
			continue
		}
		k := fmt.Sprintf("%s/%s/%d", r.Topic, r.Origin.Topic, r.Origin.Partition)
		if s.m[k] == nil {
			s.m[k] = map[string][]byte{}
		}
		if r.Value == nil {
			delete(s.m[k], string(r.Key))
		} else {
			s.m[k][string(r.Key)] = r.Value
		}
	}
}

func (s *memStore) LoadState(_ context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	s.loads++
	out := map[string][]byte{}
	for k, v := range s.m[fmt.Sprintf("%s/%s/%d", ns, tp.Topic, tp.Partition)] {
		out[k] = v
	}
	return out, nil
}

func (s *memStore) Close() {}

func mustSpec(t *testing.T, c Config) *Spec {
	t.Helper()
	s, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tumbling(size time.Duration) Config {
	var c Config
	c.Type = "window"
	c.Window.Type = Tumbling
	c.Window.Size = size
	c.Aggregate = map[string]string{"n": "count()", "total": "sum(value.amount)", "hi": "max(value.amount)", "lo": "min(value.amount)", "mean": "avg(value.amount)"}
	return c
}

// rec is an input record of partition p at offset off: key k, event time
// ts (ms), amount a.
func rec(p int32, off int64, k string, ts int64, a float64) *connector.Record {
	return &connector.Record{Key: []byte(k), Value: []byte(fmt.Sprintf(`{"amount":%v}`, a)),
		Timestamp: time.UnixMilli(ts), Origin: connector.Origin{Topic: "in", Partition: p, Offset: off}}
}

// run feeds recs through op in batches of the given sizes, committing each
// batch into store (or, with abortEvery, discarding every n-th batch and
// feeding it again), and returns the results by event ID plus the late
// records' offsets.
func run(t *testing.T, op *Operator, store *memStore, recs []*connector.Record, batch int, abortEvery int) (map[string]string, []int64) {
	t.Helper()
	results := map[string]string{}
	var late []int64
	n := 0
	for i := 0; i < len(recs); {
		j := min(i+batch, len(recs))
		b := recs[i:j]
		if err := op.Prepare(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		var lateHere []int64
		for _, r := range b {
			l, err := op.Add(r)
			if err != nil {
				t.Fatal(err)
			}
			if l != nil {
				lateHere = append(lateHere, r.Origin.Offset)
			}
		}
		out, err := op.Flush()
		if err != nil {
			t.Fatal(err)
		}
		n++
		if abortEvery > 0 && n%abortEvery == 0 {
			op.Discard() // the batch aborted: re-read it
			continue
		}
		store.apply(out)
		op.Committed()
		late = append(late, lateHere...)
		for _, r := range out {
			if r.Kind == connector.DataRecord {
				if prev, dup := results[r.EventID]; dup {
					t.Fatalf("window %s emitted twice: %s and %s", r.EventID, prev, r.Value)
				}
				results[r.EventID] = string(r.Value)
			}
		}
		i = j
	}
	return results, late
}

func TestTumblingOutOfOrderAndLate(t *testing.T) {
	c := tumbling(time.Minute)
	c.Watermark.MaxOutOfOrderness = 10 * time.Second
	op := New(mustSpec(t, c), "c", "g", nil)
	store := newMemStore()
	m := int64(60_000)
	recs := []*connector.Record{
		rec(0, 0, "a", 5_000, 1),
		rec(0, 1, "a", 50_000, 2),
		rec(0, 2, "a", m+5_000, 4),  // W = 55s: [0,60s) still open
		rec(0, 3, "a", 59_000, 8),   // out of order, in time
		rec(0, 4, "a", m+20_000, 1), // W = 70s: [0,60s) closes
		rec(0, 5, "a", 10_000, 100), // late
		rec(0, 6, "b", 2*m+10_000, 3),
	}
	res, late := run(t, op, store, recs, 1, 0)
	// Record 6 (b at 130s) moves W to 120s, which closes a's [60s,120s).
	want := map[string]string{
		"c/a/0":     `{"key":"a","window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:01:00.000Z","hi":8,"lo":1,"mean":3.6666666666666665,"n":3,"total":11}`,
		"c/a/60000": `{"key":"a","window_start":"1970-01-01T00:01:00.000Z","window_end":"1970-01-01T00:02:00.000Z","hi":4,"lo":1,"mean":2.5,"n":2,"total":5}`,
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("results %v\nwant %v", res, want)
	}
	if fmt.Sprint(late) != "[5]" {
		t.Fatalf("late offsets %v, want [5]", late)
	}
	if got := op.Stats.Aggregated.Load() + op.Stats.Late.Load(); got != uint64(len(recs)) {
		t.Fatalf("conservation: aggregated+late = %d, want %d", got, len(recs))
	}
}

func TestAllowedLatenessKeepsWindowOpen(t *testing.T) {
	c := tumbling(time.Minute)
	c.AllowedLateness = 30 * time.Second
	op := New(mustSpec(t, c), "c", "g", nil)
	recs := []*connector.Record{
		rec(0, 0, "a", 1_000, 1),
		rec(0, 1, "a", 80_000, 1), // W = 80s < 60s+30s: still open
		rec(0, 2, "a", 2_000, 1),  // counted
		rec(0, 3, "a", 90_000, 1), // W = 90s: closes
		rec(0, 4, "a", 3_000, 1),  // late
	}
	res, late := run(t, op, newMemStore(), recs, 2, 0)
	if !strings.Contains(res["c/a/0"], `"n":2`) || fmt.Sprint(late) != "[4]" {
		t.Fatalf("results %v late %v", res, late)
	}
}

func TestHoppingWindows(t *testing.T) {
	c := tumbling(0)
	c.Window.Type = Hopping
	c.Window.Size = 3 * time.Second
	c.Window.Advance = time.Second
	c.Aggregate = map[string]string{"n": "count()"}
	op := New(mustSpec(t, c), "c", "g", nil)
	recs := []*connector.Record{rec(0, 0, "k", 2_500, 0), rec(0, 1, "k", 10_000, 0)}
	res, _ := run(t, op, newMemStore(), recs, 10, 0)
	// 2.5s lies in [0,3), [1,4), [2,5); also [-1,2)? no: 2.5 >= 2.
	var ids []string
	for id := range res {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if fmt.Sprint(ids) != "[c/k/0 c/k/1000 c/k/2000]" {
		t.Fatalf("windows %v", ids)
	}
}

func TestSessionWindowsMerge(t *testing.T) {
	c := tumbling(0)
	c.Window.Type = Session
	c.Window.Size = 0
	c.Window.Gap = 10 * time.Second
	c.Watermark.MaxOutOfOrderness = 30 * time.Second
	c.Aggregate = map[string]string{"n": "count()", "total": "sum(value.amount)"}
	op := New(mustSpec(t, c), "c", "g", nil)
	recs := []*connector.Record{
		rec(0, 0, "u", 0, 1),       // session [0,10s)
		rec(0, 1, "u", 25_000, 2),  // session [25s,35s)
		rec(0, 2, "u", 12_000, 4),  // [12s,22s): bridges nothing yet (22 < 25)
		rec(0, 3, "u", 8_000, 8),   // merges [0,10) and [12,22) -> [0,22)
		rec(0, 4, "u", 18_000, 16), // merges [0,22) with [25,35) -> [0,35)
		rec(0, 5, "u", 100_000, 0), // W = 70s closes [0,35)
	}
	res, _ := run(t, op, newMemStore(), recs, 1, 0)
	got := res["c/u/0/35000"]
	if !strings.Contains(got, `"n":5`) || !strings.Contains(got, `"total":31`) || !strings.Contains(got, `"window_end":"1970-01-01T00:00:35.000Z"`) {
		t.Fatalf("results %v", res)
	}
	if len(res) != 1 {
		t.Fatalf("want one closed session, got %v", res)
	}
}

// TestResultsIndependentOfBatchingAndAborts: the results are a function
// of each partition's log. The same input through batches of 1, 7 and 500
// records, with every third batch aborted (state discarded, reloaded from
// the store, the batch re-read), gives byte-identical results and the same
// late records, for every window type.
func TestResultsIndependentOfBatchingAndAborts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var recs []*connector.Record
	next := map[int32]int64{}
	clock := map[int32]int64{}
	for i := 0; i < 3000; i++ {
		p := int32(r.IntN(3))
		clock[p] += int64(r.IntN(400))
		ts := clock[p] - int64(r.IntN(9000)) // out of order, sometimes late
		recs = append(recs, rec(p, next[p], fmt.Sprintf("p%d-k%d", p, r.IntN(20)), ts, float64(r.IntN(10000))/100))
		next[p] += 1 + int64(r.IntN(2)) // offsets with gaps, as after transaction markers
	}
	for _, kind := range []string{Tumbling, Hopping, Session, "hopping-late-update"} {
		t.Run(kind, func(t *testing.T) {
			c := tumbling(0)
			c.Watermark.MaxOutOfOrderness = time.Second
			switch kind {
			case "hopping-late-update": // compared by each window's latest revision
				c.Window.Type, c.Window.Size, c.Window.Advance = Hopping, 6*time.Second, 2*time.Second
				c.Late, c.LateRetention = LateUpdate, 3*time.Second
			case Tumbling:
				c.Window.Type, c.Window.Size = Tumbling, 5*time.Second
			case Hopping:
				c.Window.Type, c.Window.Size, c.Window.Advance = Hopping, 6*time.Second, 2*time.Second
			case Session:
				c.Window.Type, c.Window.Gap = Session, 700*time.Millisecond
			}
			spec := mustSpec(t, c)
			base, baseLate := run(t, New(spec, "c", "g", nil), newMemStore(), recs, 1, 0)
			if len(base) < 10 || len(baseLate) == 0 {
				t.Fatalf("the input closes %d windows and has %d late records; want both", len(base), len(baseLate))
			}
			for _, b := range []int{7, 500} {
				store := newMemStore()
				got, gotLate := run(t, New(spec, "c", "g", store), store, recs, b, 3)
				if spec.Late == LateUpdate {
					got, base := latest(got), latest(base)
					if fmt.Sprint(got) != fmt.Sprint(base) || fmt.Sprint(gotLate) != fmt.Sprint(baseLate) {
						t.Fatalf("batches of %d with aborts: %d windows, %d late; want %d, %d (same latest revisions)", b, len(got), len(gotLate), len(base), len(baseLate))
					}
					continue
				}
				if fmt.Sprint(got) != fmt.Sprint(base) || fmt.Sprint(gotLate) != fmt.Sprint(baseLate) {
					t.Fatalf("batches of %d with aborts: %d results, %d late; want %d, %d (same bytes)", b, len(got), len(gotLate), len(base), len(baseLate))
				}
				if store.loads == 0 {
					t.Fatal("no state was reloaded after the aborts")
				}
			}
		})
	}
}

func TestEmitUpdatesRevisions(t *testing.T) {
	c := tumbling(time.Minute)
	c.Emit = EmitUpdates
	c.Aggregate = map[string]string{"n": "count()"}
	op := New(mustSpec(t, c), "c", "g", nil)
	recs := []*connector.Record{rec(0, 0, "a", 1, 0), rec(0, 1, "a", 2, 0), rec(0, 2, "a", 3, 0)}
	res, _ := run(t, op, newMemStore(), recs, 1, 0)
	if !strings.Contains(res["c/a/0/r1"], `"n":1`) || !strings.Contains(res["c/a/0/r3"], `"n":3`) || len(res) != 3 {
		t.Fatalf("revisions %v", res)
	}
}

func TestStateCapFailsCleanly(t *testing.T) {
	c := tumbling(0)
	c.Window.Type, c.Window.Gap = Session, time.Second
	c.MaxOpenWindows = 100
	c.Watermark.MaxOutOfOrderness = time.Hour
	c.Aggregate = map[string]string{"n": "count()"}
	op := New(mustSpec(t, c), "c", "g", nil)
	var err error
	for i := 0; i < 200 && err == nil; i++ { // a session storm: one key, sessions far apart, all open
		_, err = op.Add(rec(0, int64(i), "storm", int64(i)*10_000, 0))
	}
	if err == nil || !strings.Contains(err.Error(), "max_open_windows") {
		t.Fatalf("err %v, want the state cap", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		edit  func(*Config)
		field string
	}{
		{func(c *Config) { c.Window.Type = "sliding" }, "window.type"},
		{func(c *Config) { c.Window.Size = 0 }, "window.size"},
		{func(c *Config) { c.Aggregate = map[string]string{"x": "median(value.a)"} }, "aggregate.x"},
		{func(c *Config) { c.Aggregate = map[string]string{"x": "sum(value.)"} }, "aggregate.x"},
		{func(c *Config) { c.Emit = "sometimes" }, "emit"},
		{func(c *Config) { c.Late = "sometimes" }, "late"},
		{func(c *Config) { c.Key = "value.customer" }, "key"},
		{func(c *Config) { c.Key, c.KeyPartitioned, c.Repartition = "value.customer", true, true }, "repartition"},
		{func(c *Config) { c.Repartition = true }, "repartition"},
		{func(c *Config) { c.LateRetention = time.Minute }, "late_retention"},
		{func(c *Config) {
			c.Window.Type, c.Window.Size, c.Window.Gap, c.Late = Session, 0, time.Second, LateUpdate
		}, "late"},
		{func(c *Config) {
			c.Window.Type, c.Window.Size, c.Window.Gap, c.Emit = Session, 0, time.Second, EmitUpdates
		}, "emit"},
		{func(c *Config) { c.Window.Type, c.Window.Advance = Hopping, 7*time.Second }, "window.advance"},
		{func(c *Config) { c.Watermark.IdleTimeout = -time.Second }, "watermark.idle_timeout"},
	} {
		c := tumbling(time.Minute)
		tc.edit(&c)
		_, err := Compile(c)
		if err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
	}
}

// TestSessionSharingAClosedSessionsStart: a record merging into an open
// session can extend it back to the start of a session of the same key that
// has closed (found by verify's oracle). Both results must be emitted, each
// once, under distinct event IDs, whether the closed one was flushed before
// (batches of 1) or is still waiting for the flush (one batch).
func TestSessionSharingAClosedSessionsStart(t *testing.T) {
	c := tumbling(0)
	c.Window.Type, c.Window.Size, c.Window.Gap = Session, 0, 10*time.Second
	c.Watermark.MaxOutOfOrderness = 2 * time.Second
	c.AllowedLateness = time.Second
	c.Aggregate = map[string]string{"n": "count()"}
	spec := mustSpec(t, c)
	recs := []*connector.Record{
		rec(0, 0, "a", 0, 0),
		rec(0, 1, "b", 13_000, 0), // W = 11s: a's [0,10s) closes
		rec(0, 2, "a", 5_000, 0),  // a new session [5s,15s)
		rec(0, 3, "a", 0, 0),      // merges into it: [0,15s), the closed one's start
		rec(0, 4, "b", 60_000, 0), // closes everything
	}
	var results []map[string]string
	for _, b := range []int{1, 5, 2} {
		store := newMemStore()
		res, _ := run(t, New(spec, "c", "g", store), store, recs, b, 0)
		results = append(results, res)
	}
	if !strings.Contains(results[0]["c/a/0/10000"], `"n":1`) || !strings.Contains(results[0]["c/a/0/15000"], `"n":2`) {
		t.Fatalf("batches of 1: %v; want a's [0,10s) with n=1 and [0,15s) with n=2", results[0])
	}
	for i, b := range []int{5, 2} {
		if fmt.Sprint(results[i+1]) != fmt.Sprint(results[0]) {
			t.Fatalf("batches of %d: %v\nwant %v", b, results[i+1], results[0])
		}
	}
}

// TestLateUpdateRevisesEmittedWindows: with late: update a window is
// emitted when it closes and kept for late_retention; a late record within
// it updates the window and the batch emits a revision (<id>/r2, ...); a
// record later than that is late. The latest revision of every window is
// the same whatever the batching.
func TestLateUpdateRevisesEmittedWindows(t *testing.T) {
	c := tumbling(time.Minute)
	c.Late = LateUpdate
	c.Aggregate = map[string]string{"n": "count()"}
	spec := mustSpec(t, c)
	recs := []*connector.Record{
		rec(0, 0, "a", 5_000, 0),
		rec(0, 1, "a", 65_000, 0),  // W = 65s: [0,60s) closes, emitted with n=1
		rec(0, 2, "a", 10_000, 0),  // late, within retention: revision r2, n=2
		rec(0, 3, "a", 130_000, 0), // W = 130s: [60s,120s) closes; [0,60s) expires (120s)
		rec(0, 4, "a", 20_000, 0),  // too late: dropped
	}
	store := newMemStore()
	res, late := run(t, New(spec, "c", "g", store), store, recs, 1, 0)
	if !strings.Contains(res["c/a/0"], `"n":1`) || !strings.Contains(res["c/a/0/r2"], `"n":2`) || !strings.Contains(res["c/a/60000"], `"n":1`) {
		t.Fatalf("results %v", res)
	}
	if fmt.Sprint(late) != "[4]" {
		t.Fatalf("late offsets %v, want [4]", late)
	}
	// Batched differently (with aborts), the latest revision of every
	// window holds the same value.
	want := latest(res)
	for _, b := range []int{2, 5} {
		store := newMemStore()
		got, gotLate := run(t, New(spec, "c", "g", store), store, recs, b, 2)
		if fmt.Sprint(latest(got)) != fmt.Sprint(want) || fmt.Sprint(gotLate) != fmt.Sprint(late) {
			t.Fatalf("batches of %d: latest %v late %v; want %v, %v", b, latest(got), gotLate, want, late)
		}
	}
}

// latest keeps the latest revision of every window (late: update).
func latest(res map[string]string) map[string]string {
	out := map[string]string{}
	best := map[string]int{}
	for id, v := range res {
		base, rev := id, 1
		if i := strings.LastIndex(id, "/r"); i > 0 {
			fmt.Sscanf(id[i+2:], "%d", &rev)
			base = id[:i]
		}
		if rev >= best[base] {
			best[base], out[base] = rev, v
		}
	}
	return out
}

// TestRestoredStateMustBelongToTheCheckpoint: exactly once, state names
// the offset it belongs to. Restored state of a later offset than the
// input resumes at fails the connector; state that disagrees with a
// checkpoint kept elsewhere (a stale read) is refused, abortably, so the
// batch is re-read; at-least-once does not check.
func TestRestoredStateMustBelongToTheCheckpoint(t *testing.T) {
	spec := mustSpec(t, tumbling(time.Minute))
	store := newMemStore()
	first := New(spec, "c", "g", store)
	batch := []*connector.Record{rec(0, 10, "a", 1_000, 1), rec(0, 11, "a", 2_000, 1)}
	if err := first.Prepare(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for _, r := range batch {
		if _, err := first.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := first.Flush()
	store.apply(out) // the state now belongs to offset 12

	load := func(op *Operator, at int64) error {
		return op.Prepare(context.Background(), []*connector.Record{rec(0, at, "a", 3_000, 1)})
	}
	eo := New(spec, "c", "g", store)
	eo.SetExactlyOnce(nil)
	if err := load(eo, 12); err != nil {
		t.Fatalf("state of the checkpoint refused: %v", err)
	}
	eo = New(spec, "c", "g", store)
	eo.SetExactlyOnce(nil)
	if err := load(eo, 11); connector.KindOf(err) != connector.Fatal || !strings.Contains(err.Error(), "belongs to offset 12") {
		t.Fatalf("input resuming before the state's offset: %v, want fatal", err)
	}
	stale := New(spec, "c", "g", store)
	stale.SetExactlyOnce(func(context.Context, connector.TopicPartition) (int64, bool, error) { return 20, true, nil })
	if err := load(stale, 20); connector.KindOf(err) != connector.Abortable || !strings.Contains(err.Error(), "stale read") {
		t.Fatalf("state older than the committed checkpoint: %v, want abortable", err)
	}
	alo := New(spec, "c", "g", store)
	if err := load(alo, 5); err != nil {
		t.Fatalf("at-least-once: %v", err)
	}
}

// idleTimeout: a partition silent for idle_timeout (wall clock) has its
// watermark raised to the lowest of the active partitions, which closes
// and emits its windows; the advance is logged for verify, survives a
// restore, and a record that comes to the advanced partition afterwards
// for a closed window is late with Late.Idle (counted apart).
func TestIdleTimeoutClosesIdlePartitionsWindows(t *testing.T) {
	c := tumbling(time.Second)
	c.Watermark.IdleTimeout = 30 * time.Second
	c.Late = LateDeadLetter
	c.Emit = EmitFinal
	spec := mustSpec(t, c)
	store := newMemStore()
	t0 := time.UnixMilli(1_000_000)
	clock := t0
	op := New(spec, "c", "g", store)
	op.SetExactlyOnce(nil)
	op.now = func() time.Time { return clock }
	p0 := connector.TopicPartition{Topic: "in", Partition: 0}
	p1 := connector.TopicPartition{Topic: "in", Partition: 1}

	batch := func(assigned map[connector.TopicPartition]int64, recs ...*connector.Record) ([]string, []*Late, connector.Checkpoint) {
		t.Helper()
		return commitAdvancing(t, op, store, clock, assigned, recs)
	}

	batch(nil, rec(0, 0, "a", 500, 1), rec(1, 0, "b", 600, 2))
	clock = t0.Add(10 * time.Second)
	res, _, cp := batch(nil, rec(0, 1, "a", 1500, 1))
	if fmt.Sprint(res) != "[c/a/0]" || cp != nil {
		t.Fatalf("p1 active for 10s of 30: results %v, idle checkpoint %v; want only p0's own window", res, cp)
	}
	// The batch before was aborted: the state is reloaded, p1's (which
	// has no record in this batch) because it is assigned, and its idle
	// time still counts from its last record, not from the reload.
	op.Discard()
	clock = t0.Add(40 * time.Second)
	res, _, cp = batch(map[connector.TopicPartition]int64{p0: 2, p1: 1}, rec(0, 2, "a", 2500, 1))
	if fmt.Sprint(res) != "[c/a/1000 c/b/0]" {
		t.Fatalf("after 40s of silence p1's window [0,1s) must close at p0's watermark: results %v", res)
	}
	if len(cp) != 1 || cp[p1] != 1 {
		t.Fatalf("idle checkpoint %v, want p1 at its unchanged offset 1", cp)
	}
	if got := op.Watermark(p1); got != 2500 {
		t.Fatalf("p1's watermark %d, want 2500 (p0's)", got)
	}
	log, _, err := ParseIdleLog(store.m["g/in/1"])
	if err != nil || len(log) != 1 || log[1] != 2500 {
		t.Fatalf("idle log %v (%v), want offset 1 → 2500", log, err)
	}

	// A record for the closed window comes to p1 afterwards: late, idle,
	// also after a restore (the meta entry keeps the raised watermark).
	op.Discard()
	clock = t0.Add(41 * time.Second)
	_, late, _ := batch(nil, rec(1, 1, "b", 700, 5), rec(1, 2, "b", 2600, 5))
	if len(late) != 1 || !late[0].Idle || late[0].Watermark != 2500 {
		t.Fatalf("late %+v, want one idle-late record at watermark 2500", late)
	}
	if op.Stats.IdleLate.Load() != 1 || op.Stats.IdleAdvances.Load() != 1 {
		t.Fatalf("idle late %d, advances %d; want 1 and 1", op.Stats.IdleLate.Load(), op.Stats.IdleAdvances.Load())
	}

	// Every partition silent: nothing advances (no active watermark).
	clock = t0.Add(200 * time.Second)
	if cp, err := op.AdvanceIdle(context.Background(), clock, nil); err != nil || cp != nil {
		t.Fatalf("all idle: advanced %v (%v), want nothing", cp, err)
	}

	// A new incarnation loads the assigned partitions it has no record
	// of, so that an idle one's windows close without new input on it;
	// partitions it does not hold are left alone.
	op = New(spec, "c", "g", store)
	op.SetExactlyOnce(nil)
	op.now = func() time.Time { return clock }
	assigned := map[connector.TopicPartition]int64{p0: 3, p1: 3}
	batch(assigned, rec(0, 3, "a", 9000, 1))
	clock = clock.Add(31 * time.Second)
	res, _, cp = batch(assigned, rec(0, 4, "a", 9500, 1))
	if fmt.Sprint(res) != "[c/b/2000]" || cp[p1] != 3 {
		t.Fatalf("loaded idle p1: results %v, checkpoint %v; want [2s,3s) of b closed at p1's offset 3", res, cp)
	}
	res, _, cp = batch(map[connector.TopicPartition]int64{p0: 5}, rec(0, 5, "a", 20000, 1))
	if cp != nil || fmt.Sprint(res) != "[c/a/9000]" {
		t.Fatalf("p1 no longer assigned: results %v, checkpoint %v; want p0's window only", res, cp)
	}
}

// A bounded run's end (SetStops): once a partition's records up to its
// stop are in, every window it holds open closes in that batch, the
// advance is logged as an end of input, and the watermark goes no further
// than that: a later run's records for new windows are aggregated, those
// for the windows closed are late.
func TestEndOfBoundedInputClosesEveryWindow(t *testing.T) {
	c := tumbling(time.Second)
	c.Late, c.Emit = LateDrop, EmitFinal
	c.Watermark.MaxOutOfOrderness = 10 * time.Second // nothing closes by event time
	store := newMemStore()
	op := New(mustSpec(t, c), "c", "g", store)
	p0 := connector.TopicPartition{Topic: "in", Partition: 0}
	op.SetStops(connector.Checkpoint{p0: 3})
	batch := func(recs ...*connector.Record) ([]string, int, connector.Checkpoint) {
		t.Helper()
		res, late, cp := commitAdvancing(t, op, store, time.Now(), nil, recs)
		return res, len(late), cp
	}
	res, _, cp := batch(rec(0, 0, "a", 500, 1), rec(0, 1, "b", 1500, 1))
	if res != nil || cp != nil {
		t.Fatalf("before the stop: results %v, checkpoint %v; want none", res, cp)
	}
	res, _, cp = batch(rec(0, 2, "a", 2200, 1))
	if fmt.Sprint(res) != "[c/a/0 c/b/1000 c/a/2000]" || cp[p0] != 3 {
		t.Fatalf("at the stop: results %v, checkpoint %v; want every window, p0 at 3", res, cp)
	}
	idle, end, err := ParseIdleLog(store.m["g/in/0"])
	if err != nil || len(idle) != 0 || end[3] != 3000 {
		t.Fatalf("log: idle %v, end %v (%v); want the end at offset 3, watermark 3000", idle, end, err)
	}
	// The next run, stopping further on.
	op.Discard()
	op.SetStops(connector.Checkpoint{p0: 5})
	res, late, _ := batch(rec(0, 3, "a", 2900, 1), rec(0, 4, "a", 3100, 1))
	if late != 1 || res == nil || res[0] != "c/a/3000" {
		t.Fatalf("next run: results %v, late %d; want [2s,3s) late and [3s,4s) emitted at its end", res, late)
	}
}

// commitAdvancing runs one committed batch of recs at time now: Prepare,
// Add, AdvanceIdle (with assigned), Flush into store. It returns the
// results' event IDs, the late records and AdvanceIdle's checkpoint.
func commitAdvancing(t *testing.T, op *Operator, store *memStore, now time.Time, assigned map[connector.TopicPartition]int64, recs []*connector.Record) (results []string, late []*Late, cp connector.Checkpoint) {
	t.Helper()
	if err := op.Prepare(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		l, err := op.Add(r)
		if err != nil {
			t.Fatal(err)
		}
		if l != nil {
			late = append(late, l)
		}
	}
	cp, err := op.AdvanceIdle(context.Background(), now, assigned)
	if err != nil {
		t.Fatal(err)
	}
	out, err := op.Flush()
	if err != nil {
		t.Fatal(err)
	}
	store.apply(out)
	for _, r := range out {
		if r.Kind == connector.DataRecord {
			results = append(results, r.EventID)
		}
	}
	return results, late, cp
}
