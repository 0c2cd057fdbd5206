package pipeline

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// Committed reads the group's offset stable (KIP-447): while a
// transaction holding an offset commit for the group is open, the broker
// answers UNSTABLE_OFFSET_COMMIT for the partition (with offset -1), and
// Committed must ask again until the transaction ends, then return its
// offset. Taken as "no offset", as it once was, the window stage's
// restore skipped its check against the checkpoint and waited for
// nothing.
func TestCommittedWaitsForAnOpenTransaction(t *testing.T) {
	const group = "g"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "in", Partition: 0, At: 3})
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, group, offs); err != nil {
		t.Fatal(err)
	}

	// A transaction with an offset commit of in/0 to 5, left open.
	txnID := "t"
	ini := kmsg.NewPtrInitProducerIDRequest()
	ini.TransactionalID, ini.TransactionTimeoutMillis = &txnID, 60000
	iresp, err := ini.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(iresp.ErrorCode)
	}
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, iresp.ProducerID, iresp.ProducerEpoch, group
	if aresp, err := add.RequestWith(ctx, cl); err != nil || aresp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %v", err, aresp)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch, commit.Generation = txnID, group, iresp.ProducerID, iresp.ProducerEpoch, -1
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic, ct.TopicID = "in", c.TopicInfo("in").TopicID
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 5
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	if cresp, err := commit.RequestWith(ctx, cl); err != nil || cresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v %v", err, cresp)
	}

	// Stable offset fetches are counted; the second shows Committed
	// asked again instead of returning.
	var stable atomic.Int32
	again := make(chan struct{})
	c.ControlKey(int16(kmsg.OffsetFetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		if r.(*kmsg.OffsetFetchRequest).RequireStable && stable.Add(1) == 2 {
			close(again)
		}
		return nil, nil, false
	})
	store := &kafkaStateStore{opts: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, ns: group, inputs: []string{"in"}}
	defer store.Close()
	type result struct {
		at    int64
		known bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		at, known, err := store.Committed(ctx, connector.TopicPartition{Topic: "in", Partition: 0})
		done <- result{at, known, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Committed returned (%d, %v, %v) while the transaction committing in/0 was open", r.at, r.known, r.err)
	case <-again:
	}

	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txnID, iresp.ProducerID, iresp.ProducerEpoch, true
	if eresp, err := end.RequestWith(ctx, cl); err != nil || eresp.ErrorCode != 0 {
		t.Fatalf("EndTxn: %v %v", err, eresp)
	}
	if r := <-done; r.err != nil || !r.known || r.at != 5 {
		t.Fatalf("Committed = (%d, %v, %v) after the transaction committed, want 5", r.at, r.known, r.err)
	}
}
