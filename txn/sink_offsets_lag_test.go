package txn

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/sink/sinktest/memstore"
)

// TestSinkOffsetsClaimCatchesUpGroupOffsets: the group offsets of a
// sink-checkpointed connector are for lag display only, committed after
// the sink commit, so they can miss a batch the sink holds: the owner
// crashed between the two, or (CI run 56, two live processes with one
// instance_id) another process's join replaced its member between its
// sink commit and its lag commit, which the broker then refused with
// FENCED_INSTANCE_ID. If that batch held the last input, the next owner
// claims every partition at the end of the log, reads nothing and so
// commits nothing, and the group offsets, Kafka's lag tools and whoever
// waits on them (the process tests' waitDrained) showed records as
// unprocessed forever. The claim itself must bring the group offsets to
// the checkpoints the sink answered.
func TestSinkOffsetsClaimCatchesUpGroupOffsets(t *testing.T) {
	const topic, group, events = "in", "g", 40
	_, seeds, admin := kfakeInput(t, topic, events)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The previous owner: every event and the checkpoint after it in the
	// sink, and no group offset.
	adm := kadm.NewClient(admin)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	data := memstore.New("")
	prev := data.Open()
	var recs []*connector.Record
	end := connector.Checkpoint{}
	ends.Each(func(o kadm.ListedOffset) {
		for off := range o.Offset {
			r := connector.Origin{Topic: topic, Partition: o.Partition, Offset: off}
			recs = append(recs, &connector.Record{Origin: r, EventID: r.String()})
		}
		end[connector.TopicPartition{Topic: topic, Partition: o.Partition}] = o.Offset
	})
	claims, err := prev.Claim(ctx, group, end.Partitions())
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[connector.TopicPartition]int64{}
	for tp, c := range claims {
		epochs[tp] = c.Epoch
	}
	if err := prev.Commit(ctx, group, epochs, recs, nil, end); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSinkOffsets([]kgo.Opt{seeds, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit()},
		group, kgo.NewOffset().AtStart(), data.Open(), log)
	defer s.Close()
	if _, err := s.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	waitFor(t, wctx, "the group offsets to reach the sink's checkpoint after the claim", func() bool {
		// Poll as the connector does between batches: the member joins,
		// claims, and has nothing to read.
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		fs := s.Client().PollRecords(pctx, events)
		pcancel()
		if n := fs.NumRecords(); n > 0 {
			t.Fatalf("read %d records, though the sink holds every one (checkpoint %v)", n, end)
		}
		return caughtUp(t, adm, group, end)
	})

	// New input: the batch's own lag commit follows the claim's, and the
	// group offsets move on to its checkpoint, not back.
	for i := range 10 {
		if err := admin.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cp := connector.Checkpoint{}
	recs = pollBatch(ctx, t, s.Client, 10, cp)
	if err := commitBatch(ctx, t, s, recs, cp); err != nil {
		t.Fatal(err)
	}
	next := end.Clone()
	next.Merge(cp)
	wctx, wcancel = context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	waitFor(t, wctx, "the group offsets to reach the batch's checkpoint", func() bool {
		return caughtUp(t, adm, group, next)
	})
}

// caughtUp reports whether group's committed offsets are cp.
func caughtUp(t *testing.T, adm *kadm.Client, group string, cp connector.Checkpoint) bool {
	t.Helper()
	offs, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	for tp, next := range cp {
		o, ok := offs.Lookup(tp.Topic, tp.Partition)
		if !ok || o.Err != nil || o.At != next {
			return false
		}
	}
	return true
}
