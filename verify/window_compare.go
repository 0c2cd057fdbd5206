package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/window"
)

// floatTolerance is the relative difference up to which two aggregate
// values are equal. The oracle adds a window's values in offset order as
// the stage does, so time windows agree to the bit; but the stage sums a
// merged session from its sessions' partial sums, in its own order, and a
// sink may store a number in its own decimal form (jsonb, numeric), so
// floats are compared with a tolerance far above rounding error and far
// below any wrong input: a record counted twice or lost changes a sum by a
// whole value, not by 1e-9 of it.
const floatTolerance = 1e-9

// windowExpectation is what a windowed connector's sink must hold at a
// checkpoint: every window the oracle found (closed or still open) and
// the dead letters of the records that failed a stage or came late.
type windowExpectation struct {
	spec    *window.Spec
	results []windowResult
	letters []*connector.Record // Topic: the dead-letter topic
	late    int
	// idleViolations describes implausible idle advances (finish).
	idleViolations []string
}

// recomputeWindowed reads the input below cp (read_committed, offset order
// per partition), runs the connector's stateless stages with its own
// Processor, and hands what they let through to the batch oracle, as the
// stage would get it.
//
// state reads the stage's idle log (idle advances, ends of bounded input)
// from the sink's state (window.ParseIdleLog) for the oracle to replay; it
// must be read after cp.
func recomputeWindowed(ctx context.Context, o Options, base []kgo.Opt, cp connector.Checkpoint, state connector.StateStore) (*windowExpectation, error) {
	spec := o.Spec
	ws := spec.Processor.Window()
	oracle := newWindowOracle(ws, spec.Conf.Name)
	if state != nil {
		for _, tp := range cp.Partitions() {
			entries, err := state.LoadState(ctx, spec.KafkaSrc.Group, tp)
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				// No state topic: nothing was logged (a connector
				// that never committed state), or it was deleted;
				// windows its advances closed then show as
				// unexpected.
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading the idle log of %s: %w", tp, err)
			}
			idle, end, err := window.ParseIdleLog(entries)
			if err != nil {
				return nil, fmt.Errorf("the idle log of %s: %w", tp, err)
			}
			oracle.setIdleLog(tp, idle, end)
		}
	}
	dlq := spec.DLQTopic()
	lateTopic := ""
	if ws.Late == window.LateDeadLetter && spec.Conf.DeadLetterQueue != nil {
		lateTopic = spec.Conf.DeadLetterQueue.Topic
	}
	exp := &windowExpectation{spec: ws}
	letter := func(r *connector.Record, topic string) {
		d := r.Clone()
		d.Topic = topic
		exp.letters = append(exp.letters, d)
	}
	var procErr error
	err := readBelow(ctx, base, cp, func(kr *kgo.Record) {
		if procErr != nil {
			return
		}
		out, err := spec.Processor.Process([]*connector.Record{kafkaRecord(kr)})
		if err != nil {
			procErr = fmt.Errorf("recomputing the connector's stateless stages: %w", err)
			return
		}
		for _, r := range out {
			if dlq != "" && r.Topic == dlq {
				exp.letters = append(exp.letters, r) // a stateless stage's dead letter
				continue
			}
			late, err := oracle.add(r)
			switch {
			case err != nil && dlq == "":
				procErr = fmt.Errorf("recomputing the windows: %w", &connector.RecordError{Origin: r.Origin, Stage: "window", Err: err})
				return
			case err != nil:
				letter(r, dlq)
			case late && lateTopic != "":
				letter(r, lateTopic)
			}
		}
	})
	if procErr != nil {
		return nil, procErr
	}
	if err != nil {
		return nil, err
	}
	exp.idleViolations = oracle.finish(cp, o.Stopped)
	exp.results = oracle.results()
	exp.late = oracle.late
	return exp, nil
}

// windowOutput, storedResult and storedField are the sink's side of the
// comparison, as a WindowProbe (package component) reads it.
type (
	windowOutput = component.WindowOutput
	storedResult = component.StoredResult
	storedField  = component.StoredField
)

