package window

import (
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/connectd/connectd/connector"
)

// Operator runs a window stage for one connector task. It is not safe for
// concurrent use: the coordinator calls it from its one loop.
type Operator struct {
	spec  *Spec
	conn  string // connector name, the prefix of result event IDs
	ns    string // state namespace in the sink (the connector's group)
	store connector.StateStore

	parts map[connector.TopicPartition]*part
	// exactlyOnce: state and checkpoint commit atomically, so restored
	// state must name the checkpoint (SetExactlyOnce); checkpoint, if set,
	// reads the committed checkpoint where it is kept apart from the state.
	exactlyOnce bool
	checkpoint  func(context.Context, connector.TopicPartition) (int64, bool, error)

	// now is the wall clock of idle_timeout (a test's fake clock);
	// seen is when each partition last had a record, or was first
	// loaded. It outlives Discard: it is an observation of the input, not
	// state, and a partition reloaded after every aborted batch must
	// still become idle.
	now  func() time.Time
	seen map[connector.TopicPartition]time.Time
	// stops, in a bounded run, are where each partition's input ends
	// (SetStops).
	stops connector.Checkpoint

	open int   // open windows, all partitions
	size int64 // their estimated memory
	vals []any
	wins []int64

	// Flush output is carved from slabs (record, bytes) through scratch.
	slab    []connector.Record
	buf     []byte
	scratch []byte

	Stats Stats
}

// Stats are the stage's counters and gauges, for metrics and status.
// Conservation: records in = Aggregated + Late (+ records the stateless
// transforms before the stage filtered out).
type Stats struct {
	Aggregated  atomic.Uint64 // records added to at least one window
	Late        atomic.Uint64 // records whose windows had all closed
	Emitted     atomic.Uint64 // results written (final windows or revisions)
	OpenWindows atomic.Int64
	StateBytes  atomic.Int64 // estimated memory of the open windows
	Restores    atomic.Uint64
	// RestoredWindows counts the windows those loads brought back (open,
	// or kept for late updates): what a restore after a fault restored.
	RestoredWindows atomic.Uint64
	// IdleAdvances counts idle advances that closed windows; IdleLate
	// the late records among Late whose window an idle advance had
	// closed (they came after their partition was declared idle).
	IdleAdvances atomic.Uint64
	IdleLate     atomic.Uint64
	// LastRestore is how long the last partition restore took (ns).
	LastRestore atomic.Int64
}

// ErrStateCap fails the connector when the open windows exceed the cap.
var ErrStateCap = errors.New("window state cap exceeded")

// New returns an operator. store may be nil (state in memory only: the
// batch oracle, tests).
func New(spec *Spec, connectorName, namespace string, store connector.StateStore) *Operator {
	return &Operator{spec: spec, conn: connectorName, ns: namespace, store: store,
		parts: map[connector.TopicPartition]*part{}, vals: make([]any, spec.exprs.Len()), now: time.Now,
		seen: map[connector.TopicPartition]time.Time{}}
}

// SetExactlyOnce says state and input checkpoint commit atomically (an
// exactly_once connector), so restored state must belong to the offset the
// input resumes at: state of a later offset fails the connector (counting
// from it would count records twice).
//
// committed, if not nil, is for sinks whose state and checkpoint are read
// back from different places, so that a read can be stale: a Kafka sink's
// state topic and its consumer group's offsets (a state partition's
// leader cut off by a network partition still answers with an old high
// watermark for a while). It returns a partition's committed next offset;
// restored state naming another offset is refused with an abortable
// error, and the batch is re-read and the state loaded again, rather than
// counted from. A PostgreSQL or Redis sink reads both in one transaction
// or script: nil.
func (o *Operator) SetExactlyOnce(committed func(context.Context, connector.TopicPartition) (int64, bool, error)) {
	o.exactlyOnce, o.checkpoint = true, committed
}

// Spec returns the stage's validated config.
func (o *Operator) Spec() *Spec { return o.spec }

// Late describes a late record, for the dead-letter headers.
type Late struct {
	Watermark  int64 // the partition's W_p when the record came
	EventTime  int64
	Start, End int64 // the (latest) window it belonged to
	// Idle: the window was closed by an idle advance (AdvanceIdle), not
	// by the partition's own event time: the record came after its
	// partition had been declared idle.
	Idle bool
}

