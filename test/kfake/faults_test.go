package kfake_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/test/e2e"
)

const copyYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		guarantee: GUARANTEE
		commit.interval: 50ms
		batch.max.records: 400
		transaction.timeout: 10s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {copied: true}
		sink: {type: kafka, topic: out}
`

func copyConfig(t *testing.T, c *kfake.Cluster, guarantee string) *config.Config {
	return parse(t, c, strings.ReplaceAll(copyYAML, "GUARANTEE", guarantee))
}

// faultSet is every fault the suites inject. REQUEST_TIMED_OUT on Produce,
// TxnOffsetCommit, EndTxn and OffsetCommit is answered after kfake applied
// the request, like a real broker whose reply was lost: the client cannot
// know the outcome. The other errors reject the request.
var faultSet = []kfake.Fault{
	{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.RequestTimedOut},
	{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.RequestTimedOut},
	{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut},
	{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.RequestTimedOut},
}

// runFaultSchedule runs the copy connector over n input records on the
// shared schedule (e2e.Schedule: a restart, a second instance joining and
// leaving) under faultSet; it returns the run's outcome once every input
// is committed.
func runFaultSchedule(t *testing.T, guarantee string, n int) e2e.Outcome {
	c := newCluster(t)
	produceInput(t, c, "in", n)
	cfg := copyConfig(t, c, guarantee)
	return e2e.RunSchedule(t, c, cfg, "copy", n, e2e.Schedule{Faults: faultSet, Seed: 42, P: 0.05})
}

// Exactly-once holds under produce, offset-commit and end-transaction faults
// (including timeouts after the broker applied the request), a restart
// mid-stream, and a rebalance in and out.
func TestExactlyOnceUnderFaults(t *testing.T) {
	run := runFaultSchedule(t, "exactly_once", 20000)
	must(t, run.Report, "exactly_once under faults")
	if run.Aborts == 0 {
		t.Fatal("faults fired but no batch aborted: the faults did not bite")
	}
	for i, f := range faultSet {
		if f.Keys[0] != kmsg.OffsetCommit && !run.Faults.Fired(i) {
			t.Errorf("fault %s %s never fired", f.Keys[0].Name(), f.Err.Message)
		}
	}
}

// The same schedule at-least-once loses nothing and shows duplicates, which
// the checker counts: proof that the faults bite.
func TestAtLeastOnceUnderFaultsDuplicates(t *testing.T) {
	rep := runFaultSchedule(t, "at_least_once", 20000).Report
	t.Logf("at_least_once under faults: %s", rep)
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("at_least_once lost or invented records: %s", rep)
	}
	if rep.Duplicates == 0 {
		t.Fatalf("at_least_once under faults produced no duplicates: the faults did not bite: %s", rep)
	}
}
