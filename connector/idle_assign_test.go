package connector

import (
	"context"
	"maps"
	"testing"
	"time"
)

// stalerSource is a group source whose status answer (Assigned) still
// lists a partition the last rebalance gave away, while its answer about
// the current generation (AssignedNow) is not in yet for the first batch.
type stalerSource struct {
	*fakeSource
	polls int
}

func (s *stalerSource) Poll(ctx context.Context, max int) ([]*Record, error) {
	s.polls++
	return s.fakeSource.Poll(ctx, max)
}

func (s *stalerSource) Assigned() map[TopicPartition]int64 {
	return map[TopicPartition]int64{tp("a", 0): 0, tp("a", 1): 0}
}

func (s *stalerSource) AssignedNow() map[TopicPartition]int64 {
	if s.polls <= 1 {
		return nil // the coordinator has not answered about this generation
	}
	return map[TopicPartition]int64{tp("a", 0): 0}
}

// heldProcessor records what each AdvanceIdle was told the task holds.
type heldProcessor struct {
	idleProcessor
	told []map[TopicPartition]int64
}

func (p *heldProcessor) AdvanceIdle(_ context.Context, _ time.Time, assigned func() map[TopicPartition]int64) (Checkpoint, error) {
	p.told = append(p.told, maps.Clone(assigned()))
	return nil, nil
}

// The idle stage is told only what the source holds in its current group
// generation (CurrentAssigner), never the status answer that can still
// list a partition given away: nothing while that is not known, then the
// current answer.
func TestIdleAdvanceIsToldTheCurrentGeneration(t *testing.T) {
	src := &stalerSource{fakeSource: newFakeSource(3, map[TopicPartition]int{tp("a", 0): 6})}
	proto := newFakeProtocol()
	proc := &heldProcessor{}
	opts := testOptions()
	opts.MaxBatch = 3
	c := New(opts, src, proc, proto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, src.end(), cancel)
	if err := runAsync(t, c, ctx)(); err != nil {
		t.Fatal(err)
	}
	want := []map[TopicPartition]int64{{}, {tp("a", 0): 0}}
	if len(proc.told) != len(want) {
		t.Fatalf("AdvanceIdle was told %v, want %v", proc.told, want)
	}
	for i := range want {
		if !maps.Equal(proc.told[i], want[i]) {
			t.Errorf("batch %d: AdvanceIdle was told %v, want %v", i, proc.told[i], want[i])
		}
	}
}