// Prepare loads the committed state of the partitions of recs that are
// not in memory.
//
// It also notes, per partition, the offset after the last record of recs
// (every input record, including those the stateless stages drop), which
// the flush writes into the partition's meta entry: the state then names
// the checkpoint it belongs to.
func (o *Operator) Prepare(ctx context.Context, recs []*connector.Record) error {
	var last connector.TopicPartition
	var p *part
	now := o.now()
	for i, r := range recs {
		tp := connector.TopicPartition{Topic: r.Origin.Topic, Partition: r.Origin.Partition}
		if i == 0 || tp != last {
			last = tp
			if p = o.parts[tp]; p == nil {
				if err := o.load(ctx, tp, r.Origin.Offset); err != nil {
					return err
				}
				p = o.parts[tp]
			}
			o.seen[tp] = now
		}
		if r.Origin.Offset >= p.next {
			p.next = r.Origin.Offset + 1
			p.metaDirty = true
		}
	}
	return nil
}

// load restores partition tp's state; first is the offset of the first
// record the batch read from it (noRecord: none, an idle partition).
func (o *Operator) load(ctx context.Context, tp connector.TopicPartition, first int64) error {
	if o.store == nil {
		o.parts[tp] = newPart(tp)
		o.noteLoaded(tp)
		return nil
	}
	start := time.Now()
	// The committed checkpoint is read BEFORE the state: that read
	// requires stable offsets (KIP-447), so it waits for a transaction
	// still open with this partition's offset in it (the previous
	// owner's last batch that read it) to end, and the state read after
	// it sees that transaction's state records. Read the other way round,
	// a heir could load the state from before an idle advance (which
	// changes the state and not the offset, so the comparison below
	// cannot tell) and close the advanced windows a second time. A Kafka
	// batch that only idle-advanced the partition does not carry its
	// offset (the transaction commits the consumed offsets); that it has
	// ended before a heir gets the partition is the group's doing: the
	// owner advances only partitions it holds in the batch's generation,
	// and gives one up only between batches (AdvanceIdle).
	var committed int64
	var known bool
	if o.checkpoint != nil {
		var err error
		if committed, known, err = o.checkpoint(ctx, tp); err != nil {
			return connector.NewCommitError(connector.Abortable, "load state", fmt.Errorf("reading the checkpoint of %s to check its window state: %w", tp, err))
		}
	}
	entries, err := o.store.LoadState(ctx, o.ns, tp)
	if err != nil {
		return fmt.Errorf("loading the window state of %s: %w", tp, err)
	}
	p, bytes, err := o.spec.restore(tp, entries)
	if err != nil {
		return connector.NewCommitError(connector.Fatal, "load state", err)
	}
	if o.exactlyOnce && p.hasMeta && p.next > first {
		// Reading from before the state's checkpoint would count
		// records twice: the checkpoint was moved back, or the sink
		// broke the atomicity of state and checkpoint.
		return connector.NewCommitError(connector.Fatal, "load state", fmt.Errorf(
			"the window state of %s belongs to offset %d, but the input resumes at %d, before it", tp, p.next, first))
	}
	if o.checkpoint != nil && p.hasMeta {
		if known && committed != p.next {
			return connector.NewCommitError(connector.Abortable, "load state", fmt.Errorf(
				"the window state of %s read back belongs to offset %d, but the committed checkpoint is %d: a stale read (a lagging or cut-off leader); reading again", tp, p.next, committed))
		}
	}
	o.noteLoaded(tp)
	p.closing = make(closingHeap, 0, len(p.wins))
	for id, a := range p.wins {
		if a.emitted { // kept for late updates: it expires, it does not close again
			p.expiring = append(p.expiring, pending{end: a.end + o.spec.LateRetention, id: id})
			continue
		}
		p.closing = append(p.closing, pending{end: a.end, id: id})
	}
	heap.Init(&p.closing)
	heap.Init(&p.expiring)
	o.parts[tp] = p
	o.open += len(p.wins)
	o.size += bytes
	o.Stats.Restores.Add(1)
	o.Stats.RestoredWindows.Add(uint64(len(p.wins)))
	o.Stats.LastRestore.Store(int64(time.Since(start)))
	o.publish()
	if o.open > o.spec.MaxOpenWindows {
		return connector.NewCommitError(connector.Fatal, "load state", o.capErr())
	}
	return nil
}

