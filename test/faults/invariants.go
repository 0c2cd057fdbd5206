package faults

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/verify"
)

// Event IDs of the scenario input. Committed events are "in-<i>", events of
// transactions the input producer aborts are "ab-<i>": they must never
// appear downstream, and their prefix is how the checks recognise them
// whatever the sink kept of them. Event i has key "k-<i mod Keys>"; i grows
// per key in input order, which is what the order check relies on.
const (
	CommittedPrefix = "in-"
	AbortedPrefix   = "ab-"
	Keys            = 97
)

// EventID is the ID of committed input event i.
func EventID(i int) string { return CommittedPrefix + strconv.Itoa(i) }

// AbortedID is the ID of aborted input event i.
func AbortedID(i int) string { return AbortedPrefix + strconv.Itoa(i) }

// Key is the record key of input event i.
func Key(i int) string { return "k-" + strconv.Itoa(i%Keys) }

// IsAborted reports whether an output ID (possibly qualified, as the Redis
// audit log's "<target>:<id>") belongs to an aborted input event.
func IsAborted(id string) bool {
	if j := strings.LastIndexByte(id, ':'); j >= 0 {
		id = id[j+1:]
	}
	return strings.HasPrefix(id, AbortedPrefix)
}

// seq parses the sequence number of a committed event ID, or -1.
func seq(id string) int {
	if j := strings.LastIndexByte(id, ':'); j >= 0 {
		id = id[j+1:]
	}
	if !strings.HasPrefix(id, CommittedPrefix) {
		return -1
	}
	n, err := strconv.Atoi(id[len(CommittedPrefix):])
	if err != nil {
		return -1
	}
	return n
}

// Output is one output record as the sink shows it, in the sink's own order
// within Stream: offset order within an output partition of a Kafka sink,
// application order in the Redis audit log.
type Output struct {
	Stream string
	ID     string
}

// Bound is what a checkpoint of one input partition must be at quiesce:
// at least Low (one past the last committed data record: nothing readable
// left behind) and at most End (the partition's end offset; the offsets in
// between are transaction markers and aborted records no consumer returns).
type Bound struct{ Low, End int64 }

// Observation is everything read about one connector after a scenario.
type Observation struct {
	// Report is `connectd verify`'s answer (the verify package): duplicates,
	// missing and unexpected IDs, and apply counters other than 1.
	Report verify.Report
	// Outputs are the sink's outputs in its order, where it keeps one
	// (Kafka partitions, the Redis audit log); Ordered says whether the sink
	// promises per-key order at all (a PostgreSQL table does not).
	Outputs []Output
	Ordered bool
	// Scanned are output IDs read without order (a PostgreSQL table and its
	// dead-letter table), checked for aborted events only.
	Scanned []string
	// Watched are the IDs a read_committed consumer saw on the output while
	// the faults ran (Kafka sinks), nil if none watched.
	Watched []string
	// Checkpoint is the connector's stored checkpoint (in the sink for
	// offsets-in-sink, the group's offsets otherwise); Bounds what it must
	// be per input partition.
	Checkpoint connector.Checkpoint
	Bounds     map[connector.TopicPartition]Bound
	// Hanging are the connector's transactional IDs the cluster still lists
	// as ongoing after every instance stopped.
	Hanging []string
	// Committed is the number of committed input events: every one is one
	// expected output (a row, a record or a dead letter) in every sink, so
	// verify's expected count (per sink, for a fan-out) must equal it.
	Committed int
	// Poison are the IDs of the committed events that must be dead
	// letters; DeadLetters the IDs each dead-letter destination holds (a
	// topic, a table, the Redis audit log's dlq entries), by destination.
	Poison      []string
	DeadLetters map[string][]string
	// Witness is what an outside reader counted in the sink's output (for
	// an exactly-once files sink, DuckDB over its Parquet), nil if none
	// reads it.
	Witness *Witness

	// Windowed: the connector has a window stage, and its outputs are
	// window results. verify must then expect Windows of them (the windows
	// the input closes, counted by the test from the input alone:
	// eventTimes.closedWindows) besides the dead letters, and the batch
	// oracle must find every value equal. Unrestored are its processes
	// that aggregated without loading window state; Struck the batches
	// the faults undid in the fault window (aborts, fenced, unknown
	// outcomes, abort markers) and Restores the state loads then: after
	// one, the state must have been loaded again.
	Windowed   bool
	Windows    int
	Unrestored []string
	Struck     int
	Restores   int
}

