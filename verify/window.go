package verify

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/window"
)

// The batch oracle: a windowed connector's results recomputed from its
// input below the checkpoint, with the window stage's semantics written
// out a second time, as plainly as possible, in maps of its own. It reads
// each record with window.Spec.Eval, as the stage does, and shares nothing
// else with window.Operator: a bug in the operator's bookkeeping (its
// closing heap, its session merging, its restored state) shows as a
// difference here instead of being computed twice.
//
// The semantics, per input partition p (records in offset order):
//   - W_p is the highest event time seen in p minus max_out_of_orderness,
//     and no watermark before p's first aggregated record;
//   - a window ending at end is closed at W_p when end + allowed_lateness
//     <= W_p;
//   - a record at event time t belongs to the time windows [s, s+size)
//     with s a multiple of advance and s <= t < s+size; it is added to
//     each one not closed at W_p before it, and late when none is open;
//   - a session record opens [t, t+gap), which takes in every open session
//     of its key it overlaps; if the merged session is closed the record
//     is late and nothing changes;
//   - after a record that was not late, W_p rises to t − ooo if t is the
//     highest event time seen.
//
// The stage emits a window (emit: final) at the end of the batch whose
// records close it, so at a committed checkpoint the emitted windows are
// exactly those closed by each W_p after all input below it.
//
// With watermark.idle_timeout the stage also raises an idle partition's
// watermark when wall-clock idleness strikes, which no recomputation can
// know. It logs each such advance in its state (window.IdleKeyPrefix: from
// input offset o on, W_p is at least X), and the oracle replays the log:
// before p's record at offset o, W_p becomes max(W_p, X) for every entry
// at or below o. An entry at the checkpoint itself may have been committed
// after the outputs were read (its partition's offset does not move), so
// the windows only it closes are optional: compared if present, not
// missing if absent. An entry is checked for plausibility: X comes from
// another partition's watermark, so it cannot exceed the highest W_p.

// oracleWindow is one window of one key in one input partition.
type oracleWindow struct {
	tp         connector.TopicPartition
	key        string
	start, end int64
	count      int64
	vals       []float64 // per window.Spec.Aggs: sum (sum, avg), min or max
	last       int64     // offset of the last record added
	mergedAway bool      // a session another one took in: not a result
}

// oraclePart is one input partition's recomputation.
type oraclePart struct {
	wm, maxTs int64
	idleWm    int64       // the highest idle advance replayed (NoWatermark: none)
	idleLog   []idleEntry // p's logged idle advances by offset, not replayed yet
	// optionalWm: W_p with the advances logged at the checkpoint itself
	// (finish), which may postdate the outputs read.
	optionalWm int64
	windows    []*oracleWindow                    // every window, in creation order
	byStart    map[string]map[int64]*oracleWindow // time windows per key and start
	sessions   map[string][]*oracleWindow         // sessions per key, merged-away ones left out
}

// idleEntry is one logged idle advance: W_p ≥ wm from input offset at on.
type idleEntry struct {
	at, wm int64
	end    bool // the end of a bounded run's input (window.EndKeyPrefix)
}

// watermark is W_p for closing windows: max(own, idle advances).
func (p *oraclePart) watermark() int64 { return max(p.wm, p.idleWm) }

// windowOracle recomputes the windows of one connector.
type windowOracle struct {
	spec      *window.Spec
	connector string
	parts     map[connector.TopicPartition]*oraclePart
	late      int // records late for all their windows
	// idle holds the logged idle advances per partition (setIdleLog)
	// until the partition's part is made.
	idle map[connector.TopicPartition][]idleEntry
}

// setIdleLog gives the oracle the stage's idle log (window.ParseIdleLog)
// of partition tp, before any record of tp is added.
func (o *windowOracle) setIdleLog(tp connector.TopicPartition, idle, end map[int64]int64) {
	if len(idle)+len(end) == 0 {
		return
	}
	es := make([]idleEntry, 0, len(idle)+len(end))
	for at, wm := range idle {
		es = append(es, idleEntry{at: at, wm: wm})
	}
	for at, wm := range end {
		es = append(es, idleEntry{at: at, wm: wm, end: true})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].at < es[j].at })
	if o.idle == nil {
		o.idle = map[connector.TopicPartition][]idleEntry{}
	}
	o.idle[tp] = es
}

