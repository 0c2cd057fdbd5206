package txn

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// TestKafkaGroupTxnCommitsIdlePartitionsOffsets: a batch's checkpoint can
// hold a partition the batch read nothing of (a window stage's idle advance
// wrote its state and results in the transaction). franz-go's offset
// commit carries only consumed partitions; KafkaGroupTxn adds the others at
// their unchanged offsets, so the commit is fenced by the group generation
// for them too, and their next owner's stable offset fetch waits for the
// transaction. Without it, in/1 is missing from the second
// TxnOffsetCommit.
func TestKafkaGroupTxnCommitsIdlePartitionsOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var sent []map[int32]int64 // in's partitions per TxnOffsetCommit
	c.ControlKey(int16(kmsg.TxnOffsetCommit), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		got := map[int32]int64{}
		for _, tp := range r.(*kmsg.TxnOffsetCommitRequest).Topics {
			for _, p := range tp.Partitions {
				// v6 names the topic by ID only; in is the only
				// topic the session consumes.
				if tp.Topic == "in" || tp.Topic == "" {
					got[p.Partition] = p.Offset
				}
			}
		}
		mu.Lock()
		sent = append(sent, got)
		mu.Unlock()
		return nil, nil, false
	})
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	prod, err := kgo.NewClient(seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(p int32, n int) {
		for range n {
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "in", Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 3)
	produce(1, 2)

	k := NewKafkaGroupTxn([]kgo.Opt{
		seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"),
		kgo.TransactionalID("txn-idle"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, "out", slog.New(slog.DiscardHandler), nil)
	defer k.Close()
	if _, err := k.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	in0 := connector.TopicPartition{Topic: "in", Partition: 0}
	in1 := connector.TopicPartition{Topic: "in", Partition: 1}
	commit := func(cp connector.Checkpoint) {
		t.Helper()
		if err := k.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := k.Commit(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	pollN(ctx, t, k.Client(), 5)
	commit(connector.Checkpoint{in0: 3, in1: 2})

	// The second batch reads in/0 only; in/1 idle-advanced at 2.
	produce(0, 2)
	pollN(ctx, t, k.Client(), 2)
	commit(connector.Checkpoint{in0: 5, in1: 2})

	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 {
		t.Fatalf("%d TxnOffsetCommits, want 2: %v", len(sent), sent)
	}
	if got := sent[1]; got[0] != 5 || got[1] != 2 || len(got) != 2 {
		t.Fatalf("second TxnOffsetCommit carried in's offsets %v (all: %v), want partition 0 at 5 and idle partition 1 at 2", got, sent)
	}
}