// Witness is an outside reader's count of a sink's output: Rows rows
// with IDs distinct event IDs, where the sink's own commit record (the
// files sink's manifests) lists Listed rows.
type Witness struct {
	Reader            string
	Rows, IDs, Listed int
}

// Findings are the invariant violations of one Observation.
type Findings struct {
	Duplicates, Missing, Unexpected, ApplyCount int
	// BeyondCheckpoint are the unexpected outputs whose origin lies beyond
	// the checkpoint of the stopped pipeline (verify --stopped);
	// Unchecked the input partitions with records and no checkpoint at
	// all, by verify's count.
	BeyondCheckpoint, Unchecked int
	AbortedVisible              int
	OrderViolations             int
	WatcherDuplicates           int
	CheckpointGaps              int
	Hanging                     int
	// Expected is verify's expected count per sink; ExpectedMismatch the
	// sinks whose count is not the committed input's.
	Expected         []int
	ExpectedMismatch int
	// DeadLetters is the number of distinct dead letters per destination;
	// DeadLetterMismatch the poison events missing from one plus the dead
	// letters that are not poison.
	DeadLetters        []int
	DeadLetterMismatch int
	// WitnessMismatch is the outside reader's rows beyond its distinct
	// IDs (duplicates it sees) plus its difference from the rows the sink
	// lists (files it sees that were not committed, or committed rows it
	// cannot see).
	WitnessMismatch int
	// Windowed connectors: Windows is the number of window results
	// verify's oracle expects, ValueMismatches those the sink holds with
	// other values, StateNotRestored the processes that aggregated
	// without loading state (plus one if the faults undid batches and no
	// state was loaded again).
	Windowed         bool
	Windows          int
	ValueMismatches  int
	StateNotRestored int
	Details          []string
}

// Check computes the findings of o.
func Check(o Observation) Findings {
	f := Findings{
		Duplicates:       o.Report.Duplicates,
		Missing:          o.Report.Missing,
		Unexpected:       o.Report.Unexpected,
		ApplyCount:       o.Report.ApplyCountViolations,
		BeyondCheckpoint: o.Report.BeyondCheckpoint,
		Unchecked:        o.Report.UncheckedPartitions,
	}
	if !o.Report.Clean() {
		f.Details = append(f.Details, "verify: "+o.Report.String())
	}
	f.ValueMismatches = o.Report.ValueMismatches
	if o.Windowed {
		f.Windowed, f.Windows = true, o.Report.Windows
		if len(o.Unrestored) > 0 {
			f.StateNotRestored += len(o.Unrestored)
			f.Details = append(f.Details, fmt.Sprintf("window state not restored: processes %s aggregated records without loading any state",
				strings.Join(o.Unrestored, ", ")))
		}
		if o.Struck > 0 && o.Restores == 0 {
			f.StateNotRestored++
			f.Details = append(f.Details, fmt.Sprintf("window state not restored: the faults undid %d batches and no process loaded state again", o.Struck))
		}
	}
	if f.Unchecked > 0 {
		f.Details = append(f.Details, fmt.Sprintf("verify: %d input partitions with records and no checkpoint: %s",
			f.Unchecked, strings.Join(o.Report.UncheckedPartitionIDs, "; ")))
	}
	var aborted []string
	for _, out := range o.Outputs {
		if IsAborted(out.ID) {
			aborted = append(aborted, out.ID)
		}
	}
	for _, lists := range [][]string{o.Scanned, o.Watched} {
		for _, id := range lists {
			if IsAborted(id) {
				aborted = append(aborted, id)
			}
		}
	}
	// One aborted event seen by the sink and by the watcher is one event.
	f.AbortedVisible = len(distinct(aborted))
	if f.AbortedVisible > 0 {
		f.Details = append(f.Details, fmt.Sprintf("aborted input visible downstream: %s", sampleOf(distinct(aborted))))
	}
	if o.Ordered {
		var ex []string
		f.OrderViolations, ex = OrderViolations(o.Outputs)
		if f.OrderViolations > 0 {
			f.Details = append(f.Details, "per-key order broken: "+sampleOf(ex))
		}
	}
	if o.Watched != nil {
		var ex []string
		f.WatcherDuplicates, ex = duplicates(o.Watched)
		if f.WatcherDuplicates > 0 {
			f.Details = append(f.Details, "read_committed watcher saw duplicates: "+sampleOf(ex))
		}
	}
	var gaps []string
	f.CheckpointGaps, gaps = CheckpointGaps(o.Checkpoint, o.Bounds)
	if f.CheckpointGaps > 0 {
		f.Details = append(f.Details, "checkpoint gaps: "+strings.Join(gaps, "; "))
	}
	f.Hanging = len(o.Hanging)
	if f.Hanging > 0 {
		f.Details = append(f.Details, "hanging transactions: "+strings.Join(o.Hanging, ", "))
	}
	if w := o.Witness; w != nil {
		f.WitnessMismatch = w.Rows - w.IDs + max(w.Rows-w.Listed, w.Listed-w.Rows)
		if f.WitnessMismatch > 0 {
			f.Details = append(f.Details, fmt.Sprintf("%s read %d rows with %d distinct event IDs; the sink lists %d rows",
				w.Reader, w.Rows, w.IDs, w.Listed))
		}
	}
	checkCounts(o, &f)
	return f
}

