package kfake_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
)

const badInputYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		commit.interval: 50ms
		TOLERANCE
		source: {type: kafka, topics: [in]}
		transforms:
			- type: set
				fields: {copied: true}
		sink: {type: kafka, topic: out}
	- name: healthy
		source: {type: generator, count: 3000}
		sink: {type: kafka, topic: healthy-out}
`

// produceNotJSON writes one record whose value is not JSON and returns its
// origin.
func produceNotJSON(t *testing.T, c *kfake.Cluster) connector.Origin {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: "in", Key: []byte("k-bad"), Value: []byte("not json"),
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("in-bad")}}}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
}

// With errors.tolerance none, a record a transform cannot handle fails the
// connector visibly, naming the record's origin; nothing of its batch
// commits, and everything committed before it is exact. Another connector
// in the same daemon is not affected.
func TestBadRecordFailsConnector(t *testing.T) {
	c := newCluster(t)
	produceInputRange(t, c, "in", 0, 1000)
	bad := produceNotJSON(t, c)
	produceInputRange(t, c, "in", 1000, 2000)
	cfg := parse(t, c, strings.ReplaceAll(badInputYAML, "TOLERANCE", "errors.tolerance: none"))
	d := startDaemon(t, cfg, "a")

	st := waitState(t, d, "copy", connector.Failed, time.Minute)
	if !strings.Contains(st.Error, bad.String()) || !strings.Contains(st.Error, "not JSON") {
		t.Fatalf("failure does not name the record's origin %s and the cause: %q", bad, st.Error)
	}
	t.Logf("copy failed as it should: %s", st.Error)
	rep := check(t, c, cfg, "copy")
	must(t, rep, "committed part of the failed connector")
	if rep.Expected >= 2000 {
		t.Fatalf("the batch with the bad record was committed: %s", rep)
	}
	must(t, waitExpected(t, c, cfg, "healthy", 3000, time.Minute), "the other connector kept running")
	if st, _ := d.Status("healthy"); st.State != connector.Running {
		t.Fatalf("healthy connector is %s", st.State)
	}
}

// With errors.tolerance all, the record goes to the dead-letter topic in the
// same transaction as its batch, with Kafka Connect's error headers, and the
// checker expects it there.
func TestBadRecordGoesToDeadLetterQueue(t *testing.T) {
	c := newCluster(t)
	produceInputRange(t, c, "in", 0, 1000)
	bad := produceNotJSON(t, c)
	produceInputRange(t, c, "in", 1000, 2000)
	cfg := parse(t, c, strings.ReplaceAll(badInputYAML, "TOLERANCE",
		"errors.tolerance: all\n    dead_letter_queue: {topic: dlq}"))
	startDaemon(t, cfg, "a")
	rep := waitExpected(t, c, cfg, "copy", 2001, time.Minute)
	must(t, rep, "copy with a dead-lettered record")

	headers := readOne(t, c, "dlq")
	if headers[connector.HeaderDLQTopic] != bad.Topic || headers[connector.HeaderDLQOffset] == "" ||
		!strings.Contains(headers[connector.HeaderDLQMessage], "not JSON") || headers["event-id"] != "in-bad" {
		t.Fatalf("dead-letter record headers: %v", headers)
	}
}

func waitState(t *testing.T, d *daemon.Daemon, name string, want connector.State, within time.Duration) connector.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, _ := d.Status(name)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector %s is %s, want %s", name, st.State, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readOne returns the headers of the first committed record of topic.
func readOne(t *testing.T, c *kfake.Cluster, topic string) map[string]string {
	t.Helper()
	var h map[string]string
	consumeUntil(t, c, []kgo.Opt{kgo.ConsumeTopics(topic)}, func(r *kgo.Record) bool {
		h = headers(r)
		return true
	})
	return h
}