// noteLoaded starts tp's idle_timeout at its first load.
func (o *Operator) noteLoaded(tp connector.TopicPartition) {
	if _, ok := o.seen[tp]; !ok {
		o.seen[tp] = o.now()
	}
}

func (o *Operator) capErr() error {
	return fmt.Errorf("%w: %d open windows > max_open_windows %d (about %d MiB); raise max_open_windows (and the memory it needs), shorten the windows or the allowed lateness",
		ErrStateCap, o.open, o.spec.MaxOpenWindows, o.size>>20)
}

func (o *Operator) publish() {
	o.Stats.OpenWindows.Store(int64(o.open))
	o.Stats.StateBytes.Store(o.size)
}

// Add aggregates r into its windows. It returns a non-nil *Late when every
// window of r was already closed by its partition's watermark (nothing was
// changed), an error naming the failing expression when r cannot be
// aggregated (the caller applies errors.tolerance), or an error wrapping
// ErrStateCap, which must fail the connector.
func (o *Operator) Add(r *connector.Record) (*Late, error) {
	tp := connector.TopicPartition{Topic: r.Origin.Topic, Partition: r.Origin.Partition}
	p := o.parts[tp]
	if p == nil { // Prepare was not called: state in memory only
		p = newPart(tp)
		o.parts[tp] = p
	}
	s := o.spec
	if err := s.exprs.Eval(r, o.vals); err != nil {
		return nil, err
	}
	t, err := s.eventTime(r, o.vals)
	if err != nil {
		return nil, err
	}
	key, err := s.groupKey(r, o.vals)
	if err != nil {
		return nil, err
	}
	for _, a := range s.Aggs {
		if a.idx >= 0 {
			if _, err := number(o.vals[a.idx]); err != nil {
				return nil, fmt.Errorf("aggregate %s: %s(%s): %w", a.Name, a.Func, a.Expr, err)
			}
		}
	}
	var late *Late
	if s.Kind == Session {
		late = o.addSession(p, r, t, key)
	} else {
		late = o.addTime(p, r, t, key)
	}
	if late != nil {
		o.Stats.Late.Add(1)
		if late.Idle {
			o.Stats.IdleLate.Add(1)
		}
		return late, nil
	}
	o.Stats.Aggregated.Add(1)
	if t > p.maxTs {
		p.maxTs = t
		p.wm = t - s.OutOfOrder
		p.metaDirty = true
	}
	o.publish()
	if o.open > s.MaxOpenWindows {
		return nil, o.capErr()
	}
	return nil, nil
}

func (o *Operator) addTime(p *part, r *connector.Record, t int64, key string) *Late {
	s := o.spec
	o.wins = s.windowsOf(t, o.wins[:0])
	var late *Late
	added := false
	for _, start := range o.wins {
		end := start + s.Size
		if wm := p.watermark(); s.closed(end, wm) && !s.retained(end, wm) {
			late = &Late{Watermark: wm, EventTime: t, Start: start, End: end, Idle: !s.closed(end, p.wm) || s.retained(end, p.wm)}
			continue
		}
		id := winID{key: key, start: start}
		a := p.wins[id]
		if a == nil {
			a = o.newAcc(p, id, end)
		}
		o.fold(a, r)
		p.dirty[id] = true
		added = true
	}
	if added {
		return nil
	}
	return late
}