// checkCounts holds verify's own expectation to the input: one expected
// output per committed input event in every sink (a verify that
// recomputed too few would pass a pipeline that lost events), and the dead
// letters of every destination to exactly the poison events.
func checkCounts(o Observation, f *Findings) {
	reps := o.Report.Sinks
	if len(reps) == 0 {
		reps = []verify.Report{o.Report}
	}
	if o.Windowed {
		rep := o.Report
		f.Expected = append(f.Expected, rep.Expected)
		if want := o.Windows + len(o.Poison); rep.Expected != want || rep.Windows != o.Windows {
			f.ExpectedMismatch++
			f.Details = append(f.Details, fmt.Sprintf("verify expected %d outputs (%d windows), the input closes %d windows and has %d poison events",
				rep.Expected, rep.Windows, o.Windows, len(o.Poison)))
		}
		reps = nil
	}
	for _, rep := range reps {
		f.Expected = append(f.Expected, rep.Expected)
		if rep.Expected != o.Committed {
			f.ExpectedMismatch++
			where := ""
			if rep.Sink != "" {
				where = " in " + rep.Sink
			}
			f.Details = append(f.Details, fmt.Sprintf("verify expected %d outputs%s, the input has %d committed events", rep.Expected, where, o.Committed))
		}
	}
	poison := map[string]bool{}
	for _, id := range o.Poison {
		poison[id] = true
	}
	dests := make([]string, 0, len(o.DeadLetters))
	for d := range o.DeadLetters {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	for _, d := range dests {
		got := distinct(o.DeadLetters[d])
		f.DeadLetters = append(f.DeadLetters, len(got))
		held := map[string]bool{}
		var extra, missing []string
		for _, id := range got {
			held[id] = true
			if !poison[id] {
				extra = append(extra, id)
			}
		}
		for _, id := range o.Poison {
			if !held[id] {
				missing = append(missing, id)
			}
		}
		if n := len(extra) + len(missing); n > 0 {
			f.DeadLetterMismatch += n
			f.Details = append(f.Details, fmt.Sprintf("dead letters in %s: %d of %d poison events missing (%s), %d not poison (%s)",
				d, len(missing), len(o.Poison), sampleOf(missing), len(extra), sampleOf(extra)))
		}
	}
}

// ExpectedCell is the "expected" column: "= input" when every sink's
// expected count is the committed input's.
func (f Findings) ExpectedCell() string {
	if f.ExpectedMismatch == 0 && f.Windowed {
		return fmt.Sprintf("= input: %d windows", f.Windows)
	}
	if f.ExpectedMismatch == 0 {
		return "= input"
	}
	return "**" + joinInts(f.Expected) + "**"
}

// DeadLetterCell is the "dead letters" column: the distinct dead letters
// per destination, bold unless they are the poison events.
func (f Findings) DeadLetterCell() string {
	if f.DeadLetterMismatch == 0 {
		return joinInts(f.DeadLetters)
	}
	return "**" + joinInts(f.DeadLetters) + "**"
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, "+")
}

