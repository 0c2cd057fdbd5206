package kfake_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// The checker itself is tested against real broker data: after a clean
// exactly-once run, each corruption is injected into the output topic and
// must be caught.
func TestCheckerCatchesCorruption(t *testing.T) {
	c := newCluster(t)
	const n = 1000
	produceInputRange(t, c, "in", 0, n/2)
	aborted := produceAborted(t, c, "in")
	produceInputRange(t, c, "in", n/2, n)
	cfg := copyConfig(t, c, "exactly_once")
	d := startDaemon(t, cfg, "a")
	must(t, waitExpected(t, c, cfg, "copy", n, time.Minute), "clean run (the aborted input record is not expected)")
	d.Stop()

	// A record that passes an output's origin and event ID again: a duplicate.
	dupID, dupOrigin := firstOutput(t, c)
	writeOutput(t, c, nil, dupID, dupOrigin)
	rep := check(t, c, cfg, "copy")
	if rep.Duplicates != 1 || rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("injected duplicate: %s", rep)
	}

	// The same record again inside an aborted transaction: read_committed
	// never sees it, so the count does not change.
	writeOutput(t, c, []kgo.Opt{kgo.TransactionalID("injector")}, dupID, dupOrigin)
	if rep2 := check(t, c, cfg, "copy"); rep2.Duplicates != 1 {
		t.Fatalf("a duplicate inside an aborted transaction was counted: %s", rep2)
	}

	// The output of the aborted input record, as a pipeline reading
	// read_uncommitted would write it: unexpected.
	writeOutput(t, c, nil, "in-aborted", aborted.String())
	rep = check(t, c, cfg, "copy")
	if rep.Unexpected != 1 {
		t.Fatalf("output of an aborted input record not caught: %s", rep)
	}

	// Records deleted from the start of an output partition: missing.
	deleted := deleteOutputPrefix(t, c, 5)
	rep = check(t, c, cfg, "copy")
	if deleted == 0 || rep.Missing != deleted {
		t.Fatalf("deleted %d output records, checker says: %s", deleted, rep)
	}
	t.Logf("after all injections: %s", rep)
}

type originT struct {
	topic     string
	partition int32
	offset    int64
}

func (o originT) String() string { return fmt.Sprintf("%s/%d/%d", o.topic, o.partition, o.offset) }

// produceAborted writes one input record in a transaction that aborts and
// returns where it landed.
func produceAborted(t *testing.T, c *kfake.Cluster, topic string) originT {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("aborter"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	r := &kgo.Record{Topic: topic, Key: []byte("k-aborted"), Value: []byte(`{"i":-1,"amount":1}`),
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("in-aborted")}}}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	return originT{r.Topic, r.Partition, r.Offset}
}

// firstOutput returns the event ID and origin of the first record of out/0.
func firstOutput(t *testing.T, c *kfake.Cluster) (id, origin string) {
	t.Helper()
	consumeUntil(t, c, []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"out": {0: kgo.NewOffset().AtStart()}})},
		func(r *kgo.Record) bool {
			h := headers(r)
			id, origin = h[sinkkafka.HeaderEventID], h[sinkkafka.HeaderOrigin]
			return true
		})
	return id, origin
}

// writeOutput writes one record with the given event ID and origin to out;
// with a transactional ID in opts it writes it in a transaction that aborts.
func writeOutput(t *testing.T, c *kfake.Cluster, opts []kgo.Opt, id, origin string) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn := len(opts) > 0
	if txn {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	r := &kgo.Record{Topic: "out", Value: []byte(`{}`), Headers: []kgo.RecordHeader{
		{Key: sinkkafka.HeaderEventID, Value: []byte(id)},
		{Key: sinkkafka.HeaderOrigin, Value: []byte(origin)},
	}}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if txn {
		if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Fatal(err)
		}
	}
}

// deleteOutputPrefix deletes the first n offsets of out/1 and returns how
// many data records that removed (some offsets are transaction markers).
func deleteOutputPrefix(t *testing.T, c *kfake.Cluster, n int64) int {
	t.Helper()
	data := 0
	cl := consumeUntil(t, c, []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"out": {1: kgo.NewOffset().AtStart()}})},
		func(r *kgo.Record) bool {
			if r.Offset < n {
				data++
			}
			return r.Offset >= n
		})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "out", Partition: 1, At: n})
	resp, err := kadm.NewClient(cl).DeleteRecords(ctx, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}