// addSession merges the record's session [t, t+gap) with the key's open
// sessions it overlaps. The record is late when the merged session would
// already be closed (Flink's rule for merging windows).
func (o *Operator) addSession(p *part, r *connector.Record, t int64, key string) *Late {
	s := o.spec
	start, end := t, t+s.Gap
	starts := p.sessions[key]
	var merged []int64
	for _, st := range starts {
		a := p.wins[winID{key: key, start: st}]
		// A session the watermark closed is final even before the
		// flush emits it: merging into it would make the results
		// depend on where batches end.
		if s.closed(a.end, p.watermark()) {
			continue
		}
		if st < t+s.Gap && t < a.end {
			merged = append(merged, st)
			start, end = min(start, st), max(end, a.end)
		}
	}
	if wm := p.watermark(); s.closed(end, wm) {
		return &Late{Watermark: wm, EventTime: t, Start: start, End: end, Idle: !s.closed(end, p.wm)}
	}
	id := winID{key: key, start: start}
	displacedStored := false
	if old, ok := p.wins[id]; ok && !slices.Contains(merged, start) {
		displacedStored = old.stored
		// A closed session of the key, not flushed yet, has this start:
		// it keeps its result (emitted at the flush) and yields its
		// place, and state key, to the new session.
		p.closed = append(p.closed, closedWin{id: id, acc: old})
		p.sessions[key] = removeAll(p.sessions[key], []int64{start})
		delete(p.wins, id)
		o.open--
		o.size -= s.windowBytes(key)
	}
	var into *acc
	if len(merged) == 1 && merged[0] == start {
		into = p.wins[id] // extends one session without moving its start
	} else {
		// The merged sessions go; one session under the earliest start
		// takes their place. Its state key may be one of theirs: then
		// the sink's entry is overwritten, not deleted.
		olds := make([]*acc, len(merged))
		stored := false
		for i, st := range merged {
			old := winID{key: key, start: st}
			olds[i] = p.wins[old]
			stored = stored || (old == id && olds[i].stored)
			o.drop(p, old)
		}
		into = o.newAcc(p, id, end)
		into.stored = stored
		delete(p.gone, id)
		for _, a := range olds {
			o.combine(into, a)
		}
		p.sessions[key] = insertSorted(removeAll(p.sessions[key], merged), start)
	}
	// The sink's entry under this state key, if any, is the new
	// session's to overwrite or delete.
	into.stored = into.stored || displacedStored
	if into.end != end {
		into.end = end
		heap.Push(&p.closing, pending{end: end, id: id})
	}
	o.fold(into, r)
	p.dirty[id] = true
	return nil
}

func (o *Operator) newAcc(p *part, id winID, end int64) *acc {
	a := &acc{end: end, vals: make([]float64, len(o.spec.Aggs))}
	for i, ag := range o.spec.Aggs {
		switch ag.Func {
		case "min":
			a.vals[i] = math.Inf(1)
		case "max":
			a.vals[i] = math.Inf(-1)
		}
	}
	p.wins[id] = a
	heap.Push(&p.closing, pending{end: end, id: id})
	o.open++
	o.size += o.spec.windowBytes(id.key)
	return a
}

// drop removes a window from memory; the sink forgets it at the next
// flush if it held it.
func (o *Operator) drop(p *part, id winID) {
	a := p.wins[id]
	if a.stored {
		p.gone[id] = true
	}
	delete(p.dirty, id)
	delete(p.wins, id)
	o.open--
	o.size -= o.spec.windowBytes(id.key)
}

// fold adds the record (whose expressions are in o.vals) to a.
func (o *Operator) fold(a *acc, r *connector.Record) {
	a.count++
	a.lastOffset = r.Origin.Offset
	for i, ag := range o.spec.Aggs {
		if ag.idx < 0 {
			continue
		}
		v, _ := number(o.vals[ag.idx]) // checked in Add
		switch ag.Func {
		case "sum", "avg":
			a.vals[i] += v
		case "min":
			a.vals[i] = math.Min(a.vals[i], v)
		case "max":
			a.vals[i] = math.Max(a.vals[i], v)
		}
	}
}

// combine merges session b into a.
func (o *Operator) combine(a, b *acc) {
	a.count += b.count
	a.lastOffset = max(a.lastOffset, b.lastOffset)
	for i, ag := range o.spec.Aggs {
		switch ag.Func {
		case "sum", "avg":
			a.vals[i] += b.vals[i]
		case "min":
			a.vals[i] = math.Min(a.vals[i], b.vals[i])
		case "max":
			a.vals[i] = math.Max(a.vals[i], b.vals[i])
		}
	}
}

