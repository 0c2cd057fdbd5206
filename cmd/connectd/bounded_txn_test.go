package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/e2e"
)

// produceTransactional writes e2e's input records from..to-1 to in,
// in one committed transaction per call: the partitions then end in a
// commit marker, which is no record.
func produceTransactional(t *testing.T, c *kfake.Cluster, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("in"), kgo.TransactionalID("input-writer"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, e2e.InputRecords(from, to)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// Transactional input ends in a commit marker: the last stable offset is
// one past the last record, and the connector's checkpoint stops below it.
// A bounded run must still finish, and finish exactly there.
func TestRunBoundedTransactionalInput(t *testing.T) {
	c := newCluster(t)
	produceTransactional(t, c, 0, 2000)
	produceTransactional(t, c, 2000, 3000)
	path := writeConfig(t, t.TempDir(), "bounded.yaml", strings.ReplaceAll(boundedYAML, "BROKERS", strings.Join(c.ListenAddrs(), ",")))
	code, sum := runBounded(t, path)
	if code != 0 || sum.Outcome != "finished" || sum.Connectors[0].RecordsIn != 3000 {
		t.Fatalf("exit %d, %+v; want finished with 3000 records in", code, sum)
	}
	rep := verifyClean(t, path, "copy", "--stopped")
	if rep.Expected != 3000 || rep.Actual != 3000 {
		t.Fatalf("verify %s, want 3000", rep)
	}
}
