package faults

import (
	"fmt"
	"testing"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/verify"
)

// The checker's own tests: start from a correct result and mutate it the
// ways a broken pipeline would — a duplicate, a loss, an aborted record,
// a reordered key, a re-applied write, a checkpoint gap, a transaction
// left open — and see each mutation caught by the invariant that claims
// it, and allowed or not by each guarantee as documented. These run in
// -short mode; TestMatrix repeats the sink-side mutations on real data
// (mutateAndRecheck).

const inTopic = "in"

// cleanObservation is a correct exactly-once result over n events spread
// over 4 output streams by key, in input order.
func cleanObservation(n int) (Observation, []string) {
	var expected, poison, dead []string
	var outs []Output
	for i := range n {
		id := EventID(i)
		expected = append(expected, id)
		stream := fmt.Sprintf("out/%d", (i%Keys)%4)
		if i%50 == 7 { // not 3 nor 3+Keys: the reorder mutation swaps those in one stream
			stream = "dlq/0"
			poison = append(poison, id)
			dead = append(dead, id)
		}
		outs = append(outs, Output{Stream: stream, ID: id})
	}
	o := Observation{
		Ordered:    true,
		Outputs:    outs,
		Watched:    ids(outs),
		Checkpoint: connector.Checkpoint{{Topic: inTopic, Partition: 0}: 120, {Topic: inTopic, Partition: 1}: 99},
		Bounds: map[connector.TopicPartition]Bound{
			{Topic: inTopic, Partition: 0}: {Low: 119, End: 121},
			{Topic: inTopic, Partition: 1}: {Low: 99, End: 99},
		},
	}
	o.Report = verify.Compare(expected, ids(outs))
	o.Committed, o.Poison = n, poison
	o.DeadLetters = map[string][]string{"topic dlq": dead}
	return o, expected
}

func ids(outs []Output) []string {
	out := make([]string, len(outs))
	for i, o := range outs {
		out[i] = o.ID
	}
	return out
}