// part returns tp's recomputation, made on first use.
func (o *windowOracle) part(tp connector.TopicPartition) *oraclePart {
	p := o.parts[tp]
	if p == nil {
		p = &oraclePart{wm: window.NoWatermark, maxTs: window.NoWatermark, idleWm: window.NoWatermark, optionalWm: window.NoWatermark, idleLog: o.idle[tp],
			byStart: map[string]map[int64]*oracleWindow{}, sessions: map[string][]*oracleWindow{}}
		o.parts[tp] = p
	}
	return p
}

// replayIdle applies p's logged advances at offsets below limit (or at
// it, with inclusive).
func replayIdle(p *oraclePart, limit int64, inclusive bool) {
	for len(p.idleLog) > 0 && (p.idleLog[0].at < limit || inclusive && p.idleLog[0].at == limit) {
		p.idleWm = max(p.idleWm, p.idleLog[0].wm)
		p.idleLog = p.idleLog[1:]
	}
}

func newWindowOracle(spec *window.Spec, connectorName string) *windowOracle {
	return &windowOracle{spec: spec, connector: connectorName, parts: map[connector.TopicPartition]*oraclePart{}}
}

// closed is the closing rule, written here again rather than borrowed.
func (o *windowOracle) closed(end, wm int64) bool {
	return wm != window.NoWatermark && end+o.spec.AllowedLateness <= wm
}

// add aggregates r, which must come after every record of its partition
// added before (offset order). It returns whether r was late, or the
// error Eval gave (the stage dead-letters the record, or fails).
func (o *windowOracle) add(r *connector.Record) (late bool, err error) {
	t, key, vals, err := o.spec.Eval(r)
	if err != nil {
		return false, err
	}
	tp := connector.TopicPartition{Topic: r.Origin.Topic, Partition: r.Origin.Partition}
	p := o.part(tp)
	replayIdle(p, r.Origin.Offset, true)
	if o.spec.Kind == window.Session {
		late = o.addSession(p, tp, r.Origin.Offset, t, key, vals)
	} else {
		late = o.addTime(p, tp, r.Origin.Offset, t, key, vals)
	}
	if late {
		o.late++
		return true, nil
	}
	if p.maxTs == window.NoWatermark || t > p.maxTs {
		p.maxTs = t
		p.wm = t - o.spec.OutOfOrder
	}
	return false, nil
}

func (o *windowOracle) addTime(p *oraclePart, tp connector.TopicPartition, offset, t int64, key string, vals []float64) (late bool) {
	size, adv := o.spec.Size, o.spec.Advance
	// The latest start at or before t, then back by advance while the
	// window still reaches t.
	latest := t - ((t%adv)+adv)%adv
	added := false
	for s := latest; s > t-size; s -= adv {
		// Closed windows take no record, except, with late: update,
		// for late_retention after they closed.
		if wm := p.watermark(); o.closed(s+size, wm) && (o.spec.Late != window.LateUpdate || o.closed(s+size+o.spec.LateRetention, wm)) {
			continue
		}
		ws := p.byStart[key]
		if ws == nil {
			ws = map[int64]*oracleWindow{}
			p.byStart[key] = ws
		}
		w := ws[s]
		if w == nil {
			w = o.newWindow(p, tp, key, s, s+size)
			ws[s] = w
		}
		o.fold(w, offset, vals)
		added = true
	}
	return !added
}

func (o *windowOracle) addSession(p *oraclePart, tp connector.TopicPartition, offset, t int64, key string, vals []float64) (late bool) {
	start, end := t, t+o.spec.Gap
	var keep, merge []*oracleWindow
	for _, w := range p.sessions[key] {
		if !o.closed(w.end, p.watermark()) && w.start < t+o.spec.Gap && t < w.end {
			merge = append(merge, w)
			start, end = min(start, w.start), max(end, w.end)
		} else {
			keep = append(keep, w)
		}
	}
	if o.closed(end, p.watermark()) {
		return true
	}
	into := o.newWindow(p, tp, key, start, end)
	for _, w := range merge {
		w.mergedAway = true
		into.count += w.count
		into.last = max(into.last, w.last)
		for i := range into.vals {
			into.vals[i] = o.combine(i, into.vals[i], w.vals[i])
		}
	}
	o.fold(into, offset, vals)
	p.sessions[key] = append(keep, into)
	return false
}

func (o *windowOracle) newWindow(p *oraclePart, tp connector.TopicPartition, key string, start, end int64) *oracleWindow {
	w := &oracleWindow{tp: tp, key: key, start: start, end: end, last: -1, vals: make([]float64, len(o.spec.Aggs))}
	for i, a := range o.spec.Aggs {
		switch a.Func {
		case "min":
			w.vals[i] = math.Inf(1)
		case "max":
			w.vals[i] = math.Inf(-1)
		}
	}
	p.windows = append(p.windows, w)
	return w
}

