package window

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

// TestRestoreMillionWindows measures what the operator adds to a store's
// load when a partition's state holds 1,000,000 open windows: decoding
// every entry and indexing it for closing. (The stores' own reads are
// measured in their packages: 1.3-2.2 s for 1,000,000 entries.) The
// figure is logged, not asserted; the test checks the restored state.
func TestRestoreMillionWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 windows: run without -short")
	}
	c := tumbling(time.Minute)
	spec := mustSpec(t, c)
	const n = 1_000_000
	entries := make(map[string][]byte, n+1)
	for i := 0; i < n; i++ {
		a := &acc{end: 60_000, count: int64(i%7 + 1), vals: make([]float64, len(spec.Aggs)), lastOffset: int64(i)}
		entries[stateKey('w', winID{key: fmt.Sprintf("customer-%07d", i), start: 0})] = encodeAcc(a)
	}
	entries[metaKey] = encodeMeta(&part{wm: 30_000, maxTs: 30_000})
	store := &mapStore{entries: entries}
	op := New(spec, "c", "g", store)
	tp := connector.TopicPartition{Topic: "in", Partition: 0}
	start := time.Now()
	if err := op.Prepare(context.Background(), []*connector.Record{rec(0, 0, "x", 0, 0)}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if got := op.Stats.OpenWindows.Load(); got != n {
		t.Fatalf("restored %d open windows, want %d", got, n)
	}
	if got, loads := op.Stats.RestoredWindows.Load(), op.Stats.Restores.Load(); got != n || loads != 1 {
		t.Fatalf("stats: %d restores bringing back %d windows, want 1 and %d", loads, got, n)
	}
	if op.Watermark(tp) != 30_000 {
		t.Fatalf("watermark %d, want 30000", op.Watermark(tp))
	}
	t.Logf("restored %d open windows (%d MiB estimated) in %v", n, op.Stats.StateBytes.Load()>>20, took)
}

// mapStore returns the same entries for every partition.
type mapStore struct{ entries map[string][]byte }

func (m *mapStore) LoadState(context.Context, string, connector.TopicPartition) (map[string][]byte, error) {
	return m.entries, nil
}

func (m *mapStore) Close() {}