// ExactlyOnce reports whether f shows exactly-once delivery: nothing lost,
// duplicated, invented, re-applied, reordered, leaked from an aborted
// transaction or left open.
func (f Findings) ExactlyOnce() bool {
	return f.Duplicates == 0 && f.Missing == 0 && f.Unexpected == 0 && f.ApplyCount == 0 &&
		f.AbortedVisible == 0 && f.OrderViolations == 0 && f.WatcherDuplicates == 0 &&
		f.CheckpointGaps == 0 && f.Unchecked == 0 && f.Hanging == 0 && f.ExpectedMismatch == 0 && f.DeadLetterMismatch == 0 &&
		f.ValueMismatches == 0 && f.StateNotRestored == 0 && f.WitnessMismatch == 0
}

// AtLeastOnce reports whether f shows at-least-once delivery: duplicates,
// re-applications and the reordering replays cause are allowed; loss,
// invention, aborted input, an unfinished checkpoint, open transactions and
// dead letters other than the poison events are not.
func (f Findings) AtLeastOnce() bool {
	return f.Missing == 0 && f.Unexpected == 0 && f.AbortedVisible == 0 && f.CheckpointGaps == 0 && f.Unchecked == 0 &&
		f.Hanging == 0 && f.ExpectedMismatch == 0 && f.DeadLetterMismatch == 0
}

// OrderViolations counts outputs that do not follow their key's previous
// output in input order (a sequence number not above the key's last one in
// the same stream), returning up to 10 examples. Aborted and foreign IDs are
// the other checks' business and skipped here.
func OrderViolations(outs []Output) (int, []string) {
	type sk struct {
		stream string
		key    int
	}
	last := map[sk]int{}
	n := 0
	var ex []string
	for _, o := range outs {
		i := seq(o.ID)
		if i < 0 {
			continue
		}
		k := sk{o.Stream, i % Keys}
		if prev, ok := last[k]; ok && i <= prev {
			n++
			if len(ex) < 10 {
				ex = append(ex, fmt.Sprintf("%s after %s in %s", o.ID, EventID(prev), o.Stream))
			}
		}
		last[k] = i
	}
	return n, ex
}

// CheckpointGaps counts input partitions whose checkpoint is missing, below
// Low (records left unread: lag) or beyond End (an offset that does not
// exist), with a description of each.
func CheckpointGaps(cp connector.Checkpoint, bounds map[connector.TopicPartition]Bound) (int, []string) {
	tps := make([]connector.TopicPartition, 0, len(bounds))
	for tp := range bounds {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	var out []string
	for _, tp := range tps {
		b := bounds[tp]
		got, ok := cp[tp]
		switch {
		case !ok && b.Low > 0:
			out = append(out, fmt.Sprintf("%s: no checkpoint, want %d..%d", tp, b.Low, b.End))
		case ok && got < b.Low:
			out = append(out, fmt.Sprintf("%s: checkpoint %d below %d (lag %d)", tp, got, b.Low, b.Low-got))
		case ok && got > b.End:
			out = append(out, fmt.Sprintf("%s: checkpoint %d beyond the end offset %d", tp, got, b.End))
		}
	}
	return len(out), out
}

// duplicates counts copies beyond the first of each ID.
func duplicates(ids []string) (int, []string) {
	seen := make(map[string]bool, len(ids))
	n := 0
	var ex []string
	for _, id := range ids {
		if seen[id] {
			n++
			if len(ex) < 10 {
				ex = append(ex, id)
			}
		}
		seen[id] = true
	}
	return n, ex
}

func distinct(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if j := strings.LastIndexByte(id, ':'); j >= 0 {
			id = id[j+1:]
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func sampleOf(ids []string) string {
	if len(ids) > 10 {
		return strings.Join(ids[:10], ", ") + fmt.Sprintf(" (+%d)", len(ids)-10)
	}
	return strings.Join(ids, ", ")
}
