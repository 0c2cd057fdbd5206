// Package verify is connectd's exactly-once checker: it recomputes the event
// IDs a connector should have written and compares them with what the sink
// holds, counting duplicates, losses and IDs nobody asked for. This file is
// the comparison itself, a pure function over ID lists; reading the input
// and the sink lives in the package's other files.
package verify

import (
	"fmt"
	"strings"
)

// maxSamples bounds each list of offending IDs in a Report: enough for a
// human to start digging, small enough to print.
const maxSamples = 10

// Report is the outcome of comparing expected with actual output IDs.
type Report struct {
	Expected int `json:"expected"`
	Actual   int `json:"actual"`
	// Duplicates counts copies beyond those expected: an ID expected once
	// and seen three times counts 2.
	Duplicates int `json:"duplicates"`
	// Missing counts expected copies never seen.
	Missing int `json:"missing"`
	// Unexpected counts every occurrence of an ID that was not expected at
	// all, e.g. output of an aborted transaction read as if committed,
	// and with Options.Stopped every output whose origin lies beyond the
	// checkpoint (BeyondCheckpoint of them).
	Unexpected int `json:"unexpected"`

	// Samples of offending IDs, at most 10 each, in first-seen order.
	DuplicateIDs  []string `json:"duplicate_ids,omitempty"`
	MissingIDs    []string `json:"missing_ids,omitempty"`
	UnexpectedIDs []string `json:"unexpected_ids,omitempty"`

	// ApplyCountViolations counts events of a PostgreSQL or Redis sink in test mode
	// (test_apply_counter) whose apply count is not 1: a write applied
	// twice, which an UPSERT keyed on the event ID would otherwise hide.
	ApplyCountViolations int `json:"apply_count_violations,omitempty"`

	// UncheckedPartitions counts the input partitions that hold committed
	// records but have no checkpoint at all: the connector never committed
	// them, so none of their input is expected and none of their output
	// is compared. On a running pipeline that is lag (a partition not
	// reached yet, a connector that failed before its first commit) and
	// the report stays clean; on a stopped one (Stopped) it is not.
	// UncheckedPartitionIDs samples them as "topic/partition: offsets F to
	// L", the input a connector should have read there.
	UncheckedPartitions   int      `json:"unchecked_partitions,omitempty"`
	UncheckedPartitionIDs []string `json:"unchecked_partition_ids,omitempty"`
	// BeyondCheckpoint counts, with Options.Stopped only, the outputs whose
	// origin lies at or beyond the checkpoint (or in a partition it does
	// not hold): on a stopped pipeline no later batch can explain them.
	// Each is also counted in Unexpected and Actual.
	BeyondCheckpoint int `json:"beyond_checkpoint,omitempty"`
	// Stopped says the report is of a stopped pipeline (Options.Stopped).
	Stopped bool `json:"stopped,omitempty"`

	// Windows counts the window results the batch oracle expects of a
	// windowed connector (final windows, or each window's latest
	// revision with emit: updates); Late the input records it found late
	// for all their windows.
	Windows int `json:"windows,omitempty"`
	Late    int `json:"late,omitempty"`
	// ValueMismatches counts window results the sink holds under an
	// expected event ID but with other values than the oracle computed
	// (numbers compared with a relative tolerance of 1e-9); samples name
	// the event ID, the expected and the stored value.
	ValueMismatches  int      `json:"value_mismatches,omitempty"`
	ValueMismatchIDs []string `json:"value_mismatch_ids,omitempty"`
	// IdleLogViolations counts idle advances (watermark.idle_timeout)
	// the window stage logged that no partition's watermark explains.
	IdleLogViolations   int      `json:"idle_log_violations,omitempty"`
	IdleLogViolationIDs []string `json:"idle_log_violation_ids,omitempty"`

	// Prepared counts a two-phase connector's prepared transactions still
	// in doubt in its PostgreSQL sinks. A running pipeline has up to one
	// per instance between its phases; a quiet one must have none (tests
	// check it; Clean does not, so verify can run on a live pipeline).
	Prepared int `json:"prepared,omitempty"`
	// Sink names the sink a per-sink report is about; Sinks holds them
	// for a connector with several sinks, whose totals this report is.
	Sink  string   `json:"sink,omitempty"`
	Sinks []Report `json:"sinks,omitempty"`
}

