package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounded is a connector's bounded: block. A connector with one is a
// bounded job each time it starts: it captures where its input stops
// then, runs until it has committed its input up to there, and stops
// itself (FINISHED in status); its checkpoint stays. It says where the
// input stops in one of two ways:
//
//	bounded: {until: end}                      # the last stable offsets at start
//	bounded: {until: "2026-12-04T10:00:00Z"}   # the first offsets at or after a time
//	bounded: {offsets: {orders: {"0": 1000, "1": 2500}}}
//
// Explicit offsets name, per input topic and partition, the first offset
// not to read; every partition of every input topic must be listed (a
// partition left out is refused when the connector starts, rather than
// read to an end nobody wrote down), and a stop beyond a partition's end
// waits for its input to get there. `connectd run --until` overrides the
// block of every connector.
type Bounded struct {
	Until Until `yaml:"until,omitempty"`
	// Offsets are explicit stops: topic → partition (a decimal string, as
	// JSON object keys are) → the first offset not to read.
	Offsets map[string]map[string]int64 `yaml:"offsets,omitempty"`

	// Pos is where the block is written, UntilPos its until value and
	// TopicPos each topic of Offsets (not YAML fields): checks made when
	// the connector's source is decoded (package pipeline) point there.
	Pos      Position            `yaml:"-"`
	UntilPos Position            `yaml:"-"`
	TopicPos map[string]Position `yaml:"-"`
}

// Stops returns Offsets with partition numbers parsed (validation has
// checked them).
func (b *Bounded) Stops() map[string]map[int32]int64 {
	if len(b.Offsets) == 0 {
		return nil
	}
	out := make(map[string]map[int32]int64, len(b.Offsets))
	for topic, parts := range b.Offsets {
		out[topic] = make(map[int32]int64, len(parts))
		for p, off := range parts {
			n, _ := parsePartition(p)
			out[topic][n] = off
		}
	}
	return out
}

// String says where the block stops, for logs and status.
func (b *Bounded) String() string {
	if len(b.Offsets) == 0 {
		return "until " + b.Until.String()
	}
	var parts []string
	for _, topic := range slices.Sorted(maps.Keys(b.Offsets)) {
		parts = append(parts, fmt.Sprintf("%s (%d partitions)", topic, len(b.Offsets[topic])))
	}
	return "at explicit offsets of " + strings.Join(parts, ", ")
}

func parsePartition(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("partition %q is not a partition number (0, 1, ...)", s)
	}
	return int32(n), nil
}

// Until says where a bounded run stops: at the end (the last stable
// offsets when it starts), or at the first offsets stamped at or after
// Time. The zero Until is unset.
type Until struct {
	// End: the last stable offset of each partition when the run starts
	// (what a read_committed consumer can read then).
	End bool
	// Time, if not zero: the first offset whose record timestamp is at or
	// after it (records before it are read), at most the end.
	Time time.Time
}

// ParseUntil reads "end" or an RFC 3339 time.
func ParseUntil(s string) (Until, error) {
	if strings.EqualFold(s, "end") {
		return Until{End: true}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Until{}, fmt.Errorf("want \"end\" or an RFC 3339 time such as 2026-12-04T12:00:00Z, got %q", s)
	}
	return Until{Time: t}, nil
}

// UnmarshalText reads until: from a config.
func (u *Until) UnmarshalText(b []byte) error {
	v, err := ParseUntil(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// MarshalText writes u as ParseUntil reads it (configs rendered back by
// the admin API and replays).
func (u Until) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// IsZero reports an unset Until.
func (u Until) IsZero() bool { return !u.End && u.Time.IsZero() }

func (u Until) String() string {
	switch {
	case u.End:
		return "end"
	case u.Time.IsZero():
		return ""
	}
	return u.Time.UTC().Format(time.RFC3339Nano)
}

// bounded checks a connector's bounded block: until or offsets, not both
// nor neither; partitions are numbers and offsets not negative. What
// depends on the source (a generator with a count, topics the source
// reads) is checked where the source is decoded, at the positions noted
// here.
func (v *validator) bounded(c *Connector, p string) {
	b := c.Bounded
	p += ".bounded"
	if b == nil || !v.ok(p) {
		return
	}
	b.Pos = v.keyAt(p, c.Pos)
	b.UntilPos = v.at(p+".until", b.Pos)
	b.TopicPos = map[string]Position{}
	hasUntil, hasOffsets := !b.Until.IsZero(), len(b.Offsets) > 0
	switch {
	case !v.ok(p+".until") || !v.ok(p+".offsets"):
	case hasUntil && hasOffsets:
		v.add(v.keyAt(p+".offsets", b.Pos), "%s: give until or offsets, not both", p)
	case !hasUntil && !hasOffsets && b.Offsets != nil:
		v.add(v.keyAt(p+".offsets", b.Pos), "%s.offsets lists no topic: list each input topic's partitions and their stop offsets", p)
	case !hasUntil && !hasOffsets:
		v.add(b.Pos, "%s: say where the input stops: until: end, until: an RFC 3339 time, or offsets: {TOPIC: {PARTITION: OFFSET}}", p)
	}
	for _, topic := range slices.Sorted(maps.Keys(b.Offsets)) {
		tp := p + ".offsets." + topic
		b.TopicPos[topic] = v.keyAt(tp, b.Pos)
		if !v.ok(tp) {
			continue
		}
		if len(b.Offsets[topic]) == 0 {
			v.add(v.keyAt(tp, b.Pos), "%s lists no partition: give each partition's stop offset, as {\"0\": 1000}", tp)
		}
		for part, off := range b.Offsets[topic] {
			pp := tp + "." + part
			if _, err := parsePartition(part); err != nil {
				v.add(v.keyAt(pp, b.Pos), "%s: %v", tp, err)
			}
			if v.ok(pp) && off < 0 {
				v.add(v.at(pp, b.Pos), "%s must be an offset (>= 0), got %d", pp, off)
			}
		}
	}
}
