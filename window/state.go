package window

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/connectd/connectd/connector"
)

// winID names one window of one key in a partition: for time windows its
// start; for a session its current start (a merge gives it a new one).
type winID struct {
	key   string
	start int64
}

// acc is one open window's aggregate.
type acc struct {
	end        int64 // exclusive; for a session: last event time + gap
	count      int64
	vals       []float64 // per Agg: sum (sum, avg), min or max
	lastOffset int64     // of the last record added; the result's origin offset
	rev        int64     // revisions emitted (emit: updates, late: update)
	emitted    bool      // closed and emitted, kept for late updates (late: update)
	stored     bool      // the sink holds a version of it
}

// part is one input partition's state.
type part struct {
	tp    connector.TopicPartition
	wm    int64 // W_p: highest event time seen − max out-of-orderness
	maxTs int64
	// idleWm is the highest watermark an idle advance gave the partition
	// (NoWatermark: none); its windows close at max(wm, idleWm).
	idleWm int64
	// idleAt is the input offset the pending idle advance applies from
	// (-1: none pending): the flush records it in the idle log.
	idleAt   int64
	idleEnd  bool // the pending advance is an end of input (advanceEnd)
	wins     map[winID]*acc
	sessions map[string][]int64 // session starts per key, ascending
	// The batch's changes, flushed as state records.
	dirty     map[winID]bool
	gone      map[winID]bool // merged or closed windows the sink holds
	metaDirty bool
	// next is the input offset after the last record of the partition
	// (Prepare saw it, or the meta entry said it); hasMeta says the sink
	// held a meta entry when the state was restored.
	next     int64
	hasMeta  bool
	closing  closingHeap // open windows by end, for the watermark to close
	closed   []closedWin // closed sessions displaced before the flush (addSession)
	expiring closingHeap // emitted windows kept for late updates, by end + late_retention
}

// watermark is the partition's W_p for closing windows: its own, or the
// idle advance's if higher.
func (p *part) watermark() int64 { return max(p.wm, p.idleWm) }

func newPart(tp connector.TopicPartition) *part {
	return &part{tp: tp, wm: NoWatermark, maxTs: NoWatermark, idleWm: NoWatermark, idleAt: -1, next: -1, wins: map[winID]*acc{},
		sessions: map[string][]int64{}, dirty: map[winID]bool{}, gone: map[winID]bool{}}
}

// perWindowBytes is the estimated memory of one open window beside its
// key and values: the map entry, the acc and the dirty-set headroom.
const perWindowBytes = 160

func (s *Spec) windowBytes(key string) int64 {
	return int64(len(key)) + perWindowBytes + int64(8*len(s.Aggs))
}

// State keys: "w/<start>/<key>" (time window), "s/<start>/<key>"
// (session) and metaKey (the watermark). The key goes last: it may hold
// any byte.
const metaKey = "~meta"

func stateKey(kind byte, id winID) string { return string(appendStateKey(nil, kind, id)) }

func appendStateKey(b []byte, kind byte, id winID) []byte {
	b = append(b, kind, '/')
	b = strconv.AppendInt(b, id.start, 10)
	b = append(b, '/')
	return append(b, id.key...)
}

func parseStateKey(k string) (kind byte, id winID, err error) {
	if len(k) < 4 || k[1] != '/' || (k[0] != 'w' && k[0] != 's') {
		return 0, winID{}, fmt.Errorf("state key %q is not a window key", k)
	}
	rest := k[2:]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return 0, winID{}, fmt.Errorf("state key %q has no window start", k)
	}
	start, err := strconv.ParseInt(rest[:slash], 10, 64)
	if err != nil {
		return 0, winID{}, fmt.Errorf("state key %q: window start: %v", k, err)
	}
	return k[0], winID{key: rest[slash+1:], start: start}, nil
}

// encodeAcc is the state value of a window: varints of end, count, last
// offset, revision and flags (1: emitted), then one float64 per
// aggregation.
func encodeAcc(a *acc) []byte {
	return appendAcc(make([]byte, 0, 5*binary.MaxVarintLen64+8*len(a.vals)), a)
}

func appendAcc(b []byte, a *acc) []byte {
	b = binary.AppendVarint(b, a.end)
	b = binary.AppendVarint(b, a.count)
	b = binary.AppendVarint(b, a.lastOffset)
	b = binary.AppendVarint(b, a.rev)
	var flags int64
	if a.emitted {
		flags |= 1
	}
	b = binary.AppendVarint(b, flags)
	for _, v := range a.vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

func decodeAcc(b []byte, nAggs int) (*acc, error) {
	a := &acc{vals: make([]float64, nAggs), stored: true}
	var flags int64
	for _, p := range []*int64{&a.end, &a.count, &a.lastOffset, &a.rev, &flags} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return nil, fmt.Errorf("truncated window state")
		}
		*p, b = v, b[n:]
	}
	a.emitted = flags&1 != 0
	if len(b) != 8*nAggs {
		return nil, fmt.Errorf("window state holds %d aggregate bytes, want %d (was the aggregate list changed? a changed stage needs a new group or a replay)", len(b), 8*nAggs)
	}
	for i := range a.vals {
		a.vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return a, nil
}

