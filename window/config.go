// Package window is connectd's stateful stage: it groups records by key and
// event time into tumbling, hopping or session windows, tracks a watermark
// per input partition, and emits one result per (key, window) when the
// watermark closes the window, or a revision per commit with emit: updates.
//
// Its state (open windows and watermarks) commits with the output: the
// coordinator (connector.Stateful) flushes the batch's state changes as
// connector.StateRecords that the sink writes in the same atomic unit as
// the output and the input checkpoint, and reloads them from the sink
// (connector.StateStore) after any abort, restart or rebalance. Results are
// a function of each partition's log alone: a record is late when its
// window was already closed by its own partition's watermark, so replays
// and the batch recomputation of `connectd verify` give the same bytes.
package window

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/connectd/connectd/transform"
)

// Config is a `type: window` entry of a connector's transforms.
type Config struct {
	Type string `yaml:"type"`
	// Time is an expression giving the event time: unix milliseconds or an
	// RFC 3339 string. Empty: the record timestamp.
	Time string `yaml:"time"`
	// Key is an expression giving the grouping key. Empty: the record key.
	Key string `yaml:"key"`
	// KeyPartitioned asserts that the input is partitioned by Key (every
	// key lives in one partition), which windows need: each partition's
	// windows are computed alone. Implied when Key is empty.
	KeyPartitioned bool `yaml:"key_partitioned"`
	// Repartition makes a connector grouping by a Key its input is not
	// partitioned by repartition the input by it through an internal
	// topic first (Spec.Repartition). Opt-in: lateness is then judged on
	// the repartition topic's log, where a backlog's partitions interleave
	// in chunks, so many records of a backlog come late (README, Keys).
	Repartition bool `yaml:"repartition"`
	Window      struct {
		Type    string        `yaml:"type"`
		Size    time.Duration `yaml:"size"`
		Advance time.Duration `yaml:"advance"`
		Gap     time.Duration `yaml:"gap"`
	} `yaml:"window"`
	Watermark struct {
		MaxOutOfOrderness time.Duration `yaml:"max_out_of_orderness"`
		// IdleTimeout: a partition that sent nothing for this long
		// (wall clock) is idle, and its watermark is raised to the
		// lowest watermark of the task's active partitions (Flink's
		// idleness). 0: never idle.
		IdleTimeout time.Duration `yaml:"idle_timeout"`
	} `yaml:"watermark"`
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// LateRetention, with late: update, is how long past its close a
	// window keeps taking late records (default: the window size).
	LateRetention time.Duration     `yaml:"late_retention"`
	Emit          string            `yaml:"emit"`
	Late          string            `yaml:"late"`
	Aggregate     map[string]string `yaml:"aggregate"`
	// MaxOpenWindows caps the state: past it the connector fails cleanly
	// rather than running out of memory.
	MaxOpenWindows int `yaml:"max_open_windows"`
}

// Window kinds.
const (
	Tumbling = "tumbling"
	Hopping  = "hopping"
	Session  = "session"
)

// Emit modes.
const (
	EmitFinal   = "final"
	EmitUpdates = "updates"
)

// Late policies.
const (
	LateDeadLetter = "dead_letter"
	LateDrop       = "drop"
	// LateUpdate: a record for a window closed less than late_retention
	// ago updates it, and the batch emits a revision.
	LateUpdate = "update"
)

// DefaultMaxOpenWindows is the state cap when none is configured.
const DefaultMaxOpenWindows = 5_000_000

// FieldError is a config error about one field (a dot path such as
// "window.size"), so the loader can point at its line and column.
type FieldError = transform.FieldError

