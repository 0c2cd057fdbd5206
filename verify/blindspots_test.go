package verify_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/verify"
)

// The mutation tests of the checker's blind spots: after a clean run of a
// real pipeline is stopped, each test changes the committed state the way
// a broken connector would and requires verify to catch it, and shows
// what a check on a running pipeline (which must leave later batches out)
// still cannot see.

const copyYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		commit.interval: 50ms
		batch.max.records: 400
		transaction.timeout: 10s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {copied: true}
		sink: {type: kafka, topic: out}
`

const group = "connectd-copy"

var (
	in0 = connector.TopicPartition{Topic: "in", Partition: 0}
	in1 = connector.TopicPartition{Topic: "in", Partition: 1}
	in3 = connector.TopicPartition{Topic: "in", Partition: 3}
)

// TestKafkaOutputBeyondTheCheckpoint: a duplicate whose origin header
// points beyond the checkpoint, and the orphaned output of a checkpoint
// moved back, are left out of a running pipeline's check (they look like
// later batches) and are unexpected output of a stopped one.
func TestKafkaOutputBeyondTheCheckpoint(t *testing.T) {
	c, cfg, n := cleanKafkaRun(t)
	cp := groupOffsets(t, c)

	// A duplicate of in-0's output, carrying a bogus origin past the
	// checkpoint of in/0.
	writeOutput(t, c, "in-0", fmt.Sprintf("in/0/%d", cp[in0]+1000))
	live, stopped := check(t, c, cfg, false), check(t, c, cfg, true)
	if !live.Clean() || live.Expected != n {
		t.Fatalf("running-pipeline check after the bogus duplicate: %s, want clean over %d (it must leave later origins out)", live, n)
	}
	want := verify.Report{Expected: n, Actual: n + 1, Unexpected: 1, BeyondCheckpoint: 1, UnexpectedIDs: []string{"out:in-0"}}
	if !sameCounts(stopped, want) || stopped.Clean() {
		t.Fatalf("bogus-origin duplicate, --stopped: %s, want %s", stopped, want)
	}

	// The checkpoint of in/1 moved back by k: the output of its last k
	// records is orphaned.
	const k = 25
	commitOffset(t, c, in1, cp[in1]-k)
	live, stopped = check(t, c, cfg, false), check(t, c, cfg, true)
	if !live.Clean() || live.Expected != n-k {
		t.Fatalf("running-pipeline check after the regression: %s, want clean over %d", live, n-k)
	}
	want = verify.Report{Expected: n - k, Actual: n + 1, Unexpected: 1 + k, BeyondCheckpoint: 1 + k}
	if !sameCounts(stopped, want) || stopped.Clean() {
		t.Fatalf("regressed checkpoint, --stopped: %s, want %s", stopped, want)
	}
	t.Logf("--stopped after both mutations: %s", stopped)
}

// TestKafkaPartitionNeverCommitted: a partition holding input but absent
// from the checkpoint, as if the connector never committed it, is reported
// always and fails the check of a stopped pipeline; before, none of its
// input was expected and none of its output compared, and the report was
// clean. On a running pipeline it is lag (a partition not reached yet).
func TestKafkaPartitionNeverCommitted(t *testing.T) {
	c, cfg, n := cleanKafkaRun(t)
	cp := groupOffsets(t, c)
	held := int(cp[in3]) // in/3's offsets: plain produces, one record each
	if held == 0 {
		t.Fatalf("in/3 holds no input: %v", cp)
	}
	deleteOffset(t, c, in3)

	live, stopped := check(t, c, cfg, false), check(t, c, cfg, true)
	ids := []string{fmt.Sprintf("in/3: offsets 0 to %d", held-1)}
	want := verify.Report{Expected: n - held, Actual: n - held, UncheckedPartitions: 1, UncheckedPartitionIDs: ids}
	if !sameCounts(live, want) || !live.Clean() {
		t.Fatalf("partition never committed, running: %s, want %s, clean (lag)", live, want)
	}
	want = verify.Report{Expected: n - held, Actual: n, Unexpected: held, BeyondCheckpoint: held,
		UncheckedPartitions: 1, UncheckedPartitionIDs: ids}
	if !sameCounts(stopped, want) || stopped.Clean() {
		t.Fatalf("partition never committed, --stopped: %s, want %s", stopped, want)
	}
	t.Logf("running: %s; --stopped: %s", live, stopped)
}

// cleanKafkaRun copies n records of a four-partition topic through a real
// exactly_once connector, stops it, and checks the stopped pipeline clean
// both ways: the baseline every mutation starts from.
func cleanKafkaRun(t *testing.T) (*kfake.Cluster, *config.Config, int) {
	t.Helper()
	const n = 2000
	c := e2e.Cluster(t)
	e2e.Produce(t, c, "in", 0, n)
	cfg := e2e.Parse(t, c, copyYAML)
	d := e2e.Start(t, cfg, "a")
	e2e.WaitExpected(t, c, cfg, "copy", n, time.Minute)
	d.Stop()
	for _, stopped := range []bool{false, true} {
		if rep := check(t, c, cfg, stopped); !rep.Clean() || rep.Expected != n || rep.Actual != n {
			t.Fatalf("stopped=%v: the clean run checks %s, want %d exactly once", stopped, rep, n)
		}
	}
	if cp := groupOffsets(t, c); len(cp) != 4 {
		t.Fatalf("checkpoint %v, want all 4 input partitions", cp)
	}
	return c, cfg, n
}

// check runs the checker on cfg's connector "copy".
func check(t *testing.T, c *kfake.Cluster, cfg *config.Config, stopped bool) verify.Report {
	t.Helper()
	spec, err := pipeline.Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: c.ListenAddrs(), ClientOpts: e2e.FastClient, Stopped: stopped})
	if err != nil {
		t.Fatalf("verify (stopped=%v): %v", stopped, err)
	}
	return rep
}

// sameCounts compares every count of got with want, and each sample list
// want names.
func sameCounts(got, want verify.Report) bool {
	counts := func(r verify.Report) [8]int {
		return [8]int{r.Expected, r.Actual, r.Duplicates, r.Missing, r.Unexpected, r.ApplyCountViolations, r.UncheckedPartitions, r.BeyondCheckpoint}
	}
	return counts(got) == counts(want) &&
		(want.UnexpectedIDs == nil || slices.Equal(got.UnexpectedIDs, want.UnexpectedIDs)) &&
		(want.UncheckedPartitionIDs == nil || slices.Equal(got.UncheckedPartitionIDs, want.UncheckedPartitionIDs))
}

func admin(t *testing.T, c *kfake.Cluster) (*kadm.Client, context.Context) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return kadm.NewClient(cl), ctx
}

// groupOffsets returns the connector's committed checkpoint.
func groupOffsets(t *testing.T, c *kfake.Cluster) connector.Checkpoint {
	t.Helper()
	adm, ctx := admin(t, c)
	resp, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	cp := connector.Checkpoint{}
	resp.Each(func(r kadm.OffsetResponse) {
		cp[connector.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.At
	})
	return cp
}

// commitOffset sets the stopped connector's checkpoint of tp to at.
func commitOffset(t *testing.T, c *kfake.Cluster, tp connector.TopicPartition, at int64) {
	t.Helper()
	adm, ctx := admin(t, c)
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: at, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit %s at %d: %v", tp, at, err)
	}
}

// deleteOffset removes the stopped connector's checkpoint of tp.
func deleteOffset(t *testing.T, c *kfake.Cluster, tp connector.TopicPartition) {
	t.Helper()
	adm, ctx := admin(t, c)
	set := kadm.TopicsSet{}
	set.Add(tp.Topic, tp.Partition)
	resp, err := adm.DeleteOffsets(ctx, group, set)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete the offset of %s: %v", tp, err)
	}
}

// writeOutput writes one record to out with the given event ID and origin
// header, outside any transaction.
func writeOutput(t *testing.T, c *kfake.Cluster, id, origin string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: "out", Value: []byte(`{}`), Headers: []kgo.RecordHeader{
		{Key: sinkkafka.HeaderEventID, Value: []byte(id)},
		{Key: sinkkafka.HeaderOrigin, Value: []byte(origin)},
	}}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
