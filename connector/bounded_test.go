package connector

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestBatchEndsAtTheStops: in a bounded run a batch that has read every
// partition up to its stop commits at once instead of waiting for its
// deadline (an hour here); an empty partition's stop (b/0 at 0) is
// reached without reading. When the source first finds nothing more to
// read, that batch is committed already; with a stop on a partition this
// connector cannot read (another task's), the batch is still open then,
// as without stops, and commits at the stop.
func TestBatchEndsAtTheStops(t *testing.T) {
	for _, tc := range []struct {
		name            string
		stops           Checkpoint
		committedAtIdle int
	}{
		{"all read", Checkpoint{tp("a", 0): 10, tp("b", 0): 0}, 1},
		{"a partition not read here", Checkpoint{tp("a", 0): 10, tp("c", 0): 5}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeSource(3, map[TopicPartition]int{tp("a", 0): 10})
			proto := newFakeProtocol()
			opts := testOptions()
			opts.CommitInterval = time.Hour
			opts.Stops = tc.stops
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			atIdle := -1
			src.onIdle = func() {
				once.Do(func() {
					proto.mu.Lock()
					atIdle = proto.commits
					proto.mu.Unlock()
					cancel() // a clean stop commits what is open
				})
			}
			c := New(opts, src, &fakeProcessor{}, proto)
			if err := runAsync(t, c, ctx)(); err != nil {
				t.Fatal(err)
			}
			if atIdle != tc.committedAtIdle {
				t.Fatalf("%d batches committed when the input ran out, want %d", atIdle, tc.committedAtIdle)
			}
			assertExactlyOnce(t, src, proto, 1)
			proto.mu.Lock()
			defer proto.mu.Unlock()
			if len(proto.batches) != 1 || len(proto.batches[0]) != 10 {
				t.Fatalf("%d batches, want one of all 10 records", len(proto.batches))
			}
		})
	}
}
