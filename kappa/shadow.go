// Package kappa re-processes history the Kappa way: a shadow of a live
// connector, usually with changed logic, reads the same input from the
// beginning (or from a time) into outputs of its own while the live
// connector keeps running; once it has caught up, promote switches the
// readers to its outputs and the live connector is retired.
//
// This package holds what is specific to that: the shadow's definition (a
// versioned name, consumer group and outputs), its lag against the live
// connector, and the cut-over of readers per sink. The daemon hosts the
// shadow as an ordinary connector, so it commits exactly once like any.
package kappa

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/connectd/connectd/component"
)

// versionSuffix matches the "-vN" that ends a shadow's name, topic or group.
var versionSuffix = regexp.MustCompile(`^(.*?)([-_]v|v)([0-9]+)(:?)$`)

// SplitVersion splits a connector name into its base and version: "orders"
// is version 1 of "orders", "orders-v3" version 3.
func SplitVersion(name string) (base string, version int) {
	if m := versionSuffix.FindStringSubmatch(name); m != nil && m[2] == "-v" && m[1] != "" && m[4] == "" {
		if v, err := strconv.Atoi(m[3]); err == nil && v > 1 {
			return m[1], v
		}
	}
	return name, 1
}

// Name is the name of version v of base.
func Name(base string, v int) string { return base + "-v" + strconv.Itoa(v) }

// versioned names version v of an output called name, the separator sep
// between them ("-v" for topics and groups, "_v" for tables, "v" plus a
// trailing ":" for key prefixes): a name that already ends in a version of
// that form has it replaced, so replaying a replay gives "orders-v3", not
// "orders-v2-v3".
func versioned(name, sep string, v int) string {
	n := strconv.Itoa(v)
	if sep == "v" { // a Redis key prefix: "orders:" -> "orders:v2:"
		if m := versionSuffix.FindStringSubmatch(name); m != nil && m[2] == "v" && m[4] == ":" {
			return m[1] + "v" + n + ":"
		}
		return name + "v" + n + ":"
	}
	if m := versionSuffix.FindStringSubmatch(name); m != nil && m[2] == sep && m[4] == "" && m[1] != "" {
		return m[1] + sep + n
	}
	return name + sep + n
}

// Rename is one name the shadow changes, for the operator to see.
type Rename struct {
	Field string `json:"field"` // the config field, e.g. "sink.table"
	From  string `json:"from"`
	To    string `json:"to"`
}

// ErrNotReplayable is returned for a definition that cannot be replayed.
var ErrNotReplayable = errors.New("cannot be replayed")

