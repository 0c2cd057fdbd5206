package verify

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/window"
)

// in is one input record of the oracle's tests.
type in struct {
	part   int32
	key    string
	ts     int64 // ms
	amount float64
}

func compile(t *testing.T, kind string, size, advance, gap, ooo, lateness time.Duration) *window.Spec {
	t.Helper()
	var c window.Config
	c.Time = "value.ts"
	c.Window.Type, c.Window.Size, c.Window.Advance, c.Window.Gap = kind, size, advance, gap
	c.Watermark.MaxOutOfOrderness = ooo
	c.AllowedLateness = lateness
	c.Late = window.LateDrop
	c.Aggregate = map[string]string{"n": "count()", "total": "sum(value.amount)", "hi": "max(value.amount)",
		"lo": "min(value.amount)", "mean": "avg(value.amount)"}
	spec, err := window.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// records turns ins into input records, offsets counted per partition.
func records(ins []in) []*connector.Record {
	next := map[int32]int64{}
	out := make([]*connector.Record, len(ins))
	for i, x := range ins {
		out[i] = &connector.Record{Key: []byte(x.key),
			Value:   fmt.Appendf(nil, `{"ts":%d,"amount":%v}`, x.ts, x.amount),
			EventID: fmt.Sprintf("in-%d", i),
			Origin:  connector.Origin{Topic: "in", Partition: x.part, Offset: next[x.part]}}
		next[x.part]++
	}
	return out
}

// hand is a window computed by hand: its event ID (connector "c"), its
// values in the spec's aggregate order (hi, lo, mean, n, total) as the
// result renders them, its end, and whether it is closed at the end.
type hand struct {
	id     string
	end    int64 // sessions; time windows end at start + size
	closed bool
	n      int64
	vals   []float64 // sum, min, max of the amounts
}

func TestWindowOracleByHand(t *testing.T) {
	tests := []struct {
		name string
		spec *window.Spec
		ins  []in
		want []hand
		late int
	}{
		{
			// W_p after each record: -1000, 10000 (closes a/0), 10000, 10000, 23000 (closes a/10000).
			name: "tumbling 10s, out-of-orderness 2s",
			spec: compile(t, window.Tumbling, 10*time.Second, 0, 0, 2*time.Second, 0),
			ins: []in{
				{0, "a", 1000, 1}, {0, "a", 12000, 2},
				{0, "a", 9000, 4}, // a/0 closed at 10000: late
				{0, "a", 11000, 8},
				{1, "c", 50000, 32}, // partition 1's watermark closes nothing of partition 0
				{0, "b", 25000, 16},
				{0, "a", -500, 64}, // before the epoch, and late
			},
			want: []hand{
				{"c/a/0", 0, true, 1, []float64{1, 1, 1}},
				{"c/a/10000", 0, true, 2, []float64{10, 2, 8}},
				{"c/b/20000", 0, false, 1, []float64{16, 16, 16}},
				{"c/c/50000", 0, false, 1, []float64{32, 32, 32}},
			},
			late: 2,
		},
		{
			// Windows [s, s+10s), s a multiple of 5s; closed when
			// end + 2s <= W_p: W_p 7000, 12000 (closes [0,10000)).
			name: "hopping 10s every 5s, lateness 2s",
			spec: compile(t, window.Hopping, 10*time.Second, 5*time.Second, 0, 0, 2*time.Second),
			ins: []in{
				{0, "a", 7000, 1},
				{0, "a", 12000, 2},
				{0, "a", 9000, 4}, // [0,10000) closed, [5000,15000) open: not late
				{0, "a", 3000, 8}, // [-5000,5000) and [0,10000) closed: late
			},
			want: []hand{
				{"c/a/0", 0, true, 1, []float64{1, 1, 1}},
				{"c/a/5000", 0, false, 3, []float64{7, 1, 4}},
				{"c/a/10000", 0, false, 1, []float64{2, 2, 2}},
			},
			late: 1,
		},
		{
			// Gap 5s, out-of-orderness 1s. W_p: 0, 7000 (closes a/1000),
			// 7000, 19000 (closes a/4000).
			name: "session gap 5s: a closed session takes nothing in",
			spec: compile(t, window.Session, 0, 0, 5*time.Second, time.Second, 0),
			ins: []in{
				{0, "a", 1000, 1},
				{0, "a", 8000, 2},
				{0, "a", 4000, 4},   // [4000,9000) merges [8000,13000) only: [1000,6000) is closed
				{0, "a", 20000, 8},  // closes [4000,13000)
				{0, "a", 14000, 16}, // [14000,19000) closed: late
			},
			want: []hand{
				{"c/a/1000", 6000, true, 1, []float64{1, 1, 1}},
				{"c/a/4000", 13000, true, 2, []float64{6, 2, 4}},
				{"c/a/20000", 25000, false, 1, []float64{8, 8, 8}},
			},
			late: 1,
		},
		{
			// Out-of-orderness 10s keeps both sessions open until the
			// bridging record merges them: [1000,6000) + [9000,14000) +
			// [5000,10000) = [1000,14000), closed by W_p 20000.
			name: "session gap 5s: a record bridging two open sessions",
			spec: compile(t, window.Session, 0, 0, 5*time.Second, 10*time.Second, 0),
			ins: []in{
				{0, "b", 1000, 1}, {0, "b", 9000, 2}, {0, "b", 5000, 4},
				{0, "b", 30000, 8},
			},
			want: []hand{
				{"c/b/1000", 14000, true, 3, []float64{7, 1, 4}},
				{"c/b/30000", 35000, false, 1, []float64{8, 8, 8}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newWindowOracle(tt.spec, "c")
			for _, r := range records(tt.ins) {
				if _, err := o.add(r); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, res := range o.results() {
				got = append(got, fmt.Sprintf("%s closed=%v %s", res.record.EventID, res.closed, res.record.Value))
			}
			var want []string
			for _, h := range tt.want {
				parts := strings.Split(h.id, "/")
				var start int64
				fmt.Sscan(parts[2], &start)
				end := h.end
				if end == 0 {
					end = start + tt.spec.Size
				}
				// Aggregates in name order: hi, lo, mean, n, total.
				vals := []float64{h.vals[2], h.vals[1], h.vals[0], 0, h.vals[0]}
				id := tt.spec.ResultID("c", parts[1], start, end) // a session's ID names its end too
				want = append(want, fmt.Sprintf("%s closed=%v %s", id, h.closed, tt.spec.ResultValue(parts[1], start, end, h.n, vals)))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("windows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if o.late != tt.late {
				t.Fatalf("%d late records, want %d", o.late, tt.late)
			}
		})
	}
}

// A merged session runs from its first event to its last event + gap,
// and its result's origin is the last record added.
func TestWindowOracleSessionOrigins(t *testing.T) {
	spec := compile(t, window.Session, 0, 0, 5*time.Second, 10*time.Second, 0)
	o := newWindowOracle(spec, "c")
	for _, r := range records([]in{{0, "b", 1000, 1}, {0, "b", 9000, 2}, {0, "b", 5000, 4}, {0, "b", 30000, 8}}) {
		if _, err := o.add(r); err != nil {
			t.Fatal(err)
		}
	}
	res := o.results()
	if len(res) != 2 || !strings.Contains(string(res[0].record.Value), `"window_start":"1970-01-01T00:00:01.000Z","window_end":"1970-01-01T00:00:14.000Z"`) {
		t.Fatalf("merged session: %s", res[0].record.Value)
	}
	if res[0].record.Origin.Offset != 2 || res[1].record.Origin.Offset != 3 {
		t.Fatalf("origins %v %v, want the last records added (offsets 2 and 3)", res[0].record.Origin, res[1].record.Origin)
	}
}

// windowedConnector decodes a windowed connector writing to Kafka topic
// out, its late records and failed records to dlq.
func windowedConnector(t *testing.T, window, emit string) *pipeline.Spec {
	return windowedConnectorTo(t, window, emit, "{type: kafka, topic: out}")
}

// windowedConnectorTo is windowedConnector with another sink.
func windowedConnectorTo(t *testing.T, window, emit, sink string) *pipeline.Spec {
	t.Helper()
	yaml := strings.ReplaceAll(`
kafka:
	brokers: [127.0.0.1:1]
connectors:
	- name: win
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in]}
		transforms:
			- type: window
				time: value.ts
				window: WINDOW
				watermark: {max_out_of_orderness: 2s}
				allowed_lateness: 1s
				emit: EMIT
				late: LATE
				aggregate:
					n: count()
					total: sum(value.amount)
					hi: max(value.amount)
					lo: min(value.amount)
					mean: avg(value.amount)
		sink: SINK
`, "\t", "  ")
	late := "dead_letter"
	if e, l, ok := strings.Cut(emit, "+late:"); ok { // "final+late:update, late_retention: 3s"
		emit, late = e, l
	}
	yaml = strings.NewReplacer("WINDOW", window, "EMIT", emit, "LATE", late, "SINK", sink).Replace(yaml)
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := pipeline.Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// randomInput is n records over 2 partitions and 12 keys, event times
// drifting forward with jitter up to 9s back (out of order, some late),
// fractional amounts (float sums), and every 97th record's amount a
// string, which the window stage dead-letters.
func randomInput(n int, seed uint64) []*connector.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	next := map[int32]int64{}
	clock := map[int32]int64{}
	out := make([]*connector.Record, 0, n)
	for i := range n {
		p := int32(rng.IntN(2))
		clock[p] += int64(rng.IntN(400))
		ts := clock[p] - int64(rng.IntN(9000))
		key := fmt.Sprintf("k%d-%d", p, rng.IntN(6))
		amount := fmt.Sprintf("%.3f", rng.Float64()*100)
		if i%97 == 96 {
			amount = `"x"`
		}
		out = append(out, &connector.Record{Key: []byte(key),
			Value:   fmt.Appendf(nil, `{"ts":%d,"amount":%s}`, ts, amount),
			Headers: []connector.Header{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
			Origin:  connector.Origin{Topic: "in", Partition: p, Offset: next[p]}})
		next[p]++
	}
	return out
}

// runStage runs the connector's real window stage (pipeline.Windowed,
// state in memory) over recs in batches of batch records, and returns
// what it writes: dead letters and results, state records left out.
func runStage(t testing.TB, spec *pipeline.Spec, recs []*connector.Record, batch int) []*connector.Record {
	t.Helper()
	var out []*connector.Record
	eachBatch(t, spec, recs, batch, func(b []*connector.Record, _ int) { out = append(out, b...) })
	return out
}

// eachBatch runs the stage as runStage does, handing each batch's output
// and the number of input records it has consumed to f.
func eachBatch(t testing.TB, spec *pipeline.Spec, recs []*connector.Record, batch int, f func(out []*connector.Record, upTo int)) {
	t.Helper()
	w := spec.Processor.NewWindowed("ns", nil)
	for from := 0; from < len(recs); from += batch {
		to := min(from+batch, len(recs))
		in := make([]*connector.Record, 0, batch)
		for _, r := range recs[from:to] {
			in = append(in, r.Clone())
		}
		letters, err := w.Process(in)
		if err != nil {
			t.Fatal(err)
		}
		results, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		var out []*connector.Record
		for _, r := range append(letters, results...) {
			if r.Kind == connector.DataRecord {
				out = append(out, r)
			}
		}
		f(out, to)
	}
}

// expectation is recomputeWindowed without Kafka: the same steps over recs.
func expectation(t testing.TB, spec *pipeline.Spec, recs []*connector.Record) *windowExpectation {
	t.Helper()
	ws := spec.Processor.Window()
	o := newWindowOracle(ws, spec.Conf.Name)
	exp := &windowExpectation{spec: ws}
	for _, in := range recs {
		out, err := spec.Processor.Process([]*connector.Record{in.Clone()})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out {
			if r.Topic == "dlq" {
				exp.letters = append(exp.letters, r)
				continue
			}
			late, err := o.add(r)
			if err != nil || (late && spec.Processor.Window().Late == window.LateDeadLetter) {
				d := r.Clone()
				d.Topic = "dlq"
				exp.letters = append(exp.letters, d)
			}
		}
	}
	exp.results, exp.late = o.results(), o.late
	return exp
}

// asKafka is what a Kafka sink holds of the stage's output.
func asKafka(recs []*connector.Record) []windowOutput {
	out := make([]windowOutput, len(recs))
	for i, r := range recs {
		origin := r.Origin
		out[i] = windowOutput{Dest: "out", ID: r.EventID, Origin: &origin}
		if r.Topic != "" {
			out[i].Dest = r.Topic
		} else {
			out[i].Stored = &storedResult{Whole: r.Value, Key: r.Key, HasKey: true, TsMs: r.Timestamp.UnixMilli(), HasTs: true}
		}
	}
	return out
}

func kafkaCheck(cp connector.Checkpoint, stopped bool) windowCheck {
	return windowCheck{cp: cp, stopped: stopped, laterVisible: true,
		resultDest: func(*connector.Record) string { return "out" },
		letterDest: func(r *connector.Record) string { return r.Topic }}
}

func all(recs []*connector.Record) connector.Checkpoint {
	cp := connector.Checkpoint{}
	for _, r := range recs {
		tp := connector.TopicPartition{Topic: r.Origin.Topic, Partition: r.Origin.Partition}
		cp[tp] = max(cp[tp], r.Origin.Offset+1)
	}
	return cp
}

// The oracle agrees with the real stage, for every window type and emit
// mode, whatever the batch size; and each injected fault of the output is
// caught: a wrong count, a wrong sum within and beyond the tolerance, a
// window emitted twice, a window missing, a late record missing from the
// dead letters.
func TestWindowOracleAgreesWithTheStage(t *testing.T) {
	cases := []struct{ window, emit string }{
		{"{type: tumbling, size: 5s}", "final"},
		{"{type: hopping, size: 6s, advance: 2s}", "final"},
		{"{type: session, gap: 1500ms}", "final"},
		{"{type: tumbling, size: 5s}", "updates"},
		{"{type: hopping, size: 6s, advance: 2s}", "final+late:update\n        late_retention: 1s"},
	}
	for _, c := range cases {
		t.Run(c.window+" "+c.emit, func(t *testing.T) {
			spec := windowedConnector(t, c.window, c.emit)
			input := randomInput(3000, 7)
			exp := expectation(t, spec, input)
			cp := all(input)
			for _, batch := range []int{1, 37, 3000} {
				rep := exp.compare(asKafka(runStage(t, spec, input, batch)), kafkaCheck(cp, true))
				if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 || rep.Expected != rep.Actual {
					t.Fatalf("batches of %d: %s, want clean with windows and late records", batch, rep)
				}
				t.Logf("batches of %d: %s", batch, rep)
			}
			if c.emit == "updates" {
				updateFaults(t, exp, runStage(t, spec, input, 50), cp)
				return
			}
			if spec.Processor.Window().Late == window.LateUpdate {
				lateUpdateFaults(t, exp, runStage(t, spec, input, 50), cp)
				return
			}
			out := runStage(t, spec, input, 50)
			var results []int
			for i, r := range out {
				if r.Topic == "" {
					results = append(results, i)
				}
			}
			victim := results[len(results)/2]
			id := out[victim].EventID
			mutate := func(f func([]*connector.Record) []*connector.Record) Report {
				recs := make([]*connector.Record, len(out))
				for i, r := range out {
					recs[i] = r.Clone()
				}
				return exp.compare(asKafka(f(recs)), kafkaCheck(cp, true))
			}
			base := exp.compare(asKafka(out), kafkaCheck(cp, true))
			n := base.Expected

			rep := mutate(func(rs []*connector.Record) []*connector.Record {
				rs[victim].Value = replaceField(t, rs[victim].Value, "n", func(v float64) float64 { return v + 1 })
				return rs
			})
			if rep.ValueMismatches != 1 || rep.Clean() || len(rep.ValueMismatchIDs) != 1 || !strings.HasPrefix(rep.ValueMismatchIDs[0], "out:"+id+": ") {
				t.Fatalf("wrong count: %s, want one value mismatch naming %s", rep, id)
			}
			t.Logf("wrong count: %s", rep.ValueMismatchIDs[0])

			rep = mutate(func(rs []*connector.Record) []*connector.Record {
				rs[victim].Value = replaceField(t, rs[victim].Value, "total", func(v float64) float64 { return v * (1 + 1e-12) })
				return rs
			})
			if !rep.Clean() {
				t.Fatalf("a sum off by 1e-12 of itself: %s, want clean (tolerance 1e-9)", rep)
			}
			rep = mutate(func(rs []*connector.Record) []*connector.Record {
				rs[victim].Value = replaceField(t, rs[victim].Value, "total", func(v float64) float64 { return v + 0.001 })
				return rs
			})
			if rep.ValueMismatches != 1 {
				t.Fatalf("a sum off by 0.001: %s, want one value mismatch", rep)
			}

			rep = mutate(func(rs []*connector.Record) []*connector.Record { return append(rs, rs[victim]) })
			if want := (Report{Expected: n, Actual: n + 1, Duplicates: 1, DuplicateIDs: []string{"out:" + id}}); !sameWindowCounts(rep, want) {
				t.Fatalf("window emitted twice: %s, want %s", rep, want)
			}
			rep = mutate(func(rs []*connector.Record) []*connector.Record { return slices.Delete(rs, victim, victim+1) })
			if want := (Report{Expected: n, Actual: n - 1, Missing: 1, MissingIDs: []string{"out:" + id}}); !sameWindowCounts(rep, want) {
				t.Fatalf("window missing: %s, want %s", rep, want)
			}
			rep = mutate(func(rs []*connector.Record) []*connector.Record {
				for i, r := range rs {
					if r.Topic == "dlq" && strings.Contains(r.Headers[len(r.Headers)-1].Key, "late") {
						return slices.Delete(rs, i, i+1)
					}
				}
				t.Fatal("no late record in the dead letters")
				return nil
			})
			if rep.Missing != 1 || !strings.HasPrefix(rep.MissingIDs[0], "dlq:in-") {
				t.Fatalf("late record missing from the dead letters: %s", rep)
			}
		})
	}
}

// A window still open at the checkpoint emitted with an origin below it
// is a later batch's (a running pipeline's check leaves it out); on a
// stopped pipeline nothing can explain it.
func TestWindowOpenAtTheCheckpoint(t *testing.T) {
	spec := windowedConnector(t, "{type: tumbling, size: 5s}", "final")
	input := randomInput(2000, 3)
	cut := 1500 // the checkpoint: the first 1,500 records
	out := runStage(t, spec, input[:cut], 100)
	cp := all(input[:cut])
	exp := expectation(t, spec, input[:cut])
	var early *connector.Record
	for _, res := range exp.results {
		if !res.closed {
			early = res.record
			break
		}
	}
	if early == nil {
		t.Fatal("no window open at the checkpoint")
	}
	actual := append(asKafka(out), asKafka([]*connector.Record{early})...)
	live := exp.compare(actual, kafkaCheck(cp, false))
	if !live.Clean() {
		t.Fatalf("running: %s, want clean", live)
	}
	stopped := exp.compare(actual, kafkaCheck(cp, true))
	if stopped.Clean() || !slices.Contains(stopped.UnexpectedIDs, "out:"+early.EventID) {
		t.Fatalf("stopped: %s, want %s unexpected", stopped, early.EventID)
	}
	t.Logf("running: %s; stopped: %s", live, stopped)
}

func TestStoredFieldsAndRevisions(t *testing.T) {
	want := &connector.Record{Value: []byte(`{"key":"a","window_start":"1970-01-01T00:00:00.000Z","n":3,"total":0.30000000000000004,"hi":null}`)}
	text := func(s string) *string { return &s }
	for _, tc := range []struct {
		stored storedResult
		equal  bool
	}{
		{storedResult{Whole: []byte(`{"hi": null, "n": 3.0, "total": 0.3, "key": "a", "window_start": "1970-01-01T00:00:00.000Z"}`)}, true},
		{storedResult{Whole: []byte(`{"hi": null, "n": 4, "total": 0.3, "key": "a", "window_start": "1970-01-01T00:00:00.000Z"}`)}, false},
		{storedResult{Whole: []byte(`{"n": 3, "total": 0.3, "key": "a", "window_start": "1970-01-01T00:00:00.000Z"}`)}, false},
		{storedResult{Fields: map[string]storedField{"key": {Text: text("a")}, "n": {Text: text("3")}, "total": {Text: text("0.3")}}}, true},
		{storedResult{Fields: map[string]storedField{"n": {Text: text("3"), JSON: true}, "hi": {Text: nil}}}, true},
		{storedResult{Fields: map[string]storedField{"key": {Text: text(`"a"`), JSON: true}}}, true},
		{storedResult{Fields: map[string]storedField{"key": {Text: text(`"a"`)}}}, false},
		{storedResult{Fields: map[string]storedField{"n": {Text: text("2")}}}, false},
		{storedResult{Fields: map[string]storedField{"n": {Text: text("3")}}, AllFields: true}, false},
	} {
		if got := storedDiff(&tc.stored, want) == ""; got != tc.equal {
			t.Errorf("%+v: equal %v, want %v (%s)", tc.stored, got, tc.equal, storedDiff(&tc.stored, want))
		}
	}
	for q, want := range map[string]int64{"out:c/k/0/r3": 3, "out:c/k/0": 0, "out:c/k/r/0/r12": 12, "out:c/k/0/rx": 0} {
		if _, rev, _ := splitRevision(q); rev != want {
			t.Errorf("splitRevision(%q) = %d, want %d", q, rev, want)
		}
	}
}

// replaceField rewrites one numeric field of a JSON result.
func replaceField(t *testing.T, value []byte, field string, f func(float64) float64) []byte {
	t.Helper()
	s := string(value)
	i := strings.Index(s, `"`+field+`":`)
	if i < 0 {
		t.Fatalf("no field %s in %s", field, s)
	}
	i += len(field) + 3
	j := i + strings.IndexAny(s[i:], ",}")
	var v float64
	if _, err := fmt.Sscan(s[i:j], &v); err != nil {
		t.Fatal(err)
	}
	return []byte(s[:i] + fmt.Sprint(f(v)) + s[j:])
}

func sameWindowCounts(got, want Report) bool {
	counts := func(r Report) [6]int {
		return [6]int{r.Expected, r.Actual, r.Duplicates, r.Missing, r.Unexpected, r.ValueMismatches}
	}
	return counts(got) == counts(want) &&
		(want.DuplicateIDs == nil || slices.Equal(got.DuplicateIDs, want.DuplicateIDs)) &&
		(want.MissingIDs == nil || slices.Equal(got.MissingIDs, want.MissingIDs))
}

// updateFaults injects faults into emit: updates output: a revision lost,
// a revision written twice, the latest revision with a wrong count.
func updateFaults(t *testing.T, exp *windowExpectation, out []*connector.Record, cp connector.Checkpoint) {
	t.Helper()
	// A window with at least two revisions: its first and its latest.
	latest := map[string]int{}
	first := map[string]int{}
	for i, r := range out {
		if r.Topic != "" {
			continue
		}
		base, _, _ := splitRevision(r.EventID)
		if _, ok := first[base]; !ok {
			first[base] = i
		}
		latest[base] = i
	}
	var base string
	for b, i := range first {
		if latest[b] != i && (base == "" || b < base) {
			base = b
		}
	}
	if base == "" {
		t.Fatal("no window with two revisions")
	}
	mutate := func(f func([]*connector.Record) []*connector.Record) Report {
		recs := make([]*connector.Record, len(out))
		for i, r := range out {
			recs[i] = r.Clone()
		}
		return exp.compare(asKafka(f(recs)), kafkaCheck(cp, true))
	}
	n := exp.compare(asKafka(out), kafkaCheck(cp, true)).Expected
	r1 := "out:" + out[first[base]].EventID
	rep := mutate(func(rs []*connector.Record) []*connector.Record { return slices.Delete(rs, first[base], first[base]+1) })
	if want := (Report{Expected: n, Actual: n - 1, Missing: 1, MissingIDs: []string{r1}}); !sameWindowCounts(rep, want) {
		t.Fatalf("revision lost: %s, want %s", rep, want)
	}
	rep = mutate(func(rs []*connector.Record) []*connector.Record { return append(rs, rs[first[base]]) })
	if want := (Report{Expected: n, Actual: n + 1, Duplicates: 1, DuplicateIDs: []string{r1}}); !sameWindowCounts(rep, want) {
		t.Fatalf("revision written twice: %s, want %s", rep, want)
	}
	rep = mutate(func(rs []*connector.Record) []*connector.Record {
		rs[latest[base]].Value = replaceField(t, rs[latest[base]].Value, "n", func(v float64) float64 { return v + 1 })
		return rs
	})
	if rep.ValueMismatches != 1 || !strings.HasPrefix(rep.ValueMismatchIDs[0], "out:"+out[latest[base]].EventID+": ") {
		t.Fatalf("latest revision with a wrong count: %s", rep)
	}
	t.Logf("updates: a lost revision, a repeated one and a wrong latest one caught (%s)", rep.ValueMismatchIDs[0])
}

// lateUpdateFaults: with late: update, a window's revisions after its first
// emission must all be there and the latest must hold its value: a lost
// revision and a wrong latest one are caught.
func lateUpdateFaults(t *testing.T, exp *windowExpectation, out []*connector.Record, cp connector.Checkpoint) {
	t.Helper()
	revised := -1
	for i, r := range out {
		if r.Topic == "" && strings.HasSuffix(r.EventID, "/r2") {
			revised = i
			break
		}
	}
	if revised < 0 {
		t.Fatal("no window was revised by a late record: the input does not exercise late: update")
	}
	lost := slices.Delete(slices.Clone(out), revised, revised+1)
	if rep := exp.compare(asKafka(lost), kafkaCheck(cp, true)); rep.Clean() {
		t.Fatalf("a lost revision %s went unnoticed: %s", out[revised].EventID, rep)
	}
	// The latest revision of that window, made wrong.
	base := strings.TrimSuffix(out[revised].EventID, "/r2")
	last := revised
	for i, r := range out {
		if r.Topic == "" && strings.HasPrefix(r.EventID, base+"/r") {
			last = i
		}
	}
	wrong := make([]*connector.Record, len(out))
	for i, r := range out {
		wrong[i] = r.Clone()
	}
	wrong[last].Value = replaceField(t, wrong[last].Value, "n", func(v float64) float64 { return v + 1 })
	if rep := exp.compare(asKafka(wrong), kafkaCheck(cp, true)); rep.ValueMismatches != 1 {
		t.Fatalf("a wrong latest revision %s: %s, want one value mismatch", out[last].EventID, rep)
	}
}

// The oracle replays the stage's idle log: an advance logged at offset o
// raises W_p before p's record at o (which is then late); one logged at
// the checkpoint makes the windows it closes optional unless the pipeline
// is stopped; one no partition's watermark explains is reported.
func TestWindowOracleReplaysTheIdleLog(t *testing.T) {
	spec := compile(t, window.Tumbling, time.Second, 0, 0, 0, 0)
	p1 := connector.TopicPartition{Topic: "in", Partition: 1}
	input := records([]in{{0, "a", 500, 1}, {1, "b", 600, 2}, {0, "a", 2500, 3}, {1, "b", 700, 4}, {1, "b", 2600, 5}})
	run := func(log map[int64]int64, upTo int, cp connector.Checkpoint, strict bool) (closed, optional []string, late int, bad []string) {
		t.Helper()
		o := newWindowOracle(spec, "c")
		o.setIdleLog(p1, log, nil)
		for _, r := range input[:upTo] {
			if _, err := o.add(r); err != nil {
				t.Fatal(err)
			}
		}
		bad = o.finish(cp, strict)
		for _, res := range o.results() {
			switch {
			case res.closed:
				closed = append(closed, res.record.EventID)
			case res.optional:
				optional = append(optional, res.record.EventID)
			}
		}
		return closed, optional, o.late, bad
	}
	p0 := connector.TopicPartition{Topic: "in", Partition: 0}
	log := map[int64]int64{1: 2500}

	// The advance at p1's offset 1 is in the input: record 700 is late.
	closed, optional, late, bad := run(log, 5, connector.Checkpoint{p0: 2, p1: 3}, false)
	if fmt.Sprint(closed) != "[c/a/0 c/b/0]" || optional != nil || late != 1 || bad != nil {
		t.Fatalf("replayed: closed %v, optional %v, late %d, bad %v", closed, optional, late, bad)
	}
	// Without it, 700 is aggregated (2600 closes the window later).
	closed, _, late, _ = run(nil, 5, connector.Checkpoint{p0: 2, p1: 3}, false)
	if fmt.Sprint(closed) != "[c/a/0 c/b/0]" || late != 0 {
		t.Fatalf("no log: closed %v, late %d", closed, late)
	}
	// Logged at the checkpoint (p1 has had no record since): optional
	// while running, closed when stopped.
	closed, optional, _, _ = run(log, 3, connector.Checkpoint{p0: 2, p1: 1}, false)
	if fmt.Sprint(closed) != "[c/a/0]" || fmt.Sprint(optional) != "[c/b/0]" {
		t.Fatalf("at the checkpoint, running: closed %v, optional %v", closed, optional)
	}
	closed, optional, _, _ = run(log, 3, connector.Checkpoint{p0: 2, p1: 1}, true)
	if fmt.Sprint(closed) != "[c/a/0 c/b/0]" || optional != nil {
		t.Fatalf("at the checkpoint, stopped: closed %v, optional %v", closed, optional)
	}
	// An advance beyond every partition's watermark is a violation.
	if _, _, _, bad := run(map[int64]int64{1: 99_000}, 5, connector.Checkpoint{p0: 2, p1: 3}, false); len(bad) != 1 {
		t.Fatalf("implausible advance: %v, want one violation", bad)
	}
	// An end of bounded input closes p1's last window, [2s, 3s), and may
	// go that far past every watermark, not further.
	o := newWindowOracle(spec, "c")
	o.setIdleLog(p1, nil, map[int64]int64{3: 3000})
	for _, r := range input {
		if _, err := o.add(r); err != nil {
			t.Fatal(err)
		}
	}
	if bad := o.finish(connector.Checkpoint{p0: 2, p1: 3}, true); bad != nil {
		t.Fatalf("end of input at 3000: %v", bad)
	}
	if res := o.results(); !res[len(res)-1].closed {
		t.Fatalf("end of input: p1's last window %s still open", res[len(res)-1].record.EventID)
	}
	o = newWindowOracle(spec, "c")
	o.setIdleLog(p1, nil, map[int64]int64{3: 9000})
	for _, r := range input {
		if _, err := o.add(r); err != nil {
			t.Fatal(err)
		}
	}
	if bad := o.finish(connector.Checkpoint{p0: 2, p1: 3}, true); len(bad) != 1 {
		t.Fatalf("end of input at 9000: %v, want one violation", bad)
	}
}