// Flush returns the batch's results and state records: per partition (in
// topic, partition order) the results of the windows its watermark closed,
// ordered by (window end, key, start), or with emit: updates a revision of
// every window the batch changed; then the state of every changed window,
// a deletion for every window closed or merged away, and the watermark.
func (o *Operator) Flush() ([]*connector.Record, error) {
	tps := make([]connector.TopicPartition, 0, len(o.parts))
	for tp, p := range o.parts {
		if len(p.dirty) > 0 || len(p.gone) > 0 || p.metaDirty || len(p.closed) > 0 || (p.closing.Len() > 0 && o.spec.closed(p.closing[0].end, p.watermark())) {
			tps = append(tps, tp)
		}
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	var out []*connector.Record
	for _, tp := range tps {
		out = o.flushPart(o.parts[tp], out)
	}
	o.publish()
	return out, nil
}

func (o *Operator) flushPart(p *part, out []*connector.Record) []*connector.Record {
	s := o.spec
	if s.Emit == EmitUpdates || s.Late == LateUpdate {
		// Revisions: with emit: updates of every window the batch
		// changed; with late: update (and emit: final) of every window
		// already emitted that a late record changed.
		ids := make([]winID, 0, len(p.dirty))
		for id := range p.dirty {
			if s.Emit == EmitUpdates || p.wins[id].emitted {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return lessWin(p, ids[i], ids[j]) })
		for _, id := range ids {
			a := p.wins[id]
			a.rev++
			out = append(out, o.result(p, id, a))
		}
	}
	var closing []winID
	seen := map[winID]bool{}
	for p.closing.Len() > 0 && s.closed(p.closing[0].end, p.watermark()) {
		e := heap.Pop(&p.closing).(pending)
		// A window recreated under the same ID and end has two entries.
		if a, ok := p.wins[e.id]; ok && a.end == e.end && !seen[e.id] {
			seen[e.id] = true
			closing = append(closing, e.id)
		}
	}
	final := make([]closedWin, 0, len(closing)+len(p.closed))
	final = append(final, p.closed...)
	for _, id := range closing {
		final = append(final, closedWin{id: id, acc: p.wins[id]})
	}
	p.closed = p.closed[:0]
	sort.Slice(final, func(i, j int) bool { return lessClosed(final[i], final[j]) })
	if s.Emit == EmitFinal {
		for _, c := range final {
			if !c.acc.emitted {
				out = append(out, o.result(p, c.id, c.acc))
			}
		}
	}
	if s.Late == LateUpdate {
		// Closed windows stay, emitted, taking late records until
		// late_retention has passed; then they go.
		for _, id := range closing {
			a := p.wins[id]
			if !a.emitted {
				a.emitted = true
				if a.rev == 0 {
					a.rev = 1
				}
				p.dirty[id] = true
				heap.Push(&p.expiring, pending{end: a.end + s.LateRetention, id: id})
			}
		}
		closing = closing[:0]
		for p.expiring.Len() > 0 && s.closed(p.expiring[0].end, p.watermark()) {
			e := heap.Pop(&p.expiring).(pending)
			if a, ok := p.wins[e.id]; ok && a.emitted && a.end+s.LateRetention == e.end {
				closing = append(closing, e.id)
			}
		}
	}
	for _, id := range closing {
		if s.Kind == Session {
			p.sessions[id.key] = removeAll(p.sessions[id.key], []int64{id.start})
			if len(p.sessions[id.key]) == 0 {
				delete(p.sessions, id.key)
			}
		}
		o.drop(p, id)
	}
	kind := byte('w')
	if s.Kind == Session {
		kind = 's'
	}
	for id := range p.dirty {
		a := p.wins[id]
		a.stored = true
		out = append(out, o.stateRecord(p, kind, id, a))
	}
	for id := range p.gone {
		if !p.dirty[id] { // else overwritten above by a window under the same key
			out = append(out, o.stateRecord(p, kind, id, nil))
		}
	}
	if p.metaDirty {
		out = append(out, o.metaRecord(p))
	}
	if p.idleAt >= 0 {
		out = append(out, o.idleRecord(p))
		p.idleAt, p.idleEnd = -1, false
	}
	clear(p.dirty)
	clear(p.gone)
	p.metaDirty = false
	return out
}

func lessWin(p *part, a, b winID) bool {
	return lessClosed(closedWin{id: a, acc: p.wins[a]}, closedWin{id: b, acc: p.wins[b]})
}

// closedWin is a window whose result is due at the next flush.
type closedWin struct {
	id  winID
	acc *acc
}

// lessClosed orders results by (window end, key, start).
func lessClosed(a, b closedWin) bool {
	if a.acc.end != b.acc.end {
		return a.acc.end < b.acc.end
	}
	if a.id.key != b.id.key {
		return a.id.key < b.id.key
	}
	return a.id.start < b.id.start
}

// record returns a zeroed record from the flush's slab: the records of one
// flush are carved from one allocation (they live and die with their
// batch).
func (o *Operator) record() *connector.Record {
	if len(o.slab) == 0 {
		o.slab = make([]connector.Record, 256)
	}
	r := &o.slab[0]
	o.slab = o.slab[1:]
	return r
}

// bytes returns a copy of b carved from the flush's byte slab.
func (o *Operator) bytes(n int) []byte {
	if cap(o.buf)-len(o.buf) < n {
		o.buf = make([]byte, 0, max(64<<10, n))
	}
	start := len(o.buf)
	o.buf = o.buf[:start+n]
	return o.buf[start : start+n : start+n]
}

func (o *Operator) stateRecord(p *part, kind byte, id winID, a *acc) *connector.Record {
	r := o.record()
	*r = connector.Record{Kind: connector.StateRecord, Topic: o.ns,
		Origin: connector.Origin{Topic: p.tp.Topic, Partition: p.tp.Partition, Offset: -1}}
	o.scratch = appendStateKey(o.scratch[:0], kind, id)
	r.Key = o.bytes(len(o.scratch))
	copy(r.Key, o.scratch)
	if a != nil {
		o.scratch = appendAcc(o.scratch[:0], a)
		r.Value = o.bytes(len(o.scratch))
		copy(r.Value, o.scratch)
	}
	return r
}

func (o *Operator) metaRecord(p *part) *connector.Record {
	r := o.record()
	*r = connector.Record{Kind: connector.StateRecord, Topic: o.ns, Key: []byte(metaKey), Value: encodeMeta(p),
		Origin: connector.Origin{Topic: p.tp.Topic, Partition: p.tp.Partition, Offset: -1}}
	return r
}

// idleRecord logs the partition's pending idle advance (IdleKeyPrefix).
func (o *Operator) idleRecord(p *part) *connector.Record {
	r := o.record()
	key := idleKey(p.idleAt)
	if p.idleEnd {
		key = endKey(p.idleAt)
	}
	*r = connector.Record{Kind: connector.StateRecord, Topic: o.ns, Key: []byte(key),
		Value:  binary.AppendVarint(nil, p.idleWm),
		Origin: connector.Origin{Topic: p.tp.Topic, Partition: p.tp.Partition, Offset: -1}}
	return r
}

// result is the output record of window id: key = the grouping key, value
// = {"key", "window_start", "window_end", aggregates...} (RFC 3339 times,
// aggregates in name order), timestamp = the window end, event ID =
// <connector>/<key>/<start unix ms>, plus /r<revision> with emit: updates.
func (o *Operator) result(p *part, id winID, a *acc) *connector.Record {
	o.Stats.Emitted.Add(1)
	eid := o.spec.ResultID(o.conn, id.key, id.start, a.end)
	if o.spec.Emit == EmitUpdates || a.rev > 1 { // late: update's revisions after the first
		eid += "/r" + strconv.FormatInt(a.rev, 10)
	}
	r := o.record()
	o.scratch = o.spec.appendResult(o.scratch[:0], id.key, id.start, a.end, a.count, a.vals)
	value := o.bytes(len(o.scratch) + len(id.key))
	copy(value, o.scratch)
	copy(value[len(o.scratch):], id.key)
	*r = connector.Record{
		Key:       value[len(o.scratch):],
		Value:     value[:len(o.scratch):len(o.scratch)],
		Timestamp: time.UnixMilli(a.end).UTC(),
		EventID:   eid,
		Origin:    connector.Origin{Topic: p.tp.Topic, Partition: p.tp.Partition, Offset: a.lastOffset},
	}
	return r
}

// ResultID is the event ID of a window's result: <connector>/<key>/<start>
// (unix ms). A session window's adds /<end>: two sessions of one key can
// share a start (a record merging into an open session can extend it back
// to the start of a session of the key that had already closed), never
// both start and end.
func (s *Spec) ResultID(connectorName, key string, start, end int64) string {
	id := connectorName + "/" + key + "/" + strconv.FormatInt(start, 10)
	if s.Kind == Session {
		id += "/" + strconv.FormatInt(end, 10)
	}
	return id
}

// ResultValue renders a window's result. vals holds one value per Agg:
// the sum for sum and avg, the minimum or maximum for min and max.
func (s *Spec) ResultValue(key string, start, end, count int64, vals []float64) []byte {
	return s.appendResult(make([]byte, 0, 96+len(key)+24*len(s.Aggs)), key, start, end, count, vals)
}

func (s *Spec) appendResult(b []byte, key string, start, end, count int64, vals []float64) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"window_start":"`...)
	b = time.UnixMilli(start).UTC().AppendFormat(b, timeLayout)
	b = append(b, `","window_end":"`...)
	b = time.UnixMilli(end).UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	for i, ag := range s.Aggs {
		b = append(b, ',')
		b = appendJSONString(b, ag.Name)
		b = append(b, ':')
		switch ag.Func {
		case "count":
			b = strconv.AppendInt(b, count, 10)
		case "avg":
			b = appendFloat(b, vals[i]/float64(count))
		default:
			b = appendFloat(b, vals[i])
		}
	}
	return append(b, '}')
}