// Shadow turns def, the definition of a connector named live (a decoded
// JSON object, changed in place), into the definition of its version v
// shadow, reading from from ("earliest" when empty, or an RFC 3339 time):
//
//   - name: the live name's base plus "-v<v>", so its Kafka transactional
//     IDs, metrics and status are its own;
//   - source.group: the group plus "-v<v>" (or, when unset, the default
//     the new name gives), so it has its own checkpoint and, with a window
//     stage, its own state (both are keyed by the group);
//   - source.start_offset: from;
//   - every sink's output: a Kafka topic plus "-v<v>", a PostgreSQL table
//     (and an explicit dead-letter table) plus "_v<v>", a Redis key prefix
//     plus "v<v>:" (the prefix also holds its checkpoint, state and dead
//     letters);
//   - dead_letter_queue.topic plus "-v<v>".
//
// A PostgreSQL view or a Redis prefix_key is kept: it is what readers use,
// and what promote moves. Only a Kafka source has a history to replay.
func Shadow(def map[string]any, live string, v int, from string) ([]Rename, error) {
	if from == "" || from == "beginning" {
		from = "earliest"
	}
	if from != "earliest" {
		if _, err := time.Parse(time.RFC3339Nano, from); err != nil {
			return nil, fmt.Errorf("from: %q is not \"beginning\" or an RFC 3339 time", from)
		}
	}
	base, _ := SplitVersion(live)
	name := Name(base, v)
	renames := []Rename{{Field: "name", From: live, To: name}}
	def["name"] = name

	src, _ := def["source"].(map[string]any)
	if src == nil || src["type"] != "kafka" {
		return nil, fmt.Errorf("connector %s: %w: only a Kafka source has a history to replay (source.type is %v)", live, ErrNotReplayable, typeOf(src))
	}
	if g, ok := src["group"].(string); ok && g != "" {
		renames = append(renames, set(src, "source.group", "group", versioned(g, "-v", v)))
	} else {
		renames = append(renames, Rename{Field: "source.group", From: "connectd-" + live, To: "connectd-" + name})
	}
	renames = append(renames, set(src, "source.start_offset", "start_offset", from))

	var sinks []map[string]any
	var fields []string
	if s, ok := def["sink"].(map[string]any); ok {
		sinks, fields = append(sinks, s), append(fields, "sink")
	}
	if list, ok := def["sinks"].([]any); ok {
		for i, s := range list {
			if m, ok := s.(map[string]any); ok {
				sinks, fields = append(sinks, m), append(fields, fmt.Sprintf("sinks[%d]", i))
			}
		}
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("connector %s: %w: it has no sink", live, ErrNotReplayable)
	}
	for i, s := range sinks {
		field := fields[i]
		t, _ := s["type"].(string)
		sk, ok := component.LookupSink(t)
		if !ok || sk.Replay == nil {
			return nil, fmt.Errorf("connector %s: %w: %s.type %v has no versioned output", live, ErrNotReplayable, field, typeOf(s))
		}
		for _, out := range sk.Replay.Outputs {
			if out.Always {
				p, _ := s[out.Field].(string)
				renames = append(renames, set(s, field+"."+out.Field, out.Field, versioned(p, out.Sep, v)))
			} else {
				renames = append(renames, setString(s, field, out.Field, out.Sep, v)...)
			}
		}
	}
	if dlq, ok := def["dead_letter_queue"].(map[string]any); ok {
		renames = append(renames, setString(dlq, "dead_letter_queue", "topic", "-v", v)...)
	}
	return renames, nil
}

// setString versions the string field key of m, if it is set.
func setString(m map[string]any, parent, key, sep string, v int) []Rename {
	old, ok := m[key].(string)
	if !ok || old == "" {
		return nil
	}
	return []Rename{set(m, parent+"."+key, key, versioned(old, sep, v))}
}

func set(m map[string]any, field, key, to string) Rename {
	old, _ := m[key].(string)
	m[key] = to
	return Rename{Field: field, From: old, To: to}
}

func typeOf(m map[string]any) any {
	if m == nil {
		return "missing"
	}
	if t, ok := m["type"]; ok {
		return t
	}
	return "missing"
}

// Replay states, as GET /connectors/{name}/replay shows them.
const (
	// CatchingUp: the shadow is more than MaxLag records behind.
	CatchingUp = "CATCHING_UP"
	// CaughtUp: within MaxLag records of the live connector; promote
	// may go ahead.
	CaughtUp = "CAUGHT_UP"
	// Promoting: a promote is under way (or was, when the daemon
	// stopped: it is finished at the next start).
	Promoting = "PROMOTING"
	// Promoted: the shadow took over (the answer to a promote).
	Promoted = "PROMOTED"
)

// Info describes a replay: the answer to starting one, asking for its
// status, or promoting it.
type Info struct {
	Name    string   `json:"name"`
	Of      string   `json:"shadow_of"`
	Version int      `json:"version"`
	From    string   `json:"from"`
	State   string   `json:"state"`
	Renames []Rename `json:"renames,omitempty"`
	Lag     *Lag     `json:"lag,omitempty"`
	// MaxLag is the lag at or under which the shadow counts as caught
	// up: one batch (the shadow's batch.max.records), since both
	// connectors commit a batch at a time.
	MaxLag   int64    `json:"max_lag"`
	Switches []Switch `json:"switches,omitempty"`
}