// windowCheck says how to compare for one sink.
type windowCheck struct {
	cp      connector.Checkpoint
	stopped bool
	// laterVisible: the sink may show output of batches committed after
	// cp was read (Kafka, PostgreSQL at_least_once); outputs whose origin
	// lies beyond cp are then left out (or, stopped, unexpected), and so
	// is a final result of a window the oracle holds open at cp whose
	// origin is below it: a later batch's records closed it.
	laterVisible bool
	resultDest   func(*connector.Record) string
	letterDest   func(*connector.Record) string
}

// compare compares the sink's outputs with the expectation: the event IDs
// as Compare does (a window emitted twice is a duplicate, one not emitted
// missing, one the input does not explain unexpected), then the value of
// every result the sink keeps with the oracle's.
//
// With emit: updates a window's results are its revisions
// <id>/r1..<id>/rN, N the latest one the sink holds (1 if none): an
// oracle cannot know how many batches touched a window, but every one of
// them must be there once, and the latest must hold the window's value at
// cp. Only revisions below cp are compared, so the latest is cp's.
//
// With late: update (and emit: final) a closed window's results are <id>
// then, for each batch that late records changed it in, <id>/r2..<id>/rN;
// the latest must hold its value at cp.
func (e *windowExpectation) compare(actual []windowOutput, c windowCheck) Report {
	updates := e.spec.Emit == window.EmitUpdates
	lateUpdates := !updates && e.spec.Late == window.LateUpdate
	want := map[string][]*connector.Record{} // qualified ID → results to compare with
	open := map[string]bool{}
	var expected []string
	for _, r := range e.letters {
		expected = append(expected, qualify(c.letterDest(r), r.EventID))
	}
	optional := map[string]*connector.Record{} // closed by an idle advance at cp, maybe after the read
	if !updates && !lateUpdates {
		for _, res := range e.results {
			q := qualify(c.resultDest(res.record), res.record.EventID)
			switch {
			case res.closed:
				expected = append(expected, q)
				want[q] = append(want[q], res.record)
			case res.optional:
				optional[q] = res.record
			default:
				open[q] = true
			}
		}
	}
	if lateUpdates {
		for _, res := range e.results {
			q := qualify(c.resultDest(res.record), res.record.EventID)
			switch {
			case res.optional:
				optional[q] = res.record
			case !res.closed:
				open[q] = true
			}
		}
	}
	var kept, beyond []string
	var compared []windowOutput
	for _, a := range actual {
		q := qualify(a.Dest, a.ID)
		if c.laterVisible && a.Origin != nil &&
			(!c.cp.Contains(*a.Origin) || (open[q] && len(want[q]) == 0)) {
			if c.stopped {
				beyond = append(beyond, q)
			}
			continue
		}
		kept = append(kept, q)
		if a.Stored != nil {
			compared = append(compared, a)
		}
	}
	present := map[string]bool{}
	for _, q := range kept {
		if r, ok := optional[q]; ok && !updates && !lateUpdates && !present[q] {
			expected = append(expected, q)
			want[q] = append(want[q], r)
		}
		present[q] = true
	}
	if lateUpdates {
		latest := map[string]int64{} // qualified base ID → latest revision held
		for _, q := range kept {
			if base, rev, ok := splitRevision(q); ok && rev > latest[base] {
				latest[base] = rev
			}
		}
		for _, res := range e.results {
			base := qualify(c.resultDest(res.record), res.record.EventID)
			if !res.closed && !(res.optional && present[base]) {
				continue
			}
			expected = append(expected, base)
			n := max(latest[base], 1)
			for rev := int64(2); rev <= n; rev++ {
				expected = append(expected, base+"/r"+strconv.FormatInt(rev, 10))
			}
			q := base
			if n > 1 {
				q = base + "/r" + strconv.FormatInt(n, 10)
			}
			want[q] = append(want[q], res.record)
		}
	}
	if updates {
		latest := map[string]int64{} // qualified base ID → latest revision held
		for _, q := range kept {
			if base, rev, ok := splitRevision(q); ok && rev > latest[base] {
				latest[base] = rev
			}
		}
		for _, res := range e.results {
			base := qualify(c.resultDest(res.record), res.record.EventID)
			n := max(latest[base], 1)
			for rev := int64(1); rev <= n; rev++ {
				expected = append(expected, base+"/r"+strconv.FormatInt(rev, 10))
			}
			q := base + "/r" + strconv.FormatInt(n, 10)
			want[q] = append(want[q], res.record)
		}
	}
	rep := Compare(expected, kept)
	rep.addBeyond(beyond)
	rep.Windows = len(want)
	rep.Late = e.late
	rep.IdleLogViolations = len(e.idleViolations)
	for _, v := range e.idleViolations {
		rep.IdleLogViolationIDs = sample(rep.IdleLogViolationIDs, v)
	}
	// Values: a window counts once however many of its copies differ.
	bad := map[string]bool{}
	for _, a := range compared {
		q := qualify(a.Dest, a.ID)
		recs := want[q]
		if len(recs) == 0 || bad[q] {
			continue // unexpected, or not the latest revision: counted above
		}
		diff := ""
		for _, r := range recs { // several only if two windows share an ID
			if diff = storedDiff(a.Stored, r); diff == "" {
				break
			}
		}
		if diff != "" {
			bad[q] = true
			rep.ValueMismatches++
			rep.ValueMismatchIDs = sample(rep.ValueMismatchIDs, q+": "+diff)
		}
	}
	return rep
}