// encodeMeta is the partition's meta entry: varints of W_p, the highest
// event time, next, the input offset after the last record of the
// partition in the batch that wrote it (-1: not known), which is the
// partition's checkpoint in the same commit, and, once an idle advance
// raised it, the idle watermark (state written before idle_timeout
// existed ends after next).
func encodeMeta(p *part) []byte {
	b := binary.AppendVarint(nil, p.wm)
	b = binary.AppendVarint(b, p.maxTs)
	b = binary.AppendVarint(b, p.next)
	if p.idleWm != NoWatermark {
		b = binary.AppendVarint(b, p.idleWm)
	}
	return b
}

func decodeMeta(b []byte, p *part) error {
	wm, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("truncated watermark state")
	}
	maxTs, m := binary.Varint(b[n:])
	if m <= 0 {
		return fmt.Errorf("truncated watermark state")
	}
	next, k := binary.Varint(b[n+m:])
	if k <= 0 {
		return fmt.Errorf("truncated watermark state")
	}
	p.wm, p.maxTs, p.next, p.hasMeta = wm, maxTs, next, true
	if rest := b[n+m+k:]; len(rest) > 0 {
		idle, j := binary.Varint(rest)
		if j <= 0 {
			return fmt.Errorf("truncated watermark state")
		}
		p.idleWm = idle
	}
	return nil
}

// The idle log: every idle advance that closed a window is kept as the
// entry IdleKeyPrefix + <offset> = varint watermark, meaning "from input
// offset <offset> on, the partition's watermark was at least this". The
// operator never reads it back (the meta entry holds the watermark); it
// is for the batch oracle of `connectd verify`, which cannot know when
// wall-clock idleness struck and replays these decisions instead. Only
// advances that close windows are logged, so the log grows with the
// output, not with time; a later advance at the same offset overwrites
// the entry with a higher watermark.
const IdleKeyPrefix = "~idle/"

// EndKeyPrefix logs the end of a bounded run's input the same way: from
// <offset> on, the watermark was at least the one that closed every window
// then open (Operator.SetStops).
const EndKeyPrefix = "~end/"

func idleKey(offset int64) string { return IdleKeyPrefix + strconv.FormatInt(offset, 10) }
func endKey(offset int64) string  { return EndKeyPrefix + strconv.FormatInt(offset, 10) }

// ParseIdleLog returns the idle advances among a partition's state
// entries (input offset → watermark), and the ends of bounded input apart.
func ParseIdleLog(entries map[string][]byte) (idle, end map[int64]int64, err error) {
	idle, end = map[int64]int64{}, map[int64]int64{}
	for k, v := range entries {
		log := idle
		rest, ok := strings.CutPrefix(k, IdleKeyPrefix)
		if !ok {
			if rest, ok = strings.CutPrefix(k, EndKeyPrefix); !ok {
				continue
			}
			log = end
		}
		off, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("idle log entry %q: %w", k, err)
		}
		wm, n := binary.Varint(v)
		if n <= 0 {
			return nil, nil, fmt.Errorf("idle log entry %q: truncated watermark", k)
		}
		log[off] = wm
	}
	return idle, end, nil
}

// restore rebuilds a partition from the entries its store returned.
func (s *Spec) restore(tp connector.TopicPartition, entries map[string][]byte) (*part, int64, error) {
	p := newPart(tp)
	p.wins = make(map[winID]*acc, len(entries))
	var bytes int64
	for k, v := range entries {
		if k == metaKey {
			if err := decodeMeta(v, p); err != nil {
				return nil, 0, fmt.Errorf("state of %s: %w", tp, err)
			}
			continue
		}
		if strings.HasPrefix(k, IdleKeyPrefix) || strings.HasPrefix(k, EndKeyPrefix) {
			continue // verify's record of idle advances and input ends
		}
		kind, id, err := parseStateKey(k)
		if err != nil {
			return nil, 0, fmt.Errorf("state of %s: %w", tp, err)
		}
		if (kind == 's') != (s.Kind == Session) {
			return nil, 0, fmt.Errorf("state of %s holds %q, not a %s window (was the window type changed? a changed stage needs a new group or a replay)", tp, k, s.Kind)
		}
		a, err := decodeAcc(v, len(s.Aggs))
		if err != nil {
			return nil, 0, fmt.Errorf("state of %s, key %q: %w", tp, k, err)
		}
		p.wins[id] = a
		if kind == 's' {
			p.sessions[id.key] = append(p.sessions[id.key], id.start)
		}
		bytes += s.windowBytes(id.key)
	}
	for k, starts := range p.sessions {
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		p.sessions[k] = starts
	}
	return p, bytes, nil
}