func TestCheckerMutations(t *testing.T) {
	clean, expected := cleanObservation(1000)
	if f := Check(clean); !f.ExactlyOnce() || !f.AtLeastOnce() {
		t.Fatalf("the unmutated result fails: %+v", f)
	}
	// An outside reader that sees what the sink lists, once each, agrees.
	witnessed, _ := cleanObservation(1000)
	witnessed.Witness = &Witness{Reader: "DuckDB", Rows: 1000, IDs: 1000, Listed: 1000}
	if f := Check(witnessed); !f.ExactlyOnce() {
		t.Fatalf("an agreeing outside reader fails the result: %+v", f)
	}
	// A dead letter at_least_once wrote twice is still the poison event.
	dupDLQ, _ := cleanObservation(1000)
	dupDLQ.DeadLetters["topic dlq"] = append(dupDLQ.DeadLetters["topic dlq"], dupDLQ.Poison[0])
	if f := Check(dupDLQ); f.DeadLetterMismatch != 0 {
		t.Fatalf("a duplicated dead letter counted as a wrong one: %+v", f)
	}
	// recompare refreshes the verify report after a mutation of Outputs.
	recompare := func(o *Observation) { o.Report = verify.Compare(expected, ids(o.Outputs)) }

	tests := []struct {
		name   string
		mutate func(o *Observation)
		caught func(f Findings) int // the invariant that must see it
		alo    bool                 // still acceptable at_least_once
	}{
		{"duplicate", func(o *Observation) {
			o.Outputs = append(o.Outputs, o.Outputs[500])
			recompare(o)
		}, func(f Findings) int { return f.Duplicates }, true},
		{"dropped", func(o *Observation) {
			o.Outputs = append(o.Outputs[:10:10], o.Outputs[11:]...)
			recompare(o)
		}, func(f Findings) int { return f.Missing }, false},
		{"aborted record visible", func(o *Observation) {
			o.Outputs = append(o.Outputs, Output{Stream: "out/1", ID: AbortedID(5000)})
			recompare(o)
		}, func(f Findings) int { return min(f.AbortedVisible, f.Unexpected) }, false},
		{"aborted record in a table", func(o *Observation) {
			o.Scanned = []string{EventID(1), AbortedID(7)}
		}, func(f Findings) int { return f.AbortedVisible }, false},
		{"aborted record seen by the watcher only", func(o *Observation) {
			o.Watched = append(o.Watched, AbortedID(9))
		}, func(f Findings) int { return f.AbortedVisible }, false},
		{"reordered key", func(o *Observation) {
			// Events 3 and 3+Keys share a key and a stream: swap them.
			a, b := 3, 3+Keys
			o.Outputs[a], o.Outputs[b] = o.Outputs[b], o.Outputs[a]
			recompare(o)
		}, func(f Findings) int { return f.OrderViolations }, true},
		{"replayed key (duplicate behind later events)", func(o *Observation) {
			o.Outputs = append(o.Outputs, Output{Stream: o.Outputs[2].Stream, ID: o.Outputs[2].ID})
			recompare(o)
		}, func(f Findings) int { return min(f.OrderViolations, f.Duplicates) }, true},
		{"apply counter 2", func(o *Observation) {
			o.Report.ApplyCountViolations = 1
		}, func(f Findings) int { return f.ApplyCount }, true},
		{"watcher saw a duplicate", func(o *Observation) {
			o.Watched = append(o.Watched, o.Watched[0])
		}, func(f Findings) int { return f.WatcherDuplicates }, true},
		{"checkpoint below the last record (lag)", func(o *Observation) {
			o.Checkpoint[connector.TopicPartition{Topic: inTopic, Partition: 0}] = 100
		}, func(f Findings) int { return f.CheckpointGaps }, false},
		{"checkpoint beyond the end offset", func(o *Observation) {
			o.Checkpoint[connector.TopicPartition{Topic: inTopic, Partition: 1}] = 150
		}, func(f Findings) int { return f.CheckpointGaps }, false},
		{"partition without checkpoint", func(o *Observation) {
			delete(o.Checkpoint, connector.TopicPartition{Topic: inTopic, Partition: 0})
		}, func(f Findings) int { return f.CheckpointGaps }, false},
		{"hanging transaction", func(o *Observation) {
			o.Hanging = []string{"connectd-kafka-eo-x (Ongoing)"}
		}, func(f Findings) int { return f.Hanging }, false},
		{"verify expects fewer outputs than the input has", func(o *Observation) {
			// A verify that recomputed its expectation from part of the
			// input would find nothing missing: the input count catches it.
			o.Report = verify.Compare(expected[:900], ids(o.Outputs[:900]))
		}, func(f Findings) int { return f.ExpectedMismatch }, false},
		{"one sink of a fan-out expects fewer", func(o *Observation) {
			full := o.Report
			full.Sink = "sinks[0] kafka"
			short := verify.Compare(expected[:999], ids(o.Outputs[:999]))
			short.Sink = "sinks[1] postgres"
			o.Report.Sinks = []verify.Report{full, short}
		}, func(f Findings) int { return f.ExpectedMismatch }, false},
		{"output beyond the stopped pipeline's checkpoint", func(o *Observation) {
			o.Report.Unexpected++
			o.Report.BeyondCheckpoint++
		}, func(f Findings) int { return min(f.BeyondCheckpoint, f.Unexpected) }, false},
		{"an input partition verify found without checkpoint", func(o *Observation) {
			o.Report.UncheckedPartitions = 1
		}, func(f Findings) int { return f.Unchecked }, false},
		{"a poison event not dead-lettered", func(o *Observation) {
			o.DeadLetters["topic dlq"] = o.DeadLetters["topic dlq"][1:]
		}, func(f Findings) int { return f.DeadLetterMismatch }, false},
		{"a dead letter that is not poison", func(o *Observation) {
			o.DeadLetters["topic dlq"] = append(o.DeadLetters["topic dlq"], EventID(8))
		}, func(f Findings) int { return f.DeadLetterMismatch }, false},
		{"an outside reader sees a row twice", func(o *Observation) {
			o.Witness = &Witness{Reader: "DuckDB", Rows: 1001, IDs: 1000, Listed: 1001}
		}, func(f Findings) int { return f.WitnessMismatch }, true},
		{"an outside reader sees a file the sink does not list", func(o *Observation) {
			o.Witness = &Witness{Reader: "DuckDB", Rows: 1000, IDs: 1000, Listed: 990}
		}, func(f Findings) int { return f.WitnessMismatch }, true},
		{"one destination of two without its dead letters", func(o *Observation) {
			o.DeadLetters["table dlq"] = nil
		}, func(f Findings) int { return f.DeadLetterMismatch }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := cleanObservation(1000)
			tt.mutate(&o)
			f := Check(o)
			if tt.caught(f) == 0 {
				t.Fatalf("mutation not caught by its invariant: %+v", f)
			}
			if f.ExactlyOnce() {
				t.Fatalf("mutated result passes as exactly once: %+v", f)
			}
			if f.AtLeastOnce() != tt.alo {
				t.Fatalf("at_least_once verdict %v, want %v: %+v", f.AtLeastOnce(), tt.alo, f)
			}
			if len(f.Details) == 0 {
				t.Fatal("no detail explains the violation")
			}
			t.Logf("caught: %v", f.Details)
		})
	}
}

// An unordered sink (a PostgreSQL table) is not held to an order it never
// promised.
func TestCheckerOrderOnlyWhereSinkPromisesIt(t *testing.T) {
	o, _ := cleanObservation(300)
	o.Outputs[3], o.Outputs[3+Keys] = o.Outputs[3+Keys], o.Outputs[3]
	o.Ordered = false
	if f := Check(o); !f.ExactlyOnce() {
		t.Fatalf("order checked on an unordered sink: %+v", f)
	}
}

