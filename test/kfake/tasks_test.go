package kfake_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const tasksYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		tasks: 3
		commit.interval: 50ms
		source: {type: kafka, topics: [raw], group: copy-group}
		sink: {type: kafka, topic: out}
`

// TestTasksSplitPartitionsExactlyOnce: an exactly_once Kafka → Kafka
// connector with tasks: 3 runs three members of its consumer group in one
// process, each committing its own partitions in its own transactions; a
// second daemon joins half-way (six members, a rebalance across processes)
// and the first is stopped later (its tasks' partitions move). The output
// is every input record exactly once, and the status lists three tasks.
func TestTasksSplitPartitionsExactlyOnce(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(6, "raw"))
	cfg := parse(t, c, tasksYAML)
	a := startDaemon(t, cfg, "a")

	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	// 20,000 input records over about two seconds, keys repeating.
	produced := make(chan error, 1)
	go func() {
		for i := range 20000 {
			r := &kgo.Record{Topic: "raw", Key: []byte(strconv.Itoa(i % 97)), Value: []byte(strconv.Itoa(i)),
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e-" + strconv.Itoa(i))}}}
			adm.Produce(context.Background(), r, nil)
			if i%1000 == 999 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		produced <- adm.Flush(context.Background())
	}()
	members := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g, err := kadm.NewClient(adm).DescribeGroups(ctx, "copy-group")
		if err != nil {
			return -1
		}
		return len(g["copy-group"].Members)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("three members of the copy group", func() bool { return members() == 3 })
	st, _ := a.Status("copy")
	if len(st.Tasks) != 3 {
		t.Fatalf("status lists %d tasks, want 3: %+v", len(st.Tasks), st.Tasks)
	}
	waitFor("the copy to commit", func() bool { st, _ := a.Status("copy"); return st.Commits > 0 })

	b := startDaemon(t, cfg, "b")
	waitFor("six members after the second daemon joined", func() bool { return members() == 6 })
	waitFor("daemon b's tasks to commit", func() bool { st, _ := b.Status("copy"); return st.Commits > 0 })
	if st, _ := a.Status("copy"); st.RecordsIn >= 20000 {
		t.Fatalf("daemon a copied everything (%d records) before b joined: the rebalance was not exercised", st.RecordsIn)
	}
	a.Stop()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	rep := waitExpected(t, c, cfg, "copy", 20000, time.Minute)
	must(t, rep, "copy")
	if rep.Expected != 20000 {
		t.Errorf("expected %d input records, want the 20000 produced", rep.Expected)
	}
	if st, _ := b.Status("copy"); st.State != "RUNNING" || len(st.Tasks) != 3 {
		t.Errorf("daemon b's copy: state %s, %d tasks", st.State, len(st.Tasks))
	}
}
