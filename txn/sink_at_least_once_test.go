package txn

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// memoryWriter is a SinkWriter that keeps every batch it was given.
type memoryWriter struct {
	mu      sync.Mutex
	batches [][]*connector.Record
}

func (w *memoryWriter) WriteBatch(_ context.Context, recs []*connector.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.batches = append(w.batches, append([]*connector.Record(nil), recs...))
	return nil
}

func (w *memoryWriter) Close() {}

func (w *memoryWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.batches)
}

// TestSinkAtLeastOnceOffsets drives SinkAtLeastOnce on kfake: a batch is
// written, then its offsets are committed before Commit returns; an offset
// commit the coordinator refuses fails that Commit as abortable after the
// write (the at-least-once window: the batch is written again), the
// offsets stay where they were, and Recover rewinds the consumer to them,
// so nothing is lost; Close leaves the last batch's offsets in the group.
func TestSinkAtLeastOnceOffsets(t *testing.T) {
	const topic, group = "in", "g"
	c, seeds, prod := kfakeInput(t, topic, 40)
	adm := kadm.NewClient(prod)
	committed := func() map[int32]int64 {
		t.Helper()
		offs, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
		return out
	}

	// refuse makes the coordinator answer the next offset commit with
	// ILLEGAL_GENERATION on every partition, as after a rebalance that
	// moved them.
	var refuse atomic.Bool
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.CompareAndSwap(true, false) {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.IllegalGeneration.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	w := &memoryWriter{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSinkAtLeastOnce([]kgo.Opt{seeds, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit()}, w, log)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cp := connector.Checkpoint{}
	batch := func(n int) []*connector.Record { return pollBatch(ctx, t, s.Client, n, cp) }
	commit := func(recs []*connector.Record) error { return commitBatch(ctx, t, s, recs, cp) }

	// A commit that succeeds: the offsets are in the group on return.
	if err := commit(batch(10)); err != nil {
		t.Fatal(err)
	}
	first := map[int32]int64{}
	for tp, next := range cp {
		first[tp.Partition] = next
	}
	if got := committed(); !maps.Equal(got, first) {
		t.Fatalf("committed %v after the first Commit, want %v", got, first)
	}
	// Refused: the write happened, the Commit fails as abortable, and the
	// offsets did not move.
	refuse.Store(true)
	if err := commit(batch(10)); err == nil {
		t.Fatal("a Commit whose offset commit was refused succeeded")
	} else if ce, ok := err.(*connector.CommitError); !ok || ce.Kind != connector.Abortable {
		t.Fatalf("a Commit whose offset commit was refused: %v, want an abortable CommitError", err)
	}
	if got := w.written(); got != 2 {
		t.Fatalf("%d batches written, want 2", got)
	}
	if got := committed(); !maps.Equal(got, first) {
		t.Fatalf("committed %v after the refusal, want the first batch's %v", got, first)
	}

	// Recover rewinds to the coordinator's offsets: the second batch's
	// records are read again (at-least-once); the last batch's offsets are
	// in the group after Close.
	if _, err := s.Recover(ctx, io.ErrUnexpectedEOF); err != nil {
		t.Fatal(err)
	}
	cp = connector.Checkpoint{}
	recs := batch(30)
	for _, r := range recs[:1] {
		if want := first[r.Origin.Partition]; r.Origin.Offset != want {
			t.Fatalf("after Recover the first record read is %v, want partition %d's committed offset %d", r.Origin, r.Origin.Partition, want)
		}
	}
	if err := commit(recs); err != nil {
		t.Fatal(err)
	}
	last := map[int32]int64{}
	for tp, next := range cp {
		last[tp.Partition] = next
	}
	s.Close()
	if got := committed(); !maps.Equal(got, last) {
		t.Fatalf("committed %v after Close, want the last batch's %v", got, last)
	}
}
