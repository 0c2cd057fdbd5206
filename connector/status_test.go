package connector

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHeldCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed Checkpoint
		held      map[TopicPartition]int64
		want      Checkpoint
	}{
		{"holds nothing", Checkpoint{tp("a", 0): 5}, nil, Checkpoint{}},
		{"revoked partitions are left out", Checkpoint{tp("a", 0): 5, tp("b", 0): 3}, map[TopicPartition]int64{tp("a", 0): -1},
			Checkpoint{tp("a", 0): 5}},
		{"own commits ahead of the group's offset when assigned", Checkpoint{tp("a", 0): 9}, map[TopicPartition]int64{tp("a", 0): 4},
			Checkpoint{tp("a", 0): 9}},
		{"taken back after another owner moved it on", Checkpoint{tp("a", 1): 7}, map[TopicPartition]int64{tp("a", 1): 10},
			Checkpoint{tp("a", 1): 10}},
		{"never committed by anyone", nil, map[TopicPartition]int64{tp("c", 0): -1}, Checkpoint{tp("c", 0): 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := heldCheckpoint(tc.committed, tc.held); !maps.Equal(got, tc.want) {
				t.Errorf("heldCheckpoint(%v, %v) = %v, want %v", tc.committed, tc.held, got, tc.want)
			}
		})
	}
}

// assigningSource is a lagging source whose group assignment the test sets.
type assigningSource struct {
	laggingSource
	mu   sync.Mutex
	held map[TopicPartition]int64
}

func (s *assigningSource) Assigned() map[TopicPartition]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.held)
}

func (s *assigningSource) assign(held map[TopicPartition]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = held
}

// With an Assigner source, status lists what the task holds now: a
// partition it committed and then lost disappears, one it was given
// appears at the group's offset, and its high watermark gives the lag.
func TestStatusListsHeldPartitionsOnly(t *testing.T) {
	base := newFakeSource(100, map[TopicPartition]int{tp("a", 0): 4, tp("a", 1): 2})
	base.hwms = map[TopicPartition]int64{tp("a", 0): 4, tp("a", 1): 2, tp("b", 0): 20}
	src := &assigningSource{laggingSource: laggingSource{base}}
	src.assign(map[TopicPartition]int64{tp("a", 0): -1, tp("a", 1): -1})
	proto := newFakeProtocol()
	opts := testOptions()
	opts.CommitInterval = time.Hour
	opts.MaxBatch = 6 // the whole input: one batch
	c := New(opts, src, &fakeProcessor{}, proto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, base.end(), cancel)
	if err := runAsync(t, c, ctx)(); err != nil {
		t.Fatal(err)
	}
	want := []PartitionStatus{
		{Topic: "a", Partition: 0, Checkpoint: 4, HighWatermark: 4},
		{Topic: "a", Partition: 1, Checkpoint: 2, HighWatermark: 2},
	}
	if got := c.Status().Partitions; !slices.Equal(got, want) {
		t.Errorf("holding both: partitions %+v, want %+v", got, want)
	}

	// A rebalance takes a/0 away and gives b/0, committed up to 12 by
	// its previous owner.
	src.assign(map[TopicPartition]int64{tp("a", 1): -1, tp("b", 0): 12})
	want = []PartitionStatus{
		{Topic: "a", Partition: 1, Checkpoint: 2, HighWatermark: 2},
		{Topic: "b", Partition: 0, Checkpoint: 12, HighWatermark: 20, Lag: 8},
	}
	if got := c.Status().Partitions; !slices.Equal(got, want) {
		t.Errorf("after the rebalance: partitions %+v, want %+v", got, want)
	}
	src.assign(nil)
	if got := c.Status().Partitions; len(got) != 0 {
		t.Errorf("holding nothing: partitions %+v", got)
	}
}