// timeLayout is RFC 3339 with milliseconds, always three digits.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendJSONString appends s as a JSON string: printable ASCII without
// quotes or backslashes as is (keys and names nearly always are), anything
// else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// noRecord is load's first offset for a partition loaded without a
// record: nothing is read from it, so its state's offset cannot be ahead.
const noRecord = math.MaxInt64

// AdvanceIdle applies idle_timeout (Flink's idleness) at the end of a
// batch, before Flush. A partition is active if it had a record within
// idle_timeout (wall clock), else idle. Every idle partition whose own
// watermark is below the lowest watermark of the active ones (those with
// a watermark) is raised to it, if that closes at least one of its
// windows; the flush then emits them and logs the advance (IdleKeyPrefix).
// Nothing advances while no partition is active: a topic that went quiet
// keeps its windows open, as in Flink.
//
// assigned, if not nil, is what the task holds now for sure: the group's
// answer about the generation the batch is read in, never an earlier one
// (connector.CurrentAssigner). Partitions not in it are neither active
// nor idle, and assigned partitions not in memory (idle since a restart
// or a rebalance) are loaded first, so that their open windows can close
// too. The advance is atomic with the batch (its results, state and idle
// log commit or abort with the batch's offsets), but it reads no record
// of the partition: only the assignment says no other member holds the
// partition and closes the same windows from its own state meanwhile.
//
// It returns the checkpoint entries of the partitions it advanced, each
// at its unchanged committed offset: the commit must include them, so
// that the sink fences the state and results written for them as it
// fences any partition's (a claim epoch compare-and-set; with a Kafka
// sink the transaction's offset commit of the batch's other partitions
// carries the group generation). A record that reaches an advanced
// partition later, for a window the advance closed, is late (Late.Idle):
// the one case where results depend on timing, counted in
// Stats.IdleLate.
func (o *Operator) AdvanceIdle(ctx context.Context, now time.Time, assigned map[connector.TopicPartition]int64) (connector.Checkpoint, error) {
	s := o.spec
	ended := o.advanceEnd()
	if s.IdleTimeout <= 0 {
		return ended, nil
	}
	for tp := range assigned {
		if _, ok := o.parts[tp]; !ok {
			if err := o.load(ctx, tp, noRecord); err != nil {
				return nil, err
			}
		}
	}
	timeout := time.Duration(s.IdleTimeout) * time.Millisecond
	held := func(tp connector.TopicPartition) bool {
		if assigned == nil {
			return true
		}
		_, ok := assigned[tp]
		return ok
	}
	// Active partitions without a watermark (no record aggregated yet)
	// have no windows to wait for: they do not hold the target back.
	target, active := int64(math.MaxInt64), false
	for tp, p := range o.parts {
		if held(tp) && now.Sub(o.seen[tp]) < timeout && p.watermark() != NoWatermark {
			active = true
			target = min(target, p.watermark())
		}
	}
	if !active {
		return ended, nil
	}
	cp := ended
	for tp, p := range o.parts {
		if !held(tp) || now.Sub(o.seen[tp]) < timeout || p.next < 0 || target <= p.watermark() || !o.closesAt(p, target) {
			continue
		}
		p.idleWm, p.idleAt, p.metaDirty = target, p.next, true
		o.Stats.IdleAdvances.Add(1)
		if cp == nil {
			cp = connector.Checkpoint{}
		}
		cp[tp] = p.next
	}
	return cp, nil
}