// splitRevision splits "<id>/r<revision>".
func splitRevision(q string) (base string, rev int64, ok bool) {
	i := strings.LastIndex(q, "/r")
	if i < 0 {
		return "", 0, false
	}
	rev, err := strconv.ParseInt(q[i+2:], 10, 64)
	if err != nil || rev < 1 {
		return "", 0, false
	}
	return q[:i], rev, true
}

// diff returns "" when s holds want's result, or says how it differs.
func storedDiff(s *storedResult, want *connector.Record) string {
	if s.HasKey && !bytes.Equal(s.Key, want.Key) {
		return fmt.Sprintf("record key %q, expected %q", s.Key, want.Key)
	}
	if s.HasTs && s.TsMs != want.Timestamp.UnixMilli() {
		return fmt.Sprintf("record timestamp %d, expected %d (the window end)", s.TsMs, want.Timestamp.UnixMilli())
	}
	var exp map[string]any
	if err := json.Unmarshal(want.Value, &exp); err != nil {
		return fmt.Sprintf("the expected value %s is not JSON: %v", want.Value, err)
	}
	if s.Whole != nil {
		var got any
		if err := json.Unmarshal(s.Whole, &got); err != nil || !jsonEqual(exp, got) {
			return fmt.Sprintf("expected %s, stored %s", want.Value, s.Whole)
		}
	}
	if s.AllFields {
		for name := range exp {
			if _, ok := s.Fields[name]; !ok {
				return fmt.Sprintf("field %s missing (expected value %s)", name, want.Value)
			}
		}
	}
	for name, f := range s.Fields {
		if !fieldEqual(f, exp[name]) {
			text := "NULL"
			if f.Text != nil {
				text = *f.Text
			}
			return fmt.Sprintf("field %s: expected %v, stored %s (expected value %s)", name, exp[name], text, want.Value)
		}
	}
	return ""
}

// equal compares a stored field with the expected JSON value.
func fieldEqual(f storedField, want any) bool {
	if f.Text == nil {
		return want == nil
	}
	if f.JSON {
		var got any
		return json.Unmarshal([]byte(*f.Text), &got) == nil && jsonEqual(want, got)
	}
	switch w := want.(type) {
	case string:
		return *f.Text == w
	case float64:
		got, err := strconv.ParseFloat(*f.Text, 64)
		return err == nil && numEqual(w, got)
	case nil:
		return *f.Text == "null"
	default:
		var got any
		return json.Unmarshal([]byte(*f.Text), &got) == nil && jsonEqual(want, got)
	}
}

// jsonEqual compares decoded JSON, numbers within floatTolerance.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && numEqual(x, y)
	default:
		return a == b
	}
}

func numEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= floatTolerance*max(math.Abs(a), math.Abs(b))
}