func fieldErr(field string, format string, args ...any) error {
	return &transform.FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Spec is a validated window stage: what the operator and the batch oracle
// of `connectd verify` both compute from.
type Spec struct {
	Kind            string
	Size, Advance   int64 // ms; tumbling: Advance == Size
	Gap             int64 // ms; session windows
	OutOfOrder      int64 // ms
	IdleTimeout     int64 // ms; 0: partitions are never idle
	AllowedLateness int64 // ms
	LateRetention   int64 // ms; late: update only
	Emit            string
	Late            string
	Aggs            []Agg // sorted by name
	MaxOpenWindows  int
	// Repartition: the grouping key is an expression the input is not
	// known to be partitioned by (key: without key_partitioned: true), so
	// the records must first be repartitioned by it (every key in one
	// partition); the stage then groups by the record key (ByRecordKey).
	Repartition bool

	exprs   transform.Exprs
	timeIdx int // index in exprs, or -1 for the record timestamp
	keyIdx  int // index in exprs, or -1 for the record key
}

// Agg is one named aggregation.
type Agg struct {
	Name string
	Func string // count, sum, min, max, avg
	Expr string // "" for count
	idx  int    // index in exprs; -1 for count
}

var aggFuncs = map[string]bool{"count": true, "sum": true, "min": true, "max": true, "avg": true}

// Compile validates c. Errors are *FieldError naming the field; several
// are joined.
func Compile(c Config) (*Spec, error) {
	s := &Spec{Emit: c.Emit, Late: c.Late, MaxOpenWindows: c.MaxOpenWindows, timeIdx: -1, keyIdx: -1}
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	if s.Emit == "" {
		s.Emit = EmitFinal
	}
	if s.Late == "" {
		s.Late = LateDeadLetter
	}
	if s.MaxOpenWindows == 0 {
		s.MaxOpenWindows = DefaultMaxOpenWindows
	}
	ms := func(field string, d time.Duration, positive bool) int64 {
		switch {
		case d < 0:
			bad(fieldErr(field, "must not be negative, got %v", d))
		case positive && d == 0:
			bad(fieldErr(field, "is required and must be positive"))
		case d%time.Millisecond != 0:
			bad(fieldErr(field, "must be a whole number of milliseconds, got %v", d))
		}
		return d.Milliseconds()
	}
	switch s.Kind = c.Window.Type; s.Kind {
	case Tumbling:
		s.Size = ms("window.size", c.Window.Size, true)
		s.Advance = s.Size
		if c.Window.Advance != 0 || c.Window.Gap != 0 {
			bad(fieldErr("window", "a tumbling window takes size only (advance is for hopping, gap for session windows)"))
		}
	case Hopping:
		s.Size = ms("window.size", c.Window.Size, true)
		s.Advance = ms("window.advance", c.Window.Advance, true)
		if s.Advance > s.Size {
			bad(fieldErr("window.advance", "must not exceed size (%v > %v)", c.Window.Advance, c.Window.Size))
		} else if s.Advance > 0 && s.Size%s.Advance != 0 {
			bad(fieldErr("window.advance", "must divide size (%v does not divide %v)", c.Window.Advance, c.Window.Size))
		}
	case Session:
		s.Gap = ms("window.gap", c.Window.Gap, true)
		if c.Window.Size != 0 || c.Window.Advance != 0 {
			bad(fieldErr("window", "a session window takes gap only"))
		}
		if s.Emit == EmitUpdates {
			bad(fieldErr("emit", "session windows support emit: final only (a merge would retract earlier revisions)"))
		}
	case "":
		bad(fieldErr("window.type", "is required: tumbling, hopping or session"))
	default:
		bad(fieldErr("window.type", "unknown window type %q (known: tumbling, hopping, session)", s.Kind))
	}
	s.OutOfOrder = ms("watermark.max_out_of_orderness", c.Watermark.MaxOutOfOrderness, false)
	s.IdleTimeout = ms("watermark.idle_timeout", c.Watermark.IdleTimeout, false)
	s.AllowedLateness = ms("allowed_lateness", c.AllowedLateness, false)
	if s.Emit != EmitFinal && s.Emit != EmitUpdates {
		bad(fieldErr("emit", "unknown emit mode %q (known: final, updates)", s.Emit))
	}
	switch s.Late {
	case LateDeadLetter, LateDrop:
		if c.LateRetention != 0 {
			bad(fieldErr("late_retention", "applies to late: update only"))
		}
	case LateUpdate:
		if s.Kind == Session {
			bad(fieldErr("late", "late: update supports tumbling and hopping windows (a late record could merge sessions already emitted)"))
		}
		s.LateRetention = ms("late_retention", c.LateRetention, false)
		if s.LateRetention == 0 {
			s.LateRetention = s.Size
		}
	default:
		bad(fieldErr("late", "unknown late policy %q (known: dead_letter, drop, update)", s.Late))
	}
	if s.MaxOpenWindows < 0 {
		bad(fieldErr("max_open_windows", "must be positive"))
	}
	switch {
	case c.Key != "" && c.KeyPartitioned && c.Repartition:
		bad(fieldErr("repartition", "key_partitioned: true says the input is partitioned by the key already; set one of the two"))
	case c.Key == "" && c.Repartition:
		bad(fieldErr("repartition", "groups by the record key, by which Kafka partitions already; set key: to repartition by an expression"))
	case c.Key != "" && !c.KeyPartitioned && !c.Repartition:
		bad(fieldErr("key", "grouping by %q needs every key in one input partition, since each partition's windows are computed alone: "+
			"set key_partitioned: true if the producers partition by it, or repartition: true to repartition the input through "+
			"the internal topic <group>-repartition first (lateness is then judged on that topic, where a backlog's partitions "+
			"interleave in chunks and many of its records come late; see README, Windows, Keys)", c.Key))
	}
	s.Repartition = c.Key != "" && c.Repartition
	add := func(field, src string) int {
		i, err := s.exprs.Add(field, src)
		if err != nil {
			bad(err)
		}
		return i
	}
	if c.Time != "" {
		s.timeIdx = add("time", c.Time)
	}
	if c.Key != "" {
		s.keyIdx = add("key", c.Key)
	}
	if len(c.Aggregate) == 0 {
		bad(fieldErr("aggregate", "is required: at least one named aggregation, e.g. orders: count()"))
	}
	names := make([]string, 0, len(c.Aggregate))
	for n := range c.Aggregate {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		field := "aggregate." + n
		if reserved[n] {
			bad(fieldErr(field, "%q is a field of every result; pick another name", n))
			continue
		}
		a, err := parseAgg(n, c.Aggregate[n])
		if err != nil {
			bad(fieldErr(field, "%v", err))
			continue
		}
		a.idx = -1
		if a.Func != "count" {
			a.idx = add(field, a.Expr)
		}
		s.Aggs = append(s.Aggs, a)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// ByRecordKey returns the stage as it runs after repartitioning: the same
// windows, event time and aggregates, grouped by the record key, which the
// repartitioning set to the grouping key's value (as a string, so the
// results' keys are the same).
func (s *Spec) ByRecordKey() *Spec {
	c := *s
	c.keyIdx = -1
	c.Repartition = false
	return &c
}

var reserved = map[string]bool{"key": true, "window_start": true, "window_end": true}

// parseAgg parses "count()", "sum(expr)", "min(expr)", "max(expr)", "avg(expr)".
func parseAgg(name, src string) (Agg, error) {
	src = strings.TrimSpace(src)
	open := strings.IndexByte(src, '(')
	if open <= 0 || !strings.HasSuffix(src, ")") {
		return Agg{}, fmt.Errorf("%q is not an aggregation: write count(), sum(expr), min(expr), max(expr) or avg(expr)", src)
	}
	fn := strings.TrimSpace(src[:open])
	arg := strings.TrimSpace(src[open+1 : len(src)-1])
	if !aggFuncs[fn] {
		return Agg{}, fmt.Errorf("unknown aggregation %q in %q (known: avg, count, max, min, sum)", fn, src)
	}
	if fn == "count" && arg != "" {
		return Agg{}, fmt.Errorf("count() takes no argument, got %q", src)
	}
	if fn != "count" && arg == "" {
		return Agg{}, fmt.Errorf("%s() needs an expression, e.g. %s(value.amount)", fn, fn)
	}
	return Agg{Name: name, Func: fn, Expr: arg}, nil
}

// windowsOf appends the start of every time window containing t (tumbling
// or hopping), earliest first. Windows are aligned to the unix epoch.
func (s *Spec) windowsOf(t int64, out []int64) []int64 {
	last := floorDiv(t, s.Advance) * s.Advance
	for start := last - s.Size + s.Advance; start <= last; start += s.Advance {
		out = append(out, start)
	}
	return out
}

// retained reports whether a closed window ending at end still takes late
// records at watermark wm (late: update).
func (s *Spec) retained(end, wm int64) bool {
	return s.Late == LateUpdate && !s.closed(end+s.LateRetention, wm)
}

// closed reports whether a window ending at end is closed at watermark wm.
func (s *Spec) closed(end, wm int64) bool {
	return wm != NoWatermark && end+s.AllowedLateness <= wm
}

// NoWatermark is a partition's watermark before its first record.
const NoWatermark = math.MinInt64

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