// DuePartitions returns the partitions with a window their watermark has
// closed and the next flush will emit (connector.ResultsDue).
func (o *Operator) DuePartitions() []connector.TopicPartition {
	var due []connector.TopicPartition
	for tp, p := range o.parts {
		if len(p.closed) > 0 || (p.closing.Len() > 0 && o.spec.closed(p.closing[0].end, p.watermark())) {
			due = append(due, tp)
		}
	}
	return due
}

// AdvancesWithoutInput reports whether AdvanceIdle can change anything:
// idle_timeout is set, or the stage is part of a bounded run.
func (o *Operator) AdvancesWithoutInput() bool { return o.spec.IdleTimeout > 0 || o.stops != nil }

// SetStops makes the stage part of a bounded run (package bounded): stops
// are where each partition's input ends.
func (o *Operator) SetStops(stops connector.Checkpoint) { o.stops = stops }

// advanceEnd ends the input of every partition whose records up to its
// stop are all in (a bounded run): its watermark is raised just enough to
// close every window it holds open (the latest end plus allowed_lateness),
// so the batch emits them all, and the advance is logged under
// EndKeyPrefix. It is not raised to infinity: a later run over input that
// came after the stop opens new windows as usual; records for the windows
// closed here are late then. It returns the partitions it advanced at
// their offsets, for the batch's checkpoint.
func (o *Operator) advanceEnd() connector.Checkpoint {
	var cp connector.Checkpoint
	for tp, p := range o.parts {
		stop, ok := o.stops[tp]
		if !ok || p.next < stop {
			continue
		}
		last := int64(math.MinInt64)
		for _, a := range p.wins {
			if !a.emitted {
				last = max(last, a.end)
			}
		}
		if last == math.MinInt64 {
			continue // nothing open
		}
		wm := last + o.spec.AllowedLateness
		if wm <= p.watermark() {
			continue // the flush closes them anyway
		}
		p.idleWm, p.idleAt, p.idleEnd, p.metaDirty = wm, p.next, true, true
		if cp == nil {
			cp = connector.Checkpoint{}
		}
		cp[tp] = p.next
	}
	return cp
}