func (o *windowOracle) fold(w *oracleWindow, offset int64, vals []float64) {
	w.count++
	w.last = max(w.last, offset)
	for i := range w.vals {
		w.vals[i] = o.combine(i, w.vals[i], vals[i])
	}
}

// combine folds b into a for aggregation i.
func (o *windowOracle) combine(i int, a, b float64) float64 {
	switch o.spec.Aggs[i].Func {
	case "min":
		return math.Min(a, b)
	case "max":
		return math.Max(a, b)
	default: // count (unused: the count is kept apart), sum, avg
		return a + b
	}
}

// finish replays, after the last record below cp, the idle advances
// logged below each partition's checkpoint; those logged at it are
// applied too when strict (a stopped pipeline: nothing committed after the
// outputs were read), else they only make windows optional. It returns a
// description of every replayed advance that is not plausible: higher
// than every partition's own watermark, where the advance must come from.
func (o *windowOracle) finish(cp connector.Checkpoint, strict bool) []string {
	highest := int64(window.NoWatermark)
	for _, p := range o.parts {
		highest = max(highest, p.wm)
	}
	var bad []string
	check := func(tp connector.TopicPartition, es []idleEntry) {
		for _, e := range es {
			if e.end {
				// It closes the windows open at the end of the
				// input, the last of which holds p's latest event.
				if limit := o.part(tp).maxTs + max(o.spec.Size, o.spec.Gap) + o.spec.AllowedLateness; e.wm > limit {
					bad = append(bad, fmt.Sprintf("%s: end of input at offset %d raised the watermark to %d, past the last window's close (%d)", tp, e.at, e.wm, limit))
				}
				continue
			}
			if e.wm > highest {
				bad = append(bad, fmt.Sprintf("%s: idle advance to %d at offset %d exceeds every partition's own watermark (highest %d)", tp, e.wm, e.at, highest))
			}
		}
	}
	for tp, es := range o.idle {
		p := o.part(tp)
		next, ok := cp[tp]
		if ok {
			replayIdle(p, next, strict)
		}
		applied := len(es) - len(p.idleLog)
		check(tp, es[:applied])
		p.optionalWm = p.watermark()
		for _, e := range p.idleLog {
			if ok && e.at == next {
				p.optionalWm = max(p.optionalWm, e.wm)
			}
		}
	}
	return bad
}

// windowResult is one window the oracle found: the result record the
// stage writes for it, and whether its partition's watermark closed it.
type windowResult struct {
	record *connector.Record // event ID without the /r<revision> of emit: updates
	closed bool
	// optional: open, but closed by an idle advance logged at the
	// checkpoint (finish): the sink may hold its result or not.
	optional bool
}

// results lists every window (merged-away sessions left out), closed or
// not, in (partition, end, key, start) order.
func (o *windowOracle) results() []windowResult {
	tps := make([]connector.TopicPartition, 0, len(o.parts))
	for tp := range o.parts {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	var out []windowResult
	for _, tp := range tps {
		p := o.parts[tp]
		ws := make([]*oracleWindow, 0, len(p.windows))
		for _, w := range p.windows {
			if !w.mergedAway {
				ws = append(ws, w)
			}
		}
		sort.SliceStable(ws, func(i, j int) bool {
			a, b := ws[i], ws[j]
			if a.end != b.end {
				return a.end < b.end
			}
			if a.key != b.key {
				return a.key < b.key
			}
			return a.start < b.start
		})
		for _, w := range ws {
			closed := o.closed(w.end, p.watermark())
			out = append(out, windowResult{record: o.record(w), closed: closed,
				optional: !closed && o.closed(w.end, p.optionalWm)})
		}
	}
	return out
}

// record is the result record of w as the issue specifies it: key = the
// grouping key, value = {key, window_start, window_end, aggregates...},
// timestamp = the window end, event ID = <connector>/<key>/<start>, origin
// = the last record added.
func (o *windowOracle) record(w *oracleWindow) *connector.Record {
	return &connector.Record{
		Key:       []byte(w.key),
		Value:     o.spec.ResultValue(w.key, w.start, w.end, w.count, w.vals),
		Timestamp: time.UnixMilli(w.end).UTC(),
		EventID:   o.spec.ResultID(o.connector, w.key, w.start, w.end),
		Origin:    connector.Origin{Topic: w.tp.Topic, Partition: w.tp.Partition, Offset: w.last},
	}
}
