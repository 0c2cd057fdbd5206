package window

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

// pendingStore is a Kafka state topic with one transaction still open: it
// shows the state before that transaction until the transaction ends
// (ended), then the state after it. A read_committed read of the state
// topic sees the "before" state if it lists the partition's end before
// the open transaction's state records are written.
type pendingStore struct {
	before, after map[string]map[string][]byte
	ended         bool
}

func (s *pendingStore) LoadState(_ context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	m := s.before
	if s.ended {
		m = s.after
	}
	return maps.Clone(m[fmt.Sprintf("%s/%s/%d", ns, tp.Topic, tp.Partition)]), nil
}

func (s *pendingStore) Close() {}

func cloneState(m map[string]map[string][]byte) map[string]map[string][]byte {
	out := map[string]map[string][]byte{}
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}

// TestIdleHeirSeesTheIdleAdvance: an idle advance changes a partition's
// state (its raised watermark, its closed windows) without moving its
// offset. When the partition moves to a new owner while the transaction
// that committed the advance is still open, the heir must not count from
// the state before it: its windows would close a second time, with other
// records (a duplicate result the exactly-once checker found once in CI,
// test/kfake TestWindowedIdleTimeoutUnderFaults). The cross-check against
// the committed checkpoint cannot tell the two states apart (same
// offset), so the checkpoint is read first: a read that requires stable
// offsets (KIP-447) waits for the open transaction, which carries the
// partition's offset, to end, and the state read after it sees the
// advance. committed below models that wait: it ends the transaction.
func TestIdleHeirSeesTheIdleAdvance(t *testing.T) {
	c := tumbling(time.Second)
	c.Watermark.IdleTimeout = 30 * time.Second
	c.Late = LateDeadLetter
	c.Emit = EmitFinal
	spec := mustSpec(t, c)
	store := newMemStore()
	t0 := time.UnixMilli(1_000_000)
	owner := New(spec, "c", "g", store)
	owner.SetExactlyOnce(nil)
	owner.now = func() time.Time { return t0 }
	p0 := connector.TopicPartition{Topic: "in", Partition: 0}
	p1 := connector.TopicPartition{Topic: "in", Partition: 1}

	commitAdvancing(t, owner, store, t0, nil, []*connector.Record{rec(0, 0, "a", 500, 1), rec(1, 0, "b", 600, 2)})
	before := cloneState(store.m)
	// 40 s later p1 is idle: the owner's next batch raises its watermark
	// to p0's (2500) and closes its window; p1's offset stays 1.
	later := t0.Add(40 * time.Second)
	owner.now = func() time.Time { return later }
	_, _, cp := commitAdvancing(t, owner, store, later, map[connector.TopicPartition]int64{p0: 1, p1: 1}, []*connector.Record{rec(0, 1, "a", 2500, 1)})
	if cp[p1] != 1 || owner.Watermark(p1) != 2500 {
		t.Fatalf("the owner's idle advance: checkpoint %v, p1's watermark %d; want p1 at 1, watermark 2500", cp, owner.Watermark(p1))
	}

	// The heir is assigned p1 while that transaction is still open.
	pending := &pendingStore{before: before, after: cloneState(store.m)}
	heir := New(spec, "c", "g", pending)
	heir.SetExactlyOnce(func(context.Context, connector.TopicPartition) (int64, bool, error) {
		pending.ended = true // a stable read waits for the open transaction
		return 1, true, nil
	})
	heir.now = func() time.Time { return later }
	if _, err := heir.AdvanceIdle(context.Background(), later, map[connector.TopicPartition]int64{p1: 1}); err != nil {
		t.Fatal(err)
	}
	if got := heir.Watermark(p1); got != 2500 {
		t.Fatalf("the heir restored p1 with watermark %d, want 2500: it counts from the state before the idle advance, and will close p1's window again", got)
	}
}