// closesAt reports whether watermark wm would close (or, with late:
// update, expire) one of p's windows.
func (o *Operator) closesAt(p *part, wm int64) bool {
	return (p.closing.Len() > 0 && o.spec.closed(p.closing[0].end, wm)) ||
		(p.expiring.Len() > 0 && o.spec.closed(p.expiring[0].end, wm))
}

// Committed is called after the batch committed: the flushed state is the
// sink's now (Flush already marked it).
func (o *Operator) Committed() {}

// Discard drops all state; it is reloaded from the sink per partition.
func (o *Operator) Discard() {
	clear(o.parts)
	o.open, o.size = 0, 0
	o.publish()
}

// Watermark returns partition tp's W_p (raised by idle advances), or
// NoWatermark.
func (o *Operator) Watermark(tp connector.TopicPartition) int64 {
	if p := o.parts[tp]; p != nil {
		return p.watermark()
	}
	return NoWatermark
}

func insertSorted(xs []int64, v int64) []int64 {
	i := sort.Search(len(xs), func(i int) bool { return xs[i] >= v })
	xs = append(xs, 0)
	copy(xs[i+1:], xs[i:])
	xs[i] = v
	return xs
}

func removeAll(xs, drop []int64) []int64 {
	out := xs[:0]
	for _, x := range xs {
		keep := true
		for _, d := range drop {
			if x == d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// pending is a window waiting for the watermark to pass its end; entries
// whose window has since moved (a session extended or merged) are skipped
// when popped.
type pending struct {
	end int64
	id  winID
}

type closingHeap []pending

func (h closingHeap) Len() int           { return len(h) }
func (h closingHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h closingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *closingHeap) Push(x any)        { *h = append(*h, x.(pending)) }
func (h *closingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