// A checkpoint may sit anywhere between the last committed record and the
// end offset: the offsets in between are markers and aborted records.
func TestCheckpointBounds(t *testing.T) {
	tp := connector.TopicPartition{Topic: inTopic, Partition: 0}
	b := map[connector.TopicPartition]Bound{tp: {Low: 10, End: 14}}
	for cp, want := range map[int64]int{9: 1, 10: 0, 12: 0, 14: 0, 15: 1} {
		if n, gaps := CheckpointGaps(connector.Checkpoint{tp: cp}, b); n != want {
			t.Errorf("checkpoint %d: %d gaps %v, want %d", cp, n, gaps, want)
		}
	}
	// An empty partition needs no checkpoint.
	if n, _ := CheckpointGaps(connector.Checkpoint{}, map[connector.TopicPartition]Bound{tp: {}}); n != 0 {
		t.Errorf("empty partition reported as a gap")
	}
}

func TestIDs(t *testing.T) {
	if !IsAborted("string:ab-3") || IsAborted("string:in-3") || !IsAborted(AbortedID(1)) {
		t.Fatal("IsAborted")
	}
	if seq("dlq:in-42") != 42 || seq("ab-1") != -1 || seq("in-x") != -1 {
		t.Fatal("seq")
	}
}

// A windowed connector's result: verify must expect the windows the input
// closes (counted by the test) plus the dead letters, find every value
// equal, and state must have been loaded by every process that aggregated
// and again after the faults undid batches. Each mutation is caught by its
// invariant; the clean result passes.
func TestCheckerWindowed(t *testing.T) {
	clean := func() Observation {
		o := Observation{Windowed: true, Windows: 40, Poison: []string{"in-7", "in-57"},
			DeadLetters: map[string][]string{"topic dlq": {"in-7", "in-57"}},
			Struck:      3, Restores: 5, Committed: 1000}
		o.Report = verify.Report{Expected: 42, Actual: 42, Windows: 40}
		return o
	}
	if f := Check(clean()); !f.ExactlyOnce() || f.ExpectedCell() != "= input: 40 windows" {
		t.Fatalf("the clean windowed result fails: %+v (%s)", f, f.ExpectedCell())
	}
	tests := []struct {
		name   string
		mutate func(o *Observation)
		caught func(f Findings) int
	}{
		{"a wrong count", func(o *Observation) { o.Report.ValueMismatches = 1 }, func(f Findings) int { return f.ValueMismatches }},
		{"verify expecting fewer windows than the input closes", func(o *Observation) {
			o.Report.Windows, o.Report.Expected = 39, 41
		}, func(f Findings) int { return f.ExpectedMismatch }},
		{"verify expecting windows for records that are dead letters", func(o *Observation) {
			o.Report.Expected = 43
		}, func(f Findings) int { return f.ExpectedMismatch }},
		{"a process aggregating without loading state", func(o *Observation) {
			o.Unrestored = []string{"http://127.0.0.1:4000"}
		}, func(f Findings) int { return f.StateNotRestored }},
		{"batches undone and no state loaded again", func(o *Observation) { o.Restores = 0 },
			func(f Findings) int { return f.StateNotRestored }},
		{"a window emitted twice", func(o *Observation) { o.Report.Duplicates, o.Report.Actual = 1, 43 },
			func(f Findings) int { return f.Duplicates }},
	}
	for _, tc := range tests {
		o := clean()
		tc.mutate(&o)
		f := Check(o)
		if tc.caught(f) == 0 || f.ExactlyOnce() {
			t.Errorf("%s: not caught: %+v", tc.name, f)
		}
	}
}

// closedWindows counts (key, window) pairs per partition up to that
// partition's watermark, from the input alone; a window whose end equals
// the watermark is closed (the stage's rule: end + allowed_lateness <=
// watermark).
func TestClosedWindows(t *testing.T) {
	if windowSize != 10_000 || windowTick != 10 || windowOOO != 2_000 {
		t.Fatal("the hand-computed counts below assume 10s windows, 10ms per sequence number and 2s out of orderness")
	}
	ts := eventTimes{
		// Keys 0, 1, 0, 1 in window [0, 10s); keys 30, 31 in [10s, 20s);
		// key 66 at 22s in [20s, 30s): watermark 20s closes the first
		// two windows (the second exactly), not the third.
		0: {0, 1, 97, 98, 1000, 1001, 2200},
		// Key 5 three times in [0, 10s); watermark 1.99s - 2s: none.
		1: {5, 102, 199},
		2: {},
	}
	if got := ts.closedWindows(); got != 4 {
		t.Fatalf("closedWindows = %d, want 4", got)
	}
	got := ts.missingWindows("w", []string{"w/k-0/0", "w/k-30/10000", "w/k-66/20000"})
	if want := "input partition 0: 2 of 4 windows missing, starts 0..10000 ms"; got != want {
		t.Fatalf("missingWindows = %q, want %q", got, want)
	}
}
