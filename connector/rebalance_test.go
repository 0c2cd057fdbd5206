package connector

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// groupProtocol is a fakeProtocol whose commit takes part in a consumer
// group's rebalance (GroupCommitter), as scripted by rebalance.
type groupProtocol struct {
	*fakeProtocol
	rebalance func() <-chan struct{}
}

func (p *groupProtocol) GroupRebalance() <-chan struct{} { return p.rebalance() }

// TestCommitDuringRebalance: the coordinator keeps a commit out of its
// member's join of the consumer group. Running, it waits for the join to
// complete and commits then (with the new generation); a stop that finds
// the member joining, or comes while the batch waits, aborts the batch
// instead of waiting for the group; a join that does not complete within
// the commit timeout aborts it.
func TestCommitDuringRebalance(t *testing.T) {
	tests := []struct {
		name string
		// stopAt: "write" stops right after the batch's write (the stop
		// finds the join), "wait" once the batch waits for it, "" once
		// everything is committed.
		stopAt string
		// completes: the join completes while the batch waits.
		completes bool
		// commitTimeout, if set, bounds the wait.
		commitTimeout time.Duration
		want          []string
		aborts        uint64
	}{
		{"stop finds the member joining", "write", false, 0,
			[]string{"recover(nil)", "begin", "write", "abort", "close"}, 1},
		{"stop while the batch waits", "wait", false, 0,
			[]string{"recover(nil)", "begin", "write", "abort", "close"}, 1},
		{"running: commit after the join", "", true, 0,
			[]string{"recover(nil)", "begin", "write", "commit", "close"}, 0},
		{"running: the join outlasts the commit timeout", "", false, 50 * time.Millisecond,
			[]string{"recover(nil)", "begin", "write", "abort", "recover(abortable)", "begin", "write", "commit", "close"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(100, map[TopicPartition]int{tp("a", 0): 4, tp("a", 1): 2})
			proto := &groupProtocol{fakeProtocol: newFakeProtocol()}
			opts := testOptions()
			opts.CommitInterval = time.Hour // only the stop or MaxBatch closes the batch
			opts.MaxBatch = 6
			if tt.commitTimeout > 0 {
				opts.CommitTimeout = tt.commitTimeout
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			// The member is joining when the first batch ends; once
			// the join completes, or a first batch is over, it is not.
			var (
				mu    sync.Mutex
				asked int
				done  = make(chan struct{})
			)
			proto.rebalance = func() <-chan struct{} {
				mu.Lock()
				defer mu.Unlock()
				asked++
				if asked > 1 {
					return nil
				}
				// Called right before the wait: what happens next
				// happens while the batch waits.
				switch {
				case tt.completes:
					time.AfterFunc(10*time.Millisecond, func() { close(done) })
				case tt.stopAt == "wait":
					time.AfterFunc(10*time.Millisecond, cancel)
				}
				return done
			}
			switch tt.stopAt {
			case "write":
				proto.onWrite = cancel
			case "":
				stopWhenDurable(proto.fakeProtocol, src.end(), cancel)
			}
			c := New(opts, src, &fakeProcessor{}, proto)
			if err := runAsync(t, c, ctx)(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := compact(proto.callLog()); !slices.Equal(got, tt.want) {
				t.Errorf("calls %v, want %v", got, tt.want)
			}
			if n := c.Stats().Aborts[Abortable].Load(); n != tt.aborts {
				t.Errorf("%d abortable aborts, want %d", n, tt.aborts)
			}
			if tt.stopAt == "" {
				assertExactlyOnce(t, src, proto.fakeProtocol, 1)
			} else if len(proto.outputs) != 0 || len(proto.durable) != 0 {
				t.Errorf("a batch aborted at the stop left outputs %d, checkpoint %v", len(proto.outputs), proto.durable)
			}
			if st := c.Status(); st.State != Stopped || st.Error != "" {
				t.Errorf("state %s error %q, want STOPPED", st.State, st.Error)
			}
		})
	}
}