// Clean reports whether the output matches the expectation exactly: every
// expected ID as many times as expected, nothing else, no event applied
// twice, every window result with the oracle's values, and, for a stopped pipeline, every input partition holding
// records covered by the checkpoint.
func (r Report) Clean() bool {
	return r.Duplicates == 0 && r.Missing == 0 && r.Unexpected == 0 && r.ApplyCountViolations == 0 && r.ValueMismatches == 0 && r.IdleLogViolations == 0 &&
		(r.UncheckedPartitions == 0 || !r.Stopped)
}

// String summarises the report on one line for logs and the CLI.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "expected %d, actual %d: %d duplicates, %d missing, %d unexpected",
		r.Expected, r.Actual, r.Duplicates, r.Missing, r.Unexpected)
	if r.BeyondCheckpoint > 0 {
		fmt.Fprintf(&b, " (%d beyond the checkpoint)", r.BeyondCheckpoint)
	}
	if r.ApplyCountViolations > 0 {
		fmt.Fprintf(&b, ", %d rows with apply_count != 1", r.ApplyCountViolations)
	}
	if r.Windows > 0 || r.Late > 0 {
		fmt.Fprintf(&b, " (%d windows, %d late records)", r.Windows, r.Late)
	}
	if r.ValueMismatches > 0 {
		fmt.Fprintf(&b, ", %d windows with other values than the oracle's", r.ValueMismatches)
	}
	if r.IdleLogViolations > 0 {
		fmt.Fprintf(&b, ", %d implausible idle advances", r.IdleLogViolations)
	}
	if r.UncheckedPartitions > 0 {
		fmt.Fprintf(&b, ", %d input partitions with records and no checkpoint (%s)",
			r.UncheckedPartitions, strings.Join(r.UncheckedPartitionIDs, ", "))
	}
	for _, s := range []struct {
		name string
		ids  []string
	}{{"duplicate", r.DuplicateIDs}, {"missing", r.MissingIDs}, {"unexpected", r.UnexpectedIDs}, {"differing", r.ValueMismatchIDs}} {
		if len(s.ids) > 0 {
			fmt.Fprintf(&b, "; %s e.g. %s", s.name, strings.Join(s.ids, ", "))
		}
	}
	return b.String()
}

// Compare compares the IDs that should have been written with those that
// were. Both are multisets: an ID listed twice in expected means two outputs
// legitimately share it, so per ID a surplus of actual copies counts as
// duplicates and a deficit as missing. The caller chooses the ID space (a
// plain event ID, or topic and ID joined) so the same function checks one
// topic or many.
func Compare(expected, actual []string) Report {
	r := Report{Expected: len(expected), Actual: len(actual)}
	want, wantOrder := count(expected)
	got, gotOrder := count(actual)
	// Samples follow first-seen order so they point at the earliest
	// offence, which is where a reader looks first.
	for _, id := range gotOrder {
		switch n, w := got[id], want[id]; {
		case w == 0:
			r.Unexpected += n
			r.UnexpectedIDs = sample(r.UnexpectedIDs, id)
		case n > w:
			r.Duplicates += n - w
			r.DuplicateIDs = sample(r.DuplicateIDs, id)
		}
	}
	for _, id := range wantOrder {
		if n, w := got[id], want[id]; n < w {
			r.Missing += w - n
			r.MissingIDs = sample(r.MissingIDs, id)
		}
	}
	return r
}

// count returns how often each ID occurs and the distinct IDs in
// first-seen order.
func count(ids []string) (map[string]int, []string) {
	n := make(map[string]int, len(ids))
	var order []string
	for _, id := range ids {
		if n[id] == 0 {
			order = append(order, id)
		}
		n[id]++
	}
	return n, order
}

// addBeyond counts outputs whose origin lies beyond the checkpoint, read
// from a stopped pipeline, as unexpected.
func (r *Report) addBeyond(ids []string) {
	r.Actual += len(ids)
	r.Unexpected += len(ids)
	r.BeyondCheckpoint += len(ids)
	r.UnexpectedIDs = appendSamples(r.UnexpectedIDs, ids)
}

func sample(ids []string, id string) []string {
	if len(ids) < maxSamples {
		ids = append(ids, id)
	}
	return ids
}
